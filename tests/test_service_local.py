"""`esrgan serve` without Redis, over real HTTP: jobs run on the server's own worker thread."""

import io
import os
import socket
import time
from pathlib import Path

import pytest
from PIL import Image
from service_helpers import (
    api_server,
    image_size,
    make_pair,
    png_bytes,
    service_env,
    wait_job,
    wait_until,
)

KEY = "0123456789abcdef-test-key"


@pytest.fixture(scope="module")
def weights(tmp: Path) -> str:
    """A tiny default pair, and a larger one whose jobs last long enough to cancel half-way."""
    return make_pair(tmp / "weights", "tiny") + "," + make_pair(tmp / "weights", "slow", nf=32, nb=2, gc=16)


@pytest.fixture(scope="module")
def env(tmp: Path, weights: str) -> dict[str, str]:
    """The settings of the module's server (the shared `client` fixture): small limits to test the refusals."""
    return service_env(tmp, weights, max_upload_bytes=200_000, max_pixels=100_000, default_alpha=0.6)


def upload(client, data: bytes, name: str = "in.png", **params):
    return client.post("/upscale", params=params, files={"file": (name, data, "image/png")})


def test_upload_progress_result(client) -> None:
    response = upload(client, png_bytes(40, 24), alpha=0.3, tile=16)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}" == job["status_url"]
    assert job["state"] == "queued" and job["alpha"] == 0.3 and job["model"] == "tiny"
    assert job["input"] == {"width": 40, "height": 24} and job["output"] == {"width": 160, "height": 96}

    done = wait_job(client, job["id"])
    assert done["state"] == "finished", done
    assert done["progress"]["done"] == done["progress"]["total"] > 1  # tile=16 over 40x24 takes several tiles
    assert done["started_at"] and done["ended_at"] and done["error"] is None and done["attempts"] == 1
    result = client.get(done["result_url"])
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert 'filename="in_x4.png"' in result.headers["content-disposition"]
    assert image_size(result.content) == (160, 96)


def test_default_alpha_and_formats(client) -> None:
    job = upload(client, png_bytes(20, 20, seed=1), format="webp").json()
    assert job["alpha"] == 0.6  # ESRGAN_DEFAULT_ALPHA
    wait_job(client, job["id"])
    result = client.get(f"/jobs/{job['id']}/result")
    assert result.headers["content-type"] == "image/webp" and image_size(result.content) == (80, 80)
    assert 'filename="in_x4.webp"' in result.headers["content-disposition"]


def test_wait_returns_the_image(client) -> None:
    response = upload(client, png_bytes(16, 12, seed=2), name="photo.jpg", wait="true", format="jpeg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert 'filename="photo_x4.jpg"' in response.headers["content-disposition"]
    assert image_size(response.content) == (64, 48)


def test_bad_alpha_is_422(client) -> None:
    for alpha in ("1.5", "-0.1", "nan", "inf", "abc"):
        response = upload(client, png_bytes(8, 8), alpha=alpha)
        assert response.status_code == 422, (alpha, response.text)
        assert "alpha" in response.json()["detail"]
    response = upload(client, png_bytes(8, 8), model="nope")
    assert response.status_code == 422 and "Unknown model 'nope'" in response.json()["detail"]
    assert upload(client, png_bytes(8, 8), format="gif").status_code == 422
    assert upload(client, png_bytes(8, 8), tile="3").status_code == 422


def test_not_an_image_is_415(client) -> None:
    for data in (b"", b"hello, not an image", png_bytes(30, 30)[:60]):
        response = upload(client, data, name="x.png")
        assert response.status_code == 415, response.text
        assert response.json()["detail"]


def test_too_many_pixels_is_refused(client) -> None:
    flat = io.BytesIO()
    Image.new("RGB", (400, 300), (40, 90, 200)).save(flat, "PNG")  # small file, 120,000 pixels > 100,000
    response = upload(client, flat.getvalue())
    assert response.status_code == 413, response.text
    assert "pixel" in response.json()["detail"].lower()


def test_oversize_upload_is_413(client, tmp: Path) -> None:
    before = set(os.listdir(tmp / "storage"))
    big = os.urandom(300_000)  # > ESRGAN_MAX_UPLOAD_BYTES=200,000
    response = upload(client, big)
    assert response.status_code == 413
    assert "larger than this server accepts" in response.json()["detail"]

    def chunks():  # no Content-Length: the server must count bytes as they stream in
        boundary = b"xyzzy"
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(40):
            yield os.urandom(10_000)
        yield b"\r\n--" + boundary + b"--\r\n"

    response = client.post(
        "/upscale", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyzzy"}
    )
    assert response.status_code == 413
    assert set(os.listdir(tmp / "storage")) == before  # nothing stored


def test_declared_oversize_is_refused_before_the_body_arrives(client) -> None:
    """A Content-Length over the limit gets 413 while the client has sent only the headers."""
    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            b"POST /upscale HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer


def test_unknown_job_is_404(client) -> None:
    for job_id in ("0" * 32, "nope", "..%2F..%2Fetc%2Fpasswd"):
        for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/result"):
            response = client.get(path)
            assert response.status_code == 404, (path, response.text)
    assert client.delete("/jobs/" + "f" * 32).status_code == 404
    assert "No job" in client.get("/jobs/" + "0" * 32).json()["detail"]


def test_client_file_names_never_reach_the_disk(client, tmp: Path) -> None:
    storage = tmp / "storage"
    evil = "../../../../../../tmp/evil name;x.png"
    response = upload(client, png_bytes(8, 8, seed=3), name=evil, wait="true")
    assert response.status_code == 200, response.text
    assert 'filename="evil_name_x_x4.png"' in response.headers["content-disposition"]
    assert not Path("/tmp/evil name;x.png").exists()
    for path in storage.rglob("*"):
        assert path.parent == storage or path.parent.parent == storage
        assert path.name.startswith(("input", "result")) or path.is_dir()


def test_cancel_and_remove(client, tmp: Path) -> None:
    running = upload(client, png_bytes(160, 160), model="slow", tile=32).json()["id"]
    queued, doomed = (upload(client, png_bytes(16, 16, seed=s)).json()["id"] for s in (5, 6))
    cancelled = client.delete(f"/jobs/{doomed}")  # queued behind the slow job: cancelled at once
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert client.get(f"/jobs/{queued}").json()["position"] == 0

    def half_way():
        progress = client.get(f"/jobs/{running}").json()["progress"]
        return progress and 0 < progress["done"] < progress["total"]

    wait_until(half_way, 60, "the slow job to be half-way")
    assert client.delete(f"/jobs/{running}").status_code == 202  # stops at the next tile boundary
    stopped = wait_job(client, running)
    assert stopped["state"] == "cancelled" and stopped["progress"]["done"] < stopped["progress"]["total"]
    assert not (tmp / "storage" / running / "result.png").exists()
    assert client.get(f"/jobs/{running}/result").status_code == 409

    assert wait_job(client, queued)["state"] == "finished"
    assert client.delete(f"/jobs/{queued}").status_code == 204  # an ended job is removed with its files
    assert client.get(f"/jobs/{queued}").status_code == 404
    assert not (tmp / "storage" / queued).exists()


def test_models_health_metrics_docs(client) -> None:
    models = client.get("/models").json()
    assert [m["name"] for m in models] == ["tiny", "slow"]
    tiny = models[0]
    assert tiny["available"] and tiny["default"] and tiny["scale"] == 4
    assert tiny["architecture"]["nf"] == 8 and tiny["psnr"]["provenance"] == "service tests, random"
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["queue"] == "in-process" and ready["workers"] == 1 and ready["weights"]
    metrics = client.get("/metrics").text
    assert 'esrgan_http_requests_total{method="POST",route="/upscale",status="202"}' in metrics
    assert "esrgan_queue_depth 0.0" in metrics and "esrgan_workers 1.0" in metrics
    count = float(next(line.split()[-1] for line in metrics.splitlines() if "job_duration_seconds_count" in line))
    assert count >= 1
    schema = client.get("/openapi.json").json()
    assert {"/upscale", "/jobs/{job_id}", "/jobs/{job_id}/result", "/models", "/readyz"} <= set(schema["paths"])


def test_api_key_and_result_ttl(tmp: Path, weights: str) -> None:
    env = service_env(tmp / "keyed", weights, api_key=KEY, result_ttl=2)
    with api_server(env, tmp / "serve-keyed.log") as client:
        data = png_bytes(12, 12, seed=4)
        assert client.post("/upscale", files={"file": ("a.png", data)}).status_code == 401
        wrong = client.post("/upscale", files={"file": ("a.png", data)}, headers={"X-API-Key": "x" * 20})
        assert wrong.status_code == 401 and "API key" in wrong.json()["detail"]
        for path in ("/models", "/metrics", "/jobs/" + "0" * 32):
            assert client.get(path).status_code == 401
        # Refused while only the headers have arrived: an unauthenticated upload costs the server nothing.
        with socket.create_connection((client.base_url.host, client.base_url.port), timeout=10) as s:
            s.sendall(
                b"POST /upscale HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 150000\r\n\r\n"
            )
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401") and b"www-authenticate: Bearer" in answer.lower().replace(
            b"bearer", b"Bearer"
        ), answer
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200

        bearer = {"Authorization": f"Bearer {KEY}"}
        response = client.post("/upscale", files={"file": ("a.png", data)}, headers={"X-API-Key": KEY})
        assert response.status_code == 202
        job_id = response.json()["id"]
        assert wait_job(client, job_id, headers=bearer)["state"] == "finished"
        assert client.get(f"/jobs/{job_id}/result", headers=bearer).status_code == 200
        assert client.get("/models", headers=bearer).status_code == 200

        # ESRGAN_RESULT_TTL=2: the job and its files go away on their own.
        job_dir = tmp / "keyed" / "storage" / job_id
        assert job_dir.is_dir()
        started = time.monotonic()
        wait_until(lambda: not job_dir.exists(), 15, "the expired job's files to be removed")
        assert time.monotonic() - started > 0.5
        assert client.get(f"/jobs/{job_id}", headers=bearer).status_code == 404

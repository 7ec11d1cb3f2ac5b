"""HTTP hygiene and refusals before the work, against a real `esrgan serve` (in-process workers, an API key set) over
real sockets.

Refusals audited (every way a job could be accepted and then fail for a reason known at submit time), each checked
here or in the test named, with where the check now lives:
- a result past WebP's 16383 or JPEG's 65535 pixels on a side: 422 naming the limit and PNG (route, before storing)
- unknown or unavailable model, alpha/tile/format/scale out of range: 422 (route; test_service_local, _outscale)
- empty, non-image, truncated or broken file, a PNG whose checksummed pixel data does not inflate to its rows: 415
  (uploads.upload_size, in the decoder's words; test_service_units, below)
- over the pixel limit or a decompression bomb: 413 (from the header; test_service_units)
- a TIFF with an EXIF orientation: sized and turned once (images.read_image; test_images, below)
- upload over the size limit: 413 while streaming, after the key check (middleware; below, test_service_local)
- queue or storage unreachable: 503 before anything is queued (test_service_redis, test_storage)
What remains a job failure is what only running it can find (a worker out of memory, the job timeout): those fail in
words and, in Redis mode, are retried only when the worker died (test_hardening_jobs).
"""

import io
import re
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import make_pair, png_bytes, service_env, wait_job

from esrgan.service.middleware import docs_csp

KEY = "hardening-test-key-0123456789"
AUTH = {"X-API-Key": KEY}
MAX_UPLOAD = 200_000
HEAD_TIMEOUT = 2
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def env(tmp: Path) -> dict[str, str]:
    weights = make_pair(tmp / "weights", "tiny")
    return service_env(
        tmp, weights, api_key=KEY, max_upload_bytes=MAX_UPLOAD, max_pixels=70_000, head_timeout=HEAD_TIMEOUT
    )


def port_of(client: httpx.Client) -> int:
    return int(client.base_url.port or 0)


def upload(client: httpx.Client, data: bytes, name: str = "in.png", **params) -> httpx.Response:
    return client.post("/upscale", params=params, files={"file": (name, data)}, headers=AUTH)


def test_security_headers_on_every_answer(client: httpx.Client) -> None:
    job = upload(client, png_bytes(12, 8))
    assert job.status_code == 202, job.text
    finished = wait_job(client, job.json()["id"], headers=AUTH)
    answers = {
        "page": client.get("/"),
        "health": client.get("/healthz"),
        "refused": client.get("/models"),
        "too large": client.post("/upscale", content=b"x" * (MAX_UPLOAD * 2), headers=AUTH),
        "unknown": client.get("/nowhere"),
        "static": client.get("/static/app.js"),
        "result": client.get(finished["result_url"], headers=AUTH),
    }
    assert [answers[k].status_code for k in ("page", "health", "refused", "too large", "unknown", "result")] == [
        200, 200, 401, 413, 404, 200,
    ]  # fmt: skip
    for name, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", name
        assert answer.headers["referrer-policy"] == "no-referrer", name
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], name
        assert "server" not in answer.headers, name  # no advertising of the server software
    page = answers["page"].headers["content-security-policy"]
    assert "script-src 'self';" in page and "style-src 'self';" in page and "img-src 'self' blob: data:" in page
    assert "unsafe" not in page
    result = answers["result"].headers
    assert result["cache-control"] == "private" and result["content-disposition"].startswith("attachment")
    assert "cache-control" not in answers["health"].headers


def test_the_key_is_checked_before_the_size_and_only_where_a_route_is(client: httpx.Client) -> None:
    big = b"x" * (MAX_UPLOAD * 2)
    without = client.post("/upscale", content=big, headers={"content-type": "multipart/form-data; boundary=b"})
    assert without.status_code == 401 and "API key" in without.json()["detail"]
    assert client.post("/upscale", content=big, headers=AUTH).status_code == 413
    for method in ("PUT", "POST", "PATCH", "DELETE"):  # methods /healthz does not take: 405, not 401
        answer = client.request(method, "/healthz", content=b"{}")
        assert answer.status_code == 405 and answer.json()["detail"], method
        assert answer.headers["allow"] == "GET, HEAD, OPTIONS", method
    assert client.put("/upscale", headers=AUTH).headers["allow"] == "OPTIONS, POST"


def test_head_and_options_answer_like_the_other_methods(client: httpx.Client) -> None:
    for path in ("/healthz", "/", "/openapi.json", "/docs"):
        head, get = client.head(path), client.get(path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
    assert client.head("/jobs/" + "a" * 32).status_code == 401  # the key applies to HEAD as to GET
    assert client.head("/jobs/" + "a" * 32, headers=AUTH).status_code == 404
    options = client.options("/jobs/" + "a" * 32)
    assert options.status_code == 204 and options.headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert client.options("/nowhere").status_code == 404


def test_a_404_quotes_only_a_short_part_of_a_long_path(client: httpx.Client) -> None:
    long_id = "z" * 10_000
    answer = client.get(f"/jobs/{long_id}", headers=AUTH)
    assert answer.status_code == 404 and len(answer.text) < 200, answer.text[:300]
    assert "zzz..." in answer.json()["detail"]
    bad = client.post("/upscale", params={"alpha": "q" * 5000}, files={"file": ("a.png", b"x")}, headers=AUTH)
    assert bad.status_code == 422 and len(bad.text) < 1000


def test_the_readme_lists_exactly_the_open_paths(client: httpx.Client) -> None:
    section = README.read_text().split("<!-- open paths -->")[1].split("<!-- end of open paths -->")[0]
    listed = set(re.findall(r"`(/[^`]*)`", section))
    assert listed == {"/", "/static/...", "/healthz", "/readyz", "/docs", "/redoc", "/docs-assets/...", "/openapi.json"}
    concrete = {"/static/...": "/static/app.js", "/docs-assets/...": "/docs-assets/swagger-ui.css"}
    for path in listed:
        assert client.get(concrete.get(path, path)).status_code == 200, path
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method in operations:
            concrete_path = re.sub(r"\{[^}]+\}", "a" * 32, path)
            answer = client.request(method.upper(), concrete_path)
            assert answer.status_code in ((200, 503) if path in listed else (401,)), (method, path, answer.status_code)


def test_the_api_docs_load_nothing_from_elsewhere(client: httpx.Client) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/docs-assets/") for a in assets), assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
        scripts = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
        assert page.headers["content-security-policy"] == docs_csp(scripts)
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "APIKeyHeader": {
            "type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The server's API key, if it has one",
        },
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "The same key as a bearer token"},
    }  # fmt: skip
    upscale = schema["paths"]["/upscale"]["post"]
    assert upscale["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
    assert "400" in upscale["responses"] and "401" in upscale["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    broken = client.post(
        "/upscale", content=b"no boundary here", headers={**AUTH, "content-type": "multipart/form-data; boundary=b"}
    )
    assert broken.status_code == 400 and broken.json()["detail"]


def test_results_past_an_encoders_limit_are_refused_before_anything_is_stored(client: httpx.Client, tmp: Path) -> None:
    before = set((tmp / "storage").iterdir())
    for fmt, width, limit in (("webp", 4100, "16,383"), ("jpeg", 16384, "65,535")):
        answer = upload(client, png_bytes(width, 1), format=fmt)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert f"{width * 4}x4" in detail and f"at most {limit} pixels" in detail and "format=png" in detail
    assert set((tmp / "storage").iterdir()) == before  # nothing stored, nothing queued
    assert upload(client, png_bytes(4095, 1), format="webp").status_code == 202  # 16380 px: within the limit


def tiff_turned(array: np.ndarray, orientation: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "TIFF", tiffinfo={0x0112: orientation})
    return out.getvalue()


def test_a_turned_tiff_comes_back_turned_once(client: httpx.Client) -> None:
    """A TIFF with orientation 6 (and 3) gives the same result as its picture stored already turned, pixel for
    pixel; before, Pillow's own turn and ours added up (6 came back turned 180 degrees, 3 unturned)."""
    stored = np.random.default_rng(3).integers(0, 256, (10, 16, 3), dtype=np.uint8)
    for orientation, turned in ((6, np.rot90(stored, -1)), (3, np.rot90(stored, 2))):
        results = []
        for data, name in ((tiff_turned(stored, orientation), "t.tif"), (png_bytes_of(turned), "p.png")):
            answer = upload(client, data, name=name, wait="true", alpha=0.5)
            assert answer.status_code == 200, answer.text
            results.append(np.asarray(Image.open(io.BytesIO(answer.content))))
        assert results[0].shape == (turned.shape[0] * 4, turned.shape[1] * 4, 3)
        np.testing.assert_array_equal(results[0], results[1])


def png_bytes_of(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(out, "PNG")
    return out.getvalue()


def one_response(conn: socket.socket) -> bytes:
    """Read one whole HTTP/1.1 answer (head and Content-Length body) from a kept-alive connection: the server may
    send the head and the body in separate segments, and a lone recv() would then leave the body for the next read."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096) or pytest.fail(f"closed before a whole head: {data[:80]!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        body += conn.recv(4096) or pytest.fail(f"closed before a whole body: {data[:80]!r}")
    assert len(body) == length, "more bytes than the answer's length"
    return head + b"\r\n\r\n" + body


def test_incomplete_request_heads_time_out(client: httpx.Client) -> None:
    """20 connections that send half a head, one that sends nothing and one that stops half-way through its second
    request: each gets 408 and is closed within the head timeout, while the server goes on answering."""
    port = port_of(client)
    started = time.monotonic()
    halves = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    for conn in halves:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    kept = socket.create_connection(("127.0.0.1", port), timeout=10)
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = one_response(kept)
    assert first.startswith(b"HTTP/1.1 200"), first
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    assert client.get("/healthz").status_code == 200  # meanwhile
    for conn in [*halves, silent, kept]:
        answer = b""
        while chunk := conn.recv(4096):  # until the server closes
            answer += chunk
        conn.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    elapsed = time.monotonic() - started
    assert HEAD_TIMEOUT <= elapsed < HEAD_TIMEOUT + 5, elapsed
    slow_but_whole = socket.create_connection(("127.0.0.1", port), timeout=10)
    for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):  # a whole head, in time, in pieces
        slow_but_whole.sendall(part)
        time.sleep(HEAD_TIMEOUT / 4)
    assert one_response(slow_but_whole).startswith(b"HTTP/1.1 200")
    slow_but_whole.close()

"""Many machines, played by processes that share nothing but the network: a real S3-compatible server (moto's, or
ESRGAN_TEST_S3_URL's), a real redis-server that speaks only TLS and wants a password, `esrgan serve` and two
`esrgan worker` processes, each in its own empty working directory, with no storage folder anywhere."""

import os
from pathlib import Path

import httpx
import pytest
from redis import Redis
from redis.exceptions import AuthenticationError
from rq.job import Job
from service_helpers import (
    TEST_S3,
    S3Server,
    api_server,
    image_size,
    make_pair,
    png_bytes,
    redis_tls_server,
    s3_server,
    service_env,
    start_worker,
    submit,
    wait_job,
    wait_until,
)

TTL = 8  # seconds a finished job and its objects are kept: the expiry test waits for it


@pytest.fixture(scope="module")
def s3(tmp: Path):
    with s3_server(tmp) as server:
        yield server


@pytest.fixture(scope="module")
def redis_url(tmp: Path):
    with redis_tls_server(tmp, password="a-long-redis-password") as url:
        yield url


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.bucket()


def host_env(tmp: Path, s3: S3Server, redis_url: str, bucket: str, **settings: object) -> dict[str, str]:
    """What one host's `.env` would say: the queue, the store (credentials in AWS_*), no folder for job files."""
    weights = make_pair(tmp / "weights", "tiny") + "," + make_pair(tmp / "weights", "slow", nf=32, nb=2, gc=16)
    env = service_env(tmp, weights, redis_url=redis_url, storage_url=f"s3://{bucket}/esrgan", result_ttl=TTL)
    del env["ESRGAN_STORAGE_DIR"]
    env.update({"ESRGAN_S3_ENDPOINT_URL": s3.url, **s3.env})
    env.update({f"ESRGAN_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@pytest.fixture(scope="module")
def env(tmp: Path, s3: S3Server, redis_url: str, bucket: str) -> dict[str, str]:
    return host_env(tmp, s3, redis_url, bucket, s3_presign_seconds=60)


@pytest.fixture(scope="module")
def hosts(tmp: Path) -> dict[str, Path]:
    """An empty working directory per process, as on separate machines."""
    folders = {name: tmp / f"host-{name}" for name in ("api", "w1", "w2")}
    for folder in folders.values():
        folder.mkdir()
    return folders


@pytest.fixture(scope="module")
def client(tmp: Path, env: dict[str, str], hosts: dict[str, Path]):
    """The API host, and the two worker hosts started after it; yields once both workers have registered."""
    with api_server(env, tmp / "serve.log", ready=False, cwd=hosts["api"]) as client:
        workers = {
            name: start_worker(env, tmp / f"{name}.log", "--name", name, cwd=hosts[name]) for name in ("w1", "w2")
        }
        try:
            wait_until(lambda: client.get("/readyz").json().get("workers") == 2, 120, "two workers to register")
            client.workers = workers  # type: ignore[attr-defined]
            yield client
        finally:
            for proc in workers.values():
                proc.stop()


def objects(s3: S3Server, bucket: str, job_id: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket, Prefix=f"esrgan/{job_id}/")
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def test_the_queue_needs_tls_and_the_password(redis_url: str) -> None:
    assert Redis.from_url(redis_url).ping()
    with pytest.raises(AuthenticationError):
        Redis.from_url(redis_url.replace(":a-long-redis-password@", ":wrong@")).ping()


def test_upload_progress_result_across_hosts(client: httpx.Client, s3: S3Server, bucket: str, redis_url: str) -> None:
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["storage"] == "s3" and ready["queue"] == "redis"
    ids = [submit(client, png_bytes(40, 24, seed=s), alpha=0.3, tile=16)["id"] for s in range(4)]
    for job_id in ids:
        job = wait_job(client, job_id)
        assert job["state"] == "finished", job
        assert job["progress"]["done"] == job["progress"]["total"] > 1, job
        assert job["output"] == {"width": 160, "height": 96}
        assert objects(s3, bucket, job_id) == [f"esrgan/{job_id}/input", f"esrgan/{job_id}/result.png"]
    redis = Redis.from_url(redis_url)
    assert {Job.fetch(job_id, connection=redis).worker_name for job_id in ids} == {"w1", "w2"}

    stored = s3.client().get_object(Bucket=bucket, Key=f"esrgan/{ids[0]}/result.png")["Body"].read()
    redirect = client.get(f"/jobs/{ids[0]}/result")
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert location.startswith(f"{s3.url}/{bucket}/esrgan/{ids[0]}/result.png?") and "X-Amz-Expires=60" in location
    direct = httpx.get(location, trust_env=False)  # from the store, not through the API
    assert direct.status_code == 200 and direct.content == stored and image_size(direct.content) == (160, 96)
    assert direct.headers["content-type"] == "image/png"
    assert direct.headers["content-disposition"] == 'attachment; filename="photo_x4.png"'

    streamed = client.get(f"/jobs/{ids[0]}/result", params={"redirect": "false"})
    assert streamed.status_code == 200 and streamed.content == stored
    assert streamed.headers["content-length"] == str(len(stored))
    assert streamed.headers["content-disposition"] == 'attachment; filename="photo_x4.png"'

    waited = client.post("/upscale?wait=true", files={"file": ("b.png", png_bytes(10, 6, seed=9))})
    assert waited.status_code == 200 and waited.headers["content-type"] == "image/png"  # streamed, not redirected
    assert image_size(waited.content) == (40, 24)


def test_no_host_keeps_job_files(client: httpx.Client, hosts: dict[str, Path]) -> None:
    assert wait_job(client, submit(client, png_bytes(16, 16, seed=3))["id"])["state"] == "finished"
    for name, folder in hosts.items():
        assert sorted(os.listdir(folder)) == [], f"{name} wrote {os.listdir(folder)} into its working directory"


def test_expiry_removes_the_objects(client: httpx.Client, s3: S3Server, bucket: str) -> None:
    job_id = submit(client, png_bytes(12, 12, seed=4))["id"]
    assert wait_job(client, job_id)["state"] == "finished"
    assert len(objects(s3, bucket, job_id)) == 2
    wait_until(lambda: not objects(s3, bucket, job_id), TTL + 30, "the API's cleanup to remove the job's objects")
    assert client.get(f"/jobs/{job_id}/result").status_code == 404


def test_a_store_that_refuses_our_keys(tmp: Path, redis_url: str, client: httpx.Client) -> None:
    """Another API host whose keys the store refuses: not ready, uploads refused, nothing queued."""
    with s3_server(tmp, refuse_credentials=True) as refusing:
        env = host_env(tmp, refusing, redis_url, "esrgan-refused")
        redis = Redis.from_url(redis_url)
        before = set(redis.scan_iter("rq:job:*"))
        with api_server(env, tmp / "serve-refused.log", ready=False, cwd=tmp) as other:
            ready = other.get("/readyz")
            assert ready.status_code == 503 and "refused our credentials" in ready.json()["detail"]
            response = other.post("/upscale", files={"file": ("a.png", png_bytes(8, 8))})
            assert response.status_code == 503 and response.headers["content-type"] == "application/json"
            assert "The storage is unavailable" in response.json()["detail"]
            assert "refused our credentials" in response.json()["detail"]
            assert refusing.env["AWS_SECRET_ACCESS_KEY"] not in response.text
        assert set(redis.scan_iter("rq:job:*")) - before == set()  # earlier tests' jobs may expire meanwhile


@pytest.mark.skipif(bool(os.environ.get(TEST_S3)), reason="stops the S3 server: not ours with ESRGAN_TEST_S3_URL")
def test_the_store_going_away_mid_run(client: httpx.Client, s3: S3Server, redis_url: str) -> None:
    """Last in the module: moto is killed while two slow jobs run and one waits. The running ones cannot store their
    results (retried, then failed in words), the waiting one cannot read its upload, and the API refuses new work."""
    running = [submit(client, png_bytes(320, 320, seed=s), model="slow", tile=32)["id"] for s in (20, 21)]
    waiting = submit(client, png_bytes(16, 16, seed=22))["id"]

    def both_half_way() -> bool:
        states = [client.get(f"/jobs/{job_id}").json() for job_id in running]
        return all(s["progress"] and 0 < s["progress"]["done"] < s["progress"]["total"] for s in states)

    wait_until(both_half_way, 90, "both slow jobs to be running")
    s3.process.kill()

    for job_id in running:
        failed = wait_job(client, job_id, timeout=120)
        assert failed["state"] == "failed" and failed["attempts"] == 1, failed  # not run again: the store is gone
        assert "could not be stored after 3 attempts: the object store is not reachable" in failed["error"], failed
    failed = wait_job(client, waiting, timeout=60)
    assert failed["state"] == "failed" and failed["error"] == "the object store is not reachable", failed
    assert s3.url.rsplit(":", 1)[1] not in failed["error"]

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["detail"] == "The storage cannot take new jobs: the object store is not reachable."
    before = set(Redis.from_url(redis_url).scan_iter("rq:job:*"))
    response = client.post("/upscale", files={"file": ("a.png", png_bytes(8, 8))})
    assert response.status_code == 503
    detail = "The storage is unavailable, try again later (the object store is not reachable)."
    assert response.json() == {"detail": detail}
    assert set(Redis.from_url(redis_url).scan_iter("rq:job:*")) - before == set()  # no job left behind
    assert client.get("/healthz").status_code == 200
    for proc in client.workers.values():  # type: ignore[attr-defined]
        assert proc.alive()  # a worker outlives the store's outage

"""Jobs end the way a client was told: a cancelled job never ends finished (even one with a single tile, cancelled
during its forward), and a job that failed for a deterministic reason is not retried in Redis mode (retries are for
workers that died). Real engines, real storage, a real redis-server and real `esrgan worker` / `esrgan serve`."""

from pathlib import Path

import httpx
import pytest
from redis import Redis
from rq.job import Job
from service_helpers import (
    api_server,
    make_pair,
    png_bytes,
    redis_server,
    service_env,
    start_worker,
    wait_job,
    wait_until,
)

from esrgan.service.job import INPUT, JobInfo, JobParams, JobState, Size, result_name
from esrgan.service.redis_queue import RedisJobs
from esrgan.service.runner import JobRunner
from esrgan.service.settings import Settings
from esrgan.service.storage import open_storage

ONE_TILE = {"tile": 512}  # a 256x256 upload is one tile: no tile boundary after its only forward


@pytest.fixture(scope="module")
def weights(tmp: Path) -> str:
    """A tiny pair, and one slow enough (about 2 s for a 256x256 tile on one thread) to cancel during its forward."""
    return make_pair(tmp / "weights", "tiny") + "," + make_pair(tmp / "weights", "slow", nf=32, nb=2, gc=16)


def test_a_cancel_during_the_last_tile_stores_nothing(tmp: Path, weights: str) -> None:
    """The runner itself: the client's cancel arrives while the only tile runs (after the tiler's last check)."""
    settings = Settings(weights=weights, storage_dir=tmp / "runner-storage")
    storage = open_storage(settings)
    storage.put("a" * 32, INPUT, png_bytes(24, 16))
    runner = JobRunner.load(settings, storage)
    cancelled = {"now": False}

    def progress(done: int, total: int) -> None:
        cancelled["now"] = done == total  # the DELETE lands during the last tile

    params = JobParams(model="tiny", alpha=0.5, format="png", tile=512)
    assert runner.run("a" * 32, params, progress=progress, cancel=lambda: cancelled["now"]) is False
    assert not storage.exists("a" * 32, result_name("png"))
    storage.put("b" * 32, INPUT, png_bytes(24, 16))
    assert runner.run("b" * 32, params, progress=lambda d, t: None, cancel=lambda: False) is True  # same runner works
    assert storage.exists("b" * 32, result_name("png"))


def cancel_while_running(client: httpx.Client) -> dict:
    """Upload a one-tile job on the slow pair, DELETE it as soon as it runs, and return how it ended."""
    response = client.post(
        "/upscale", params={"model": "slow", **ONE_TILE}, files={"file": ("a.png", png_bytes(256, 256))}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_until(lambda: client.get(f"/jobs/{job_id}").json()["state"] == "started", 60, "the job to start", every=0.02)
    deleted = client.delete(f"/jobs/{job_id}")
    assert deleted.status_code == 202, deleted.text
    ended = wait_job(client, job_id)
    result = client.get(f"/jobs/{job_id}/result")
    assert result.status_code == 409, f"a cancelled job served its result ({result.headers['content-type']})"
    assert "cancelled" in result.json()["detail"]
    return ended


def test_in_process_a_running_one_tile_job_cancelled_ends_cancelled(tmp: Path, weights: str) -> None:
    with api_server(service_env(tmp / "local", weights), tmp / "local-serve.log") as client:
        ended = cancel_while_running(client)
    assert ended["state"] == "cancelled" and ended["attempts"] == 1, ended


@pytest.fixture(scope="module")
def redis_url(tmp: Path):
    with redis_server(tmp) as url:
        yield url


@pytest.fixture(scope="module")
def redis_env(tmp: Path, weights: str, redis_url: str) -> dict[str, str]:
    return service_env(tmp / "redis", weights, redis_url=redis_url)


@pytest.fixture(scope="module")
def redis_client(tmp: Path, redis_env: dict[str, str]):
    """`esrgan serve` on Redis with one `esrgan worker`, ready."""
    worker = start_worker(redis_env, tmp / "worker.log", "--name", "w1")
    try:
        with api_server(redis_env, tmp / "redis-serve.log") as client:
            yield client
    finally:
        worker.stop()


def test_redis_a_running_one_tile_job_cancelled_ends_cancelled(redis_client: httpx.Client) -> None:
    ended = cancel_while_running(redis_client)
    assert ended["state"] == "cancelled" and ended["attempts"] == 1, ended


def test_redis_a_deterministic_failure_is_not_retried(redis_client: httpx.Client, redis_env, redis_url) -> None:
    """A stored input no decoder reads (the API refuses such uploads up front, so this one is queued past it) fails
    on its first attempt with the decoder's words, and RQ keeps no retry for it; the worker takes the next job."""
    settings = Settings(weights=redis_env["ESRGAN_WEIGHTS"], storage_dir=redis_env["ESRGAN_STORAGE_DIR"])
    storage, jobs = open_storage(settings), RedisJobs(settings.model_copy(update={"redis_url": redis_url}))
    job_id = "c" * 32
    storage.put(job_id, INPUT, b"\x89PNG\r\n\x1a\n but not an image")
    size = Size(width=8, height=8)
    info = JobInfo(
        id=job_id, state=JobState.QUEUED, model="tiny", alpha=0.5, format="png", filename="x.png", input=size,
        output=Size(width=32, height=32),
    )  # fmt: skip
    jobs.submit(job_id, info)
    failed = wait_job(redis_client, job_id)
    assert failed["state"] == "failed" and failed["attempts"] == 1, failed
    assert "broken or truncated" in failed["error"] or "not an image" in failed["error"], failed
    job = Job.fetch(job_id, connection=Redis.from_url(redis_url))
    assert job.retries_left == 0 and job.get_status() == "failed"
    good = redis_client.post("/upscale", files={"file": ("g.png", png_bytes(8, 8))}).json()["id"]
    assert wait_job(redis_client, good)["state"] == "finished"
    jobs.close()

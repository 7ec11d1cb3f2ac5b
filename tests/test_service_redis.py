"""The service with RQ on a real redis-server: `esrgan serve` plus `esrgan worker` processes, over real HTTP."""

from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from service_helpers import (
    api_server,
    free_port,
    image_size,
    make_pair,
    png_bytes,
    redis_server,
    service_env,
    start_worker,
    wait_job,
    wait_until,
)


@pytest.fixture(scope="module")
def redis_url(tmp: Path):
    with redis_server(tmp) as url:
        yield url


@pytest.fixture(scope="module")
def env(tmp: Path, redis_url: str) -> dict[str, str]:
    """The settings of the module's server (the shared `client` fixture) and of its workers."""
    weights = make_pair(tmp / "weights", "tiny") + "," + make_pair(tmp / "weights", "slow", nf=32, nb=2, gc=16)
    return service_env(tmp, weights, redis_url=redis_url)


@pytest.fixture(scope="module")
def workers(tmp: Path, env: dict[str, str]):
    """Two `esrgan worker` processes on the same queue, as on two machines."""
    procs = {name: start_worker(env, tmp / f"{name}.log", "--name", name) for name in ("w1", "w2")}
    yield procs
    for proc in procs.values():
        proc.stop()


def upload(client, data: bytes, **params):
    response = client.post("/upscale", params=params, files={"file": ("in.png", data, "image/png")})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_ready_needs_a_worker_then_upload_progress_result(client, request) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "No worker is running" in ready.json()["detail"]
    request.getfixturevalue("workers")
    wait_until(lambda: client.get("/readyz").json().get("workers") == 2, 90, "two workers to register")

    job_id = upload(client, png_bytes(40, 24), alpha=0.3, tile=16)
    job = wait_job(client, job_id)
    assert job["state"] == "finished", job
    assert job["progress"]["done"] == job["progress"]["total"] > 1 and job["attempts"] == 1
    assert job["alpha"] == 0.3 and job["output"] == {"width": 160, "height": 96}
    result = client.get(job["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert image_size(result.content) == (160, 96)

    image = client.post("/upscale?wait=true", files={"file": ("b.png", png_bytes(10, 6, seed=1))})
    assert image.status_code == 200 and image_size(image.content) == (40, 24)


def test_two_workers_share_a_queue(client, workers, redis_url: str) -> None:
    wait_until(lambda: client.get("/readyz").json().get("workers") == 2, 90, "two workers to register")
    ids = [upload(client, png_bytes(64, 64, seed=s), tile=16) for s in range(6)]
    for job_id in ids:
        assert wait_job(client, job_id)["state"] == "finished"
    redis = Redis.from_url(redis_url)
    assert {Job.fetch(job_id, connection=redis).worker_name for job_id in ids} == {"w1", "w2"}
    metrics = client.get("/metrics").text
    assert "esrgan_workers 2.0" in metrics and "esrgan_queue_up 1.0" in metrics


def test_the_output_scale_reaches_the_worker(client, workers) -> None:
    """The size a job asked for crosses to an `esrgan worker` process with the job, and its result has that size."""
    wait_until(lambda: client.get("/readyz").json().get("workers") == 2, 90, "two workers to register")
    for params, size in (({"scale": 2.5}, (50, 30)), ({"width": 30}, (30, 18))):
        job = wait_job(client, upload(client, png_bytes(20, 12, seed=40), **params))
        assert job["state"] == "finished" and job["output"] == {"width": size[0], "height": size[1]}, job
        assert image_size(client.get(job["result_url"]).content) == size


def test_cancel_queued_and_running_jobs(client, workers, tmp: Path) -> None:
    running = [upload(client, png_bytes(160, 160, seed=s), model="slow", tile=32) for s in (10, 11)]
    queued = upload(client, png_bytes(16, 16, seed=12))  # behind two slow jobs on two workers
    cancelled = client.delete(f"/jobs/{queued}")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"

    def half_way() -> bool:
        progress = client.get(f"/jobs/{running[0]}").json()["progress"]
        return bool(progress) and 0 < progress["done"] < progress["total"]

    wait_until(half_way, 60, "a slow job to be half-way")
    assert client.delete(f"/jobs/{running[0]}").status_code == 202  # the worker stops at its next tile
    stopped = wait_job(client, running[0])
    assert stopped["state"] == "cancelled" and stopped["progress"]["done"] < stopped["progress"]["total"]
    assert not (tmp / "storage" / running[0] / "result.png").exists()
    assert wait_job(client, queued)["state"] == "cancelled"
    assert wait_job(client, running[1])["state"] == "finished"  # the worker that cancelled goes on working


def test_worker_killed_mid_job(client, workers, env, tmp: Path, redis_url: str) -> None:
    """SIGKILL a worker mid-job: the job is retried once by another worker; killed again, it fails with a reason.
    Jobs queued meanwhile all finish, and a failed job leaves no result behind."""
    redis = Redis.from_url(redis_url)

    def half_way(job_id: str, attempt: int) -> str | None:
        """The worker running `job_id`'s attempt number `attempt` once it has done some tiles but not all."""
        info = client.get(f"/jobs/{job_id}").json()
        progress = info["progress"]
        running = info["state"] == "started" and info["attempts"] == attempt
        if running and progress and 0 < progress["done"] < progress["total"]:
            return Job.fetch(job_id, connection=redis).worker_name
        return None

    slow = upload(client, png_bytes(160, 160, seed=7), model="slow", tile=32)
    quick = [upload(client, png_bytes(32, 32, seed=s), tile=16) for s in range(3)]
    first = wait_until(lambda: half_way(slow, 1), 60, "the slow job to be half-way")
    workers[first].kill()
    second = wait_until(lambda: half_way(slow, 2), 60, "the slow job's retry to be half-way")
    assert second != first  # the retry runs on the surviving worker
    for job_id in quick:
        assert wait_job(client, job_id)["state"] == "finished"

    # Kill the survivor too: the job has used its one retry, so it fails with a reason, and no result appears.
    workers[second].kill()
    failed = wait_job(client, slow, timeout=60)
    assert failed["state"] == "failed" and failed["attempts"] == 2
    assert "stopped responding" in failed["error"]
    assert not (tmp / "storage" / slow / "result.png").exists()
    assert client.get(f"/jobs/{slow}/result").status_code == 409
    assert "esrgan_job_failures_total 2.0" in client.get("/metrics").text

    # A fresh worker takes over the queue: a job submitted with no worker alive still finishes.
    waiting = upload(client, png_bytes(20, 20, seed=9))
    third = start_worker(env, tmp / "w3.log", "--name", "w3")
    try:
        job = wait_job(client, waiting, timeout=90)
        assert job["state"] == "finished" and job["attempts"] == 1
    finally:
        third.stop()


def test_worker_concurrency_runs_a_pool(client, workers, env, tmp: Path, redis_url: str) -> None:
    """`esrgan worker --concurrency 2`: two worker processes (RQ's WorkerPool of our worker class) share the jobs."""
    for proc in workers.values():
        proc.stop()  # (already killed when the whole module runs) only the pool may take these jobs
    pool = start_worker(env, tmp / "pool.log", "--concurrency", "2")
    redis = Redis.from_url(redis_url)

    def pool_workers() -> bool:  # registered and ready: their models are loaded before they register
        names = {w.name for w in Worker.all(queue=Queue("esrgan", connection=redis))}
        return len(names - {"w1", "w2", "w3"}) == 2

    try:
        wait_until(pool_workers, 90, "the pool's two workers to register")
        ids = [upload(client, png_bytes(48, 48, seed=s), tile=16) for s in range(6)]
        for job_id in ids:
            assert wait_job(client, job_id, timeout=90)["state"] == "finished"
    finally:
        pool.stop()
    names = {Job.fetch(job_id, connection=redis).worker_name for job_id in ids}
    assert len(names) == 2 and not names & {"w1", "w2", "w3"}, pool.output()


def test_redis_unreachable_is_503(tmp: Path, env: dict[str, str]) -> None:
    down = {**env, "ESRGAN_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "ESRGAN_STORAGE_DIR": str(tmp / "down")}
    with api_server(down, tmp / "serve-down.log", ready=False) as client:
        response = client.post("/upscale", files={"file": ("a.png", png_bytes(8, 8))})
        assert response.status_code == 503
        assert "queue is unavailable" in response.json()["detail"]
        assert list((tmp / "down").iterdir()) == []  # the stored upload was removed again
        assert client.get("/jobs/" + "0" * 32).status_code == 503
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        assert "esrgan_queue_up 0.0" in client.get("/metrics").text

"""Storage is part of readiness: with the job folder read-only, removed or full, POST /upscale answers 503 in JSON
and queues nothing, /readyz says why, and a job that meets a full disk fails in words, not an errno. Real processes
(`esrgan serve` and an `esrgan worker` on a real redis-server) over a real small file system (a 2 MB tmpfs)."""

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from redis import Redis
from service_helpers import (
    api_server,
    fill,
    make_pair,
    png_bytes,
    service_env,
    start_worker,
    submit,
    tmpfs,
    wait_job,
    wait_until,
)

FLOOR = 1024 * 1024  # ESRGAN_MIN_FREE_BYTES here: half the tmpfs


@pytest.fixture(scope="module")
def disk(tmp: Path):
    with tmpfs(tmp / "disk", size="2m") as folder:
        yield folder


@pytest.fixture(scope="module")
def env(tmp: Path, disk: Path, redis_url: str) -> dict[str, str]:
    weights = make_pair(tmp / "weights", "tiny")
    return service_env(tmp, weights, redis_url=redis_url, storage_dir=disk / "jobs", min_free_bytes=FLOOR)


@pytest.fixture(scope="module")
def client(tmp: Path, env: dict[str, str]):
    with api_server(env, tmp / "serve.log", ready=False) as client:
        worker = start_worker(env, tmp / "worker.log")
        try:
            wait_until(lambda: client.get("/readyz").status_code == 200, 90, "the worker, and /readyz")
            yield client
        finally:
            worker.stop()


def refused(client: httpx.Client, redis_url: str, reason: str) -> None:
    """/readyz and POST /upscale both answer 503 in JSON with `reason`, and no job reaches the queue."""
    before = set(Redis.from_url(redis_url).scan_iter("rq:job:*"))
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["detail"] == f"The storage cannot take new jobs: {reason}."
    assert ready.json()["storage"] == "directory"
    response = client.post("/upscale", files={"file": ("a.png", png_bytes(16, 16))})
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": f"The storage is unavailable, try again later ({reason})."}
    assert set(Redis.from_url(redis_url).scan_iter("rq:job:*")) - before == set()  # no new job (old ones may expire)


def test_a_read_only_folder(client: httpx.Client, disk: Path, redis_url: str) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        refused(client, redis_url, "the storage's job folder is on a read-only file system")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert client.get("/readyz").status_code == 200


def test_a_removed_folder(client: httpx.Client, disk: Path, redis_url: str) -> None:
    shutil.rmtree(disk / "jobs")
    refused(client, redis_url, "the storage's job folder does not exist (removed, or its volume is not mounted)")
    (disk / "jobs").mkdir()
    assert client.get("/readyz").status_code == 200


def test_a_full_disk(client: httpx.Client, disk: Path, redis_url: str) -> None:
    fill(disk, leave=FLOOR // 2)
    reason = "the storage is full: 0 MB free, and it keeps at least 1 MB (ESRGAN_MIN_FREE_BYTES) for the jobs it has"
    refused(client, redis_url, reason)

    # Room above the floor for the upload's blocks and not a byte more: the job is accepted, the worker's writes of
    # its result are refused and retried, and the job fails saying why.
    (disk / "filler").unlink()
    upload = png_bytes(64, 64, seed=5)
    block = os.statvfs(disk).f_frsize
    fill(disk, leave=FLOOR + -(-len(upload) // block) * block)
    job = submit(client, upload, tile=64)
    failed = wait_job(client, job["id"], timeout=60)
    assert failed["state"] == "failed" and failed["attempts"] == 1, failed
    assert failed["error"].startswith("result.png could not be stored after 3 attempts: the storage is full: 1 MB free")
    assert "Errno" not in failed["error"]
    assert not (disk / "jobs" / job["id"] / "result.png").exists()
    assert client.get(f"/jobs/{job['id']}/result").status_code == 409
    (disk / "filler").unlink()
    assert client.get("/readyz").status_code == 200

"""The API in Redis mode as an operator sees it: a Redis with a password (which never reaches a log or an answer), a
Redis that stops (503 naming the queue, not its address), and uploads that cost far more than their size (the API
checks them from the header and a bounded decode; the pixels are the workers' business). Real processes throughout.
"""

import os
import time
from pathlib import Path

import httpx
import pytest
from redis import Redis
from service_helpers import (
    REDIS_SERVER,
    Process,
    api_server,
    free_port,
    make_pair,
    png_bytes,
    service_env,
    start_worker,
    wait_job,
    wait_until,
)

from benchmarks.upload_cost import flat_16_bit_rgba

PASSWORD = "s3cret-redis-pass-do-not-log"


@pytest.fixture(scope="module")
def redis_port(tmp: Path):
    """A redis-server that needs a password, on a free loopback port."""
    assert REDIS_SERVER, "redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = Process([*args, "--requirepass", PASSWORD, "--dir", str(tmp)], dict(os.environ), tmp / "redis.log")
    client = Redis(port=port, password=PASSWORD, socket_connect_timeout=0.5)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except Exception:
            return False

    wait_until(answers, 10, "redis-server to accept connections")
    yield port, proc
    proc.stop()


@pytest.fixture(scope="module")
def env(tmp: Path, redis_port) -> dict[str, str]:
    url = f"redis://:{PASSWORD}@127.0.0.1:{redis_port[0]}/0"
    return service_env(tmp, make_pair(tmp / "weights", "tiny"), redis_url=url, max_pixels=4_000_000)


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in KiB."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_uploads_that_cost_more_than_their_size_are_checked_without_their_pixels(client: httpx.Client) -> None:
    """Ten flat 2000x2000 16-bit RGBA PNGs (no worker runs, so all of this is the API's own work): before the header
    check the API grew by about 1.2 GB and spent about 0.9 s of CPU on each, and /healthz waited up to 0.9 s."""
    data = flat_16_bit_rgba()
    assert len(data) < 40_000
    pid = client.process.pid  # type: ignore[attr-defined]
    warm = client.post("/upscale", files={"file": ("warm.png", png_bytes(8, 8))})  # first-request costs first
    peak, cpu = vm_hwm_kib(pid), cpu_seconds(pid)
    health, queued = [], [warm.json()["id"]]
    for i in range(10):
        answer = client.post("/upscale", files={"file": (f"flat{i}.png", data)})
        assert answer.status_code == 202, answer.text
        assert answer.json()["input"] == {"width": 2000, "height": 2000}
        queued.append(answer.json()["id"])
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        health.append(time.monotonic() - started)
    grown_mib = (vm_hwm_kib(pid) - peak) / 1024
    per_upload = (cpu_seconds(pid) - cpu) / 10
    for job_id in queued:  # cancelled while queued: no worker ever runs them
        assert client.delete(f"/jobs/{job_id}").status_code == 202
    assert grown_mib < 32, f"the API's peak memory grew by {grown_mib:.0f} MiB"
    assert per_upload < 0.3, f"{per_upload:.2f} s of API CPU per upload"
    assert max(health) < 0.3, health


def test_the_redis_password_never_reaches_a_log_or_an_answer(client: httpx.Client, env, tmp: Path, redis_port) -> None:
    worker = start_worker(env, tmp / "worker.log", "--name", "w1")
    try:
        wait_until(lambda: client.get("/readyz").json().get("workers") == 1, 90, "the worker to register")
        job = client.post("/upscale", files={"file": ("a.png", png_bytes(8, 8))}).json()
        assert wait_job(client, job["id"])["state"] == "finished"
    finally:
        worker.stop()
    serve_log = client.process.output()  # type: ignore[attr-defined]
    assert f"Redis queue redis://:***@127.0.0.1:{redis_port[0]}/0" in serve_log
    for name, text in (("serve", serve_log), ("worker", worker.output())):
        assert PASSWORD not in text, name
    for path in ("/readyz", "/metrics", "/models", "/openapi.json"):
        assert PASSWORD not in client.get(path).text, path


def test_a_stopped_redis_is_a_503_naming_the_queue_not_its_address(tmp: Path, env, redis_port) -> None:
    """Its own server, so the module's other tests keep their Redis."""
    port, redis = redis_port
    with api_server(env, tmp / "serve-down.log", ready=False) as client:
        assert client.get("/readyz").status_code == 503  # no worker yet: the queue answers
        redis.stop()
        answers = [client.get("/readyz"), client.post("/upscale", files={"file": ("a.png", png_bytes(8, 8))})]
        log = client.process.output()  # type: ignore[attr-defined]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        detail = answer.json()["detail"]
        assert "job queue" in detail and "Redis" in detail, detail
        assert str(port) not in detail and "127.0.0.1" not in detail, detail
    assert PASSWORD not in log and str(port) in log  # the operator's log has the address, never the password

"""Replay issue 15's bad-input and fault list against real processes and print what came of it.

Starts a redis-server (append-only, so a restart keeps its queue), `esrgan serve` on it with an API key, and two
`esrgan worker` processes, all on free loopback ports in a temporary folder, with the embedded default pair. Then:
- bad requests (about 50: broken, truncated, oversized or hostile uploads and parameters, wrong keys and methods,
  results too large for their format, slow request heads) must each be refused with a 4xx and a JSON `detail`;
- faults (a worker killed mid-job, Redis killed and restarted with jobs queued, a one-tile job cancelled mid-forward,
  an input no decoder reads queued past the API) must lose no job, retry only where a worker died, and crash nothing.
Prints a table: cases tried, 4xx with a JSON message, 5xx (target 0; the 503s asked for while Redis is down are
expected answers, not counted), jobs lost (target 0), processes crashed (target 0, not counting the ones the replay
stops or kills), and exits 1 when a target is missed or an answer is not the expected one. Bounded: a couple of minutes.

    python -m benchmarks.faults
"""

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from redis import Redis
from rq.job import Job

from benchmarks.common import machine_line
from esrgan.models.images import Picture, write_image
from esrgan.service.job import INPUT, JobInfo, JobState, Size
from esrgan.service.redis_queue import RedisJobs
from esrgan.service.settings import Settings
from esrgan.service.storage import open_storage

KEY = "faults-benchmark-key-0123456789"
AUTH = {"X-API-Key": KEY}
SCRIPT = Path(sys.executable).parent / "esrgan"
ESRGAN = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-c", "from esrgan.cli import app; app()"]
MAX_UPLOAD = 1_000_000
MAX_PIXELS = 300_000


@dataclass
class Tally:
    """What the replay saw."""

    cases: int = 0
    refused_in_json: int = 0
    server_errors: list[str] = field(default_factory=list)
    surprises: list[str] = field(default_factory=list)  # answers other than the expected ones
    jobs_accepted: int = 0
    jobs_lost: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)

    def answer(self, name: str, response: httpx.Response, expected: int) -> None:
        self.cases += 1
        if response.status_code >= 500 and response.status_code != expected:
            self.server_errors.append(f"{name}: {response.status_code}")
        if response.status_code != expected:
            self.surprises.append(f"{name}: {response.status_code}, expected {expected}: {response.text[:120]}")
        elif 400 <= expected < 500 and response.request.method == "HEAD":  # no body, by definition: its type then
            self.refused_in_json += response.headers.get("content-type") == "application/json"
        elif 400 <= expected < 500:
            try:
                self.refused_in_json += bool(response.json().get("detail"))
            except ValueError:
                self.surprises.append(f"{name}: {expected} without a JSON body")

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.cases += 1
        if not ok:
            self.surprises.append(f"{name}: {detail}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def encoded(array: np.ndarray, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


def chunk(tag: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + tag + body + zlib.crc32(tag + body).to_bytes(4, "big")


def bad_uploads() -> dict[str, tuple[bytes, dict, int]]:
    """name -> (file bytes, query parameters, expected status)."""
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    png = encoded(rgb, "PNG")
    header = png[:33]  # signature + IHDR of a 32x24 RGB PNG
    bad_rows = header + chunk(b"IDAT", zlib.compress(b"\x09" * (24 * 97))) + chunk(b"IEND", b"")
    huge_header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (60000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    flat16 = write_image(Picture(np.full((600, 600, 4), 3000, np.uint16), bits=16), "png")
    return {
        "empty file": (b"", {}, 415),
        "text": (b"hello, not an image", {}, 415),
        "gif": (encoded(rgb, "GIF"), {}, 415),
        "truncated png": (png[:-40], {}, 415),
        "truncated jpeg": (encoded(rgb, "JPEG")[:-300], {}, 415),
        "png, checksummed but broken rows": (bad_rows, {}, 415),
        "png header of 60000x60000": (huge_header + chunk(b"IEND", b""), {}, 413),
        "over the pixel limit": (encoded(np.zeros((600, 600, 3), np.uint8), "PNG"), {}, 413),
        "16-bit rgba over the pixel limit": (flat16, {}, 413),
        "alpha 2": (png, {"alpha": "2"}, 422),
        "alpha nan": (png, {"alpha": "nan"}, 422),
        "alpha text": (png, {"alpha": "much"}, 422),
        "alpha 5000 characters": (png, {"alpha": "9" * 5000}, 422),
        "tile 1": (png, {"tile": "1"}, 422),
        "format gif": (png, {"format": "gif"}, 422),
        "unknown model": (png, {"model": "nope"}, 422),
        "model name of 3000 characters": (png, {"model": "m" * 3000}, 422),
        "scale 9": (png, {"scale": "9"}, 422),
        "width 0": (png, {"width": "0"}, 422),
        "webp past 16383 px": (encoded(np.zeros((1, 4100, 3), np.uint8), "PNG"), {"format": "webp"}, 422),
        "jpeg past 65535 px": (encoded(np.zeros((1, 16384, 3), np.uint8), "PNG"), {"format": "jpeg"}, 422),
    }


def replay_requests(api: httpx.Client, tally: Tally) -> None:
    for name, (data, params, expected) in bad_uploads().items():
        tally.answer(name, api.post("/upscale", params=params, files={"file": ("f.png", data)}, headers=AUTH), expected)
    multipart = {"content-type": "multipart/form-data; boundary=b"}
    requests = [
        ("no file field", "POST", "/upscale", {"headers": AUTH, "data": {"x": "1"}}, 422),
        ("broken multipart", "POST", "/upscale", {"headers": {**AUTH, **multipart}, "content": b"no parts"}, 400),
        ("declared oversize", "POST", "/upscale", {"headers": AUTH, "content": b"x" * (MAX_UPLOAD * 2)}, 413),
        ("oversize without key", "POST", "/upscale", {"content": b"x" * (MAX_UPLOAD * 2)}, 401),
        ("upload without key", "POST", "/upscale", {"files": {"file": ("a.png", b"x")}}, 401),
        ("wrong key", "GET", "/models", {"headers": {"X-API-Key": "w" * 30}}, 401),
        ("wrong bearer", "GET", "/models", {"headers": {"Authorization": "Bearer " + "w" * 30}}, 401),
        ("metrics without key", "GET", "/metrics", {}, 401),
        ("put /healthz", "PUT", "/healthz", {"content": b"{}"}, 405),
        ("delete /healthz", "DELETE", "/healthz", {}, 405),
        ("put /upscale", "PUT", "/upscale", {"headers": AUTH}, 405),
        ("head a job without key", "HEAD", "/jobs/" + "a" * 32, {}, 401),
        ("unknown job", "GET", "/jobs/" + "a" * 32, {"headers": AUTH}, 404),
        ("job id of 10000 characters", "GET", "/jobs/" + "z" * 10_000, {"headers": AUTH}, 404),
        ("result of an unknown job", "GET", f"/jobs/{'b' * 32}/result", {"headers": AUTH}, 404),
        ("delete an unknown job", "DELETE", "/jobs/" + "c" * 32, {"headers": AUTH}, 404),
        ("archive without ids", "GET", "/jobs/archive", {"headers": AUTH}, 422),
        ("archive of malformed ids", "GET", "/jobs/archive", {"headers": AUTH, "params": {"ids": "../x"}}, 422),
        ("unknown path", "GET", "/nowhere", {}, 404),
        ("path traversal", "GET", "/static/../service/settings.py", {}, 404),
    ]
    for name, method, path, options, expected in requests:
        tally.answer(name, api.request(method, path, **options), expected)
    answer = api.post(
        "/upscale", files={"file": ("s.png", encoded(np.zeros((64, 64, 3), np.uint8), "PNG"))}, headers=AUTH
    )
    tally.answer("a good upload", answer, 202)
    tally.jobs_accepted += 1
    result = ended(api, answer.json()["id"], 120)
    tally.check("the good upload finished", bool(result and result["state"] == "finished"), str(result))
    if not result:
        tally.jobs_lost.append(answer.json()["id"])


def slow_heads(port: int, tally: Tally, count: int = 20, head_timeout: float = 3) -> None:
    conns = [socket.create_connection(("127.0.0.1", port), timeout=head_timeout + 10) for _ in range(count)]
    for conn in conns:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for i, conn in enumerate(conns):
        answer = b""
        try:
            while part := conn.recv(4096):
                answer += part
        except OSError:
            pass
        conn.close()
        tally.cases += 1
        if answer.startswith(b"HTTP/1.1 408") and b'"detail"' in answer:
            tally.refused_in_json += 1
        else:
            tally.surprises.append(f"slow head {i}: {answer[:60]!r}")


def submit(api: httpx.Client, size: int, tally: Tally, **params: str) -> str:
    image = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    answer = api.post("/upscale", params=params, files={"file": ("j.png", encoded(image, "PNG"))}, headers=AUTH)
    tally.answer(f"upload {size}x{size}", answer, 202)
    tally.jobs_accepted += 1
    return answer.json()["id"]


def state(api: httpx.Client, job_id: str) -> str:
    return api.get(f"/jobs/{job_id}", headers=AUTH).json()["state"]


def ended(api: httpx.Client, job_id: str, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = api.get(f"/jobs/{job_id}", headers=AUTH)
            if info.status_code == 200 and info.json()["state"] in ("finished", "failed", "cancelled"):
                return info.json()
            if info.status_code == 404:
                return None
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return None


def main() -> int:
    print(machine_line())
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is needed (apt-get install redis-server)"
    tmp = Path(tempfile.mkdtemp(prefix="esrgan-faults-"))
    rport, port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{rport}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_") and "proxy" not in k.lower()}
    env.update(
        ESRGAN_REDIS_URL=redis_url,
        ESRGAN_STORAGE_DIR=str(tmp / "storage"),
        ESRGAN_API_KEY=KEY,
        ESRGAN_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        ESRGAN_MAX_PIXELS=str(MAX_PIXELS),
        ESRGAN_HEARTBEAT="1",
        ESRGAN_HEAD_TIMEOUT="3",
        OMP_NUM_THREADS="1",
    )
    redis_args = [redis_server, "--port", str(rport), "--bind", "127.0.0.1", "--appendonly", "yes", "--dir", str(tmp)]
    procs: dict[str, subprocess.Popen] = {"redis": start(redis_args, env, tmp / "redis.log")}
    on_purpose: set[str] = set()  # processes stopped or killed by the replay itself
    tally = Tally()
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False)
    try:
        procs["api"] = start([*ESRGAN, "serve", "--port", str(port), "--log-level", "warning"], env, tmp / "api.log")
        for name in ("w1", "w2"):
            procs[name] = start([*ESRGAN, "worker", "--name", name], env, tmp / f"{name}.log")
        wait_for(lambda: api.get("/readyz").json().get("workers") == 2, 180, "the API and two workers")

        replay_requests(api, tally)
        slow_heads(port, tally)

        # A worker killed mid-job: the job is retried by the other one and finishes.
        long_job = submit(api, 320, tally, tile="32")
        wait_for(lambda: state(api, long_job) == "started", 60, "the long job to start")
        victim = Job.fetch(long_job, connection=Redis.from_url(redis_url)).worker_name
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(10)
        on_purpose.add(victim)
        result = ended(api, long_job, 180)
        tally.check(
            "worker killed mid-job: retried and finished",
            bool(result and result["state"] == "finished" and result["attempts"] == 2),
            str(result),
        )
        if not result:
            tally.jobs_lost.append(long_job)

        # Redis killed with jobs queued (no worker takes them meanwhile), then restarted from its append-only file.
        for name in ("w1", "w2"):
            if procs[name].poll() is None:
                procs[name].send_signal(signal.SIGTERM)
                procs[name].wait(30)
                on_purpose.add(name)
        wait_for(lambda: api.get("/readyz").json().get("workers") == 0, 60, "the workers to stop")
        queued = [submit(api, 48, tally) for _ in range(5)]
        time.sleep(1.2)  # appendfsync everysec
        procs["redis"].send_signal(signal.SIGKILL)
        procs["redis"].wait(10)
        on_purpose.add("redis")
        # The 5xx asked for: the queue is down (503, in words, and the upload is not kept).
        tally.answer("readyz with Redis down", api.get("/readyz"), 503)
        image = encoded(np.zeros((8, 8, 3), np.uint8), "PNG")
        tally.answer(
            "upload with Redis down", api.post("/upscale", files={"file": ("a.png", image)}, headers=AUTH), 503
        )
        procs["redis2"] = start(redis_args, env, tmp / "redis2.log")
        procs["w3"] = start([*ESRGAN, "worker", "--name", "w3"], env, tmp / "w3.log")
        wait_for(lambda: api.get("/readyz").json().get("workers") == 1, 180, "Redis back and a worker")
        for job_id in queued:
            result = ended(api, job_id, 180)
            if not result or result["state"] != "finished":
                tally.jobs_lost.append(f"{job_id}: {result}")

        # A one-tile job cancelled during its forward ends cancelled, and serves no result.
        one_tile = submit(api, 256, tally, tile="512")
        wait_for(lambda: state(api, one_tile) == "started", 60, "the one-tile job to start")
        tally.answer("cancel a running one-tile job", api.delete(f"/jobs/{one_tile}", headers=AUTH), 202)
        result = ended(api, one_tile, 120)
        tally.check("cancelled one-tile job", bool(result and result["state"] == "cancelled"), str(result))
        tally.answer("result of a cancelled job", api.get(f"/jobs/{one_tile}/result", headers=AUTH), 409)

        # An input no decoder reads, queued past the API: it fails once, in words, and is not retried.
        settings = Settings(storage_dir=tmp / "storage", redis_url=redis_url)
        open_storage(settings).put("d" * 32, INPUT, b"\x89PNG\r\n\x1a\n not an image")
        size = Size(width=8, height=8)
        info = JobInfo(
            id="d" * 32,
            state=JobState.QUEUED,
            model=api.get("/models", headers=AUTH).json()[0]["name"],
            alpha=0.5,
            format="png",
            filename="d.png",
            input=size,
            output=Size(width=32, height=32),
        )
        jobs = RedisJobs(settings)
        jobs.submit("d" * 32, info)
        jobs.close()
        tally.jobs_accepted += 1
        result = ended(api, "d" * 32, 120)
        tally.check(
            "deterministic failure not retried",
            bool(result and result["state"] == "failed" and result["attempts"] == 1 and result["error"]),
            str(result),
        )
        if result is None:
            tally.jobs_lost.append("d" * 32)
    finally:
        api.close()
        for name, proc in procs.items():
            if proc.poll() is not None and name not in on_purpose:
                tally.crashed.append(f"{name} exited with {proc.returncode}")
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    report(tally, tmp)
    ok = not (tally.server_errors or tally.jobs_lost or tally.crashed or tally.surprises)
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def report(tally: Tally, tmp: Path) -> None:
    print("| cases tried | 4xx with a JSON message | 5xx | jobs accepted | jobs lost | processes crashed |")
    print("|---|---|---|---|---|---|")
    row = [tally.cases, tally.refused_in_json, len(tally.server_errors), tally.jobs_accepted, len(tally.jobs_lost)]
    print("| " + " | ".join(str(n) for n in [*row, len(tally.crashed)]) + " |")
    for label, items in (
        ("5xx", tally.server_errors),
        ("lost", tally.jobs_lost),
        ("crashed", tally.crashed),
        ("not as expected", tally.surprises),
    ):
        for item in items:
            print(f"  {label}: {item}")
    if tally.server_errors or tally.jobs_lost or tally.crashed or tally.surprises:
        print(f"logs kept in {tmp}")


if __name__ == "__main__":
    sys.exit(main())

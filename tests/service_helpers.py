"""Real components for the service tests: a redis-server on a free port, `esrgan serve` / `esrgan worker` processes,
tiny model pairs written with our checkpoint format, and small test images."""

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from esrgan.models.checkpoints import save_generator
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet

_SCRIPT = Path(sys.executable).parent / "esrgan"
# The console script of the installed checkout; where the package is only on sys.path (the GPU check's device machine,
# benchmarks/device_run.sh), the same command through this interpreter.
ESRGAN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "from esrgan.cli import app; app()"]
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll `check()` until it returns something truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def make_pair(directory: Path, name: str, nf: int = 8, nb: int = 1, gc: int = 4, seed: int = 0) -> str:
    """Write a PSNR/GAN pair (the GAN one a perturbed copy, as if fine-tuned) and return its ESRGAN_WEIGHTS entry."""
    torch.manual_seed(seed)
    psnr = RRDBNet(RRDBConfig(nf=nf, nb=nb, gc=gc)).state_dict()
    gan = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in psnr.items()}
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / f"{name}_psnr.safetensors", directory / f"{name}_gan.safetensors"
    save_generator(paths[0], psnr, stage="psnr", provenance="service tests, random")
    save_generator(paths[1], gan, stage="gan", provenance="service tests, random")
    return f"{name}={paths[0]}+{paths[1]}"


def png_bytes(width: int, height: int, seed: int = 0, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


class Process:
    """A child process with its output in a log file (shown when a test fails)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(args, env=env, stdout=self._out, stderr=subprocess.STDOUT, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, as when the kernel's out-of-memory killer strikes."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def service_env(tmp: Path, weights: str, **settings: Any) -> dict[str, str]:
    """The environment of a service process: ESRGAN_* settings only, no proxy (loopback must stay direct)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_") and "proxy" not in k.lower()}
    env.update({"ESRGAN_WEIGHTS": weights, "ESRGAN_STORAGE_DIR": str(tmp / "storage"), "ESRGAN_HEARTBEAT": "1"})
    env.update({f"ESRGAN_{k.upper()}": str(v) for k, v in settings.items()})
    env["OMP_NUM_THREADS"] = "1"  # several processes share two cores
    return env


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (never the system's 6379); yields its URL."""
    assert REDIS_SERVER, "redis-server is not installed (apt-get install redis-server)"
    port = free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = Process([*args, "--dir", str(tmp)], dict(os.environ), tmp / f"redis-{port}.log")
    try:
        wait_until(lambda: _answers(port), 10, "redis-server to accept connections")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(7) == b"+PONG\r\n"
    except OSError:
        return False


@contextmanager
def redis_tls_server(tmp: Path, password: str) -> Iterator[str]:
    """A redis-server that speaks only TLS (a self-signed certificate for 127.0.0.1, made here with openssl) and wants
    `password`; yields its `rediss://` URL, which names the certificate as the CA to trust (`ssl_ca_certs=`)."""
    assert REDIS_SERVER, "redis-server is not installed (apt-get install redis-server)"
    cert, key = tmp / "redis-cert.pem", tmp / "redis-key.pem"
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subj]
    subprocess.run([*openssl, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    tls = ["--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    tls += ["--tls-auth-clients", "no"]  # clients check the server's certificate; the password authenticates them
    args = [REDIS_SERVER, "--port", "0", *tls, "--bind", "127.0.0.1", "--requirepass", password, "--save", ""]
    proc = Process([*args, "--appendonly", "no", "--dir", str(tmp)], dict(os.environ), tmp / f"redis-tls-{port}.log")
    url = f"rediss://:{password}@127.0.0.1:{port}/0?ssl_ca_certs={cert}&ssl_cert_reqs=required"
    try:
        wait_until(lambda: _pings(url) or not proc.alive(), 10, "the TLS redis-server to accept connections")
        assert proc.alive(), f"redis-server exited (built without TLS?):\n{proc.output()}"
        yield url
    finally:
        proc.stop()


def _pings(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        with Redis.from_url(url, socket_timeout=1) as client:
            return bool(client.ping())
    except RedisError:
        return False


MOTO_SERVER = Path(sys.executable).parent / "moto_server"
TEST_S3 = "ESRGAN_TEST_S3_URL"  # an S3-compatible server to test against instead of moto (credentials from AWS_*)


@dataclass
class S3Server:
    """An S3-compatible server the tests talk to, and the AWS_* environment a process needs to use it."""

    url: str
    env: dict[str, str]
    process: Process | None  # None: the server of ESRGAN_TEST_S3_URL, not ours to stop

    def client(self) -> Any:
        import boto3

        keys = {k.lower(): v for k, v in self.env.items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        return boto3.client("s3", endpoint_url=self.url, region_name=self.env["AWS_DEFAULT_REGION"], **keys)

    def bucket(self) -> str:
        """A new empty bucket (a fresh name each time, so a shared MinIO keeps tests apart)."""
        name = f"esrgan-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def s3_server(tmp: Path, refuse_credentials: bool = False) -> Iterator[S3Server]:
    """ESRGAN_TEST_S3_URL's server if set, else moto's standalone S3 server on a free loopback port (in memory: its
    objects go with the process). `refuse_credentials`: a server that refuses the credentials given (moto checking
    every request against its empty IAM; an outside server given made-up keys)."""
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    if os.environ.get(TEST_S3):
        keys = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if k in os.environ}
        if refuse_credentials:
            keys = {"AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY00000", "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
        yield S3Server(os.environ[TEST_S3], {**keys, "AWS_DEFAULT_REGION": region}, None)
        return
    port = free_port()
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    if refuse_credentials:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # moto: authenticate every request from the first
    proc = Process([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], env, tmp / f"moto-{port}.log")
    url = f"http://127.0.0.1:{port}"
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": region}
    try:
        wait_until(lambda: _http_answers(url) or not proc.alive(), 30, "moto_server to accept connections")
        assert proc.alive(), f"moto_server exited:\n{proc.output()}"
        yield S3Server(url, keys, proc)
    finally:
        proc.stop()


def _http_answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=0.5, trust_env=False)
    except httpx.TransportError:
        return False
    return True


@contextmanager
def tmpfs(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A small real file system at `folder` (root only), so full and read-only are what the kernel says."""
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)])
    if not mounted or mounted.returncode != 0:
        pytest.skip("needs root and mount(8) for a small tmpfs (a full or read-only file system)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of `folder` until at most `leave` bytes are free."""
    with (folder / "filler").open("wb") as f, contextlib.suppress(OSError):  # ENOSPC: as full as it gets
        while (free := shutil.disk_usage(folder).free) > leave:
            f.write(b"\0" * min(free - leave, 1 << 20))
            f.flush()


@contextmanager
def api_server(env: dict[str, str], log: Path, ready: bool = True, cwd: Path | None = None) -> Iterator[httpx.Client]:
    """`esrgan serve` on a free port (in `cwd`, if given); yields a client once /healthz (and, if `ready`, /readyz)
    answers 200."""
    port = free_port()
    proc = Process([*ESRGAN, "serve", "--port", str(port), "--log-level", "warning"], env, log, cwd)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False)
    try:
        wait_until(lambda: _status(client, "/healthz") == 200 or not proc.alive(), 90, "the API to start")
        assert proc.alive(), f"esrgan serve exited:\n{proc.output()}"
        if ready:
            wait_until(lambda: _status(client, "/readyz") == 200, 90, f"/readyz:\n{proc.output()}")
        client.process = proc  # type: ignore[attr-defined]
        yield client
    finally:
        client.close()
        proc.stop()


def _status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return 0


def start_worker(env: dict[str, str], log: Path, *args: str, cwd: Path | None = None) -> Process:
    return Process([*ESRGAN, "worker", *args], env, log, cwd)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 60, headers: dict | None = None) -> dict:
    """Poll GET /jobs/{id} until the job ends; returns its last JSON."""

    def ended() -> dict | None:
        info = client.get(f"/jobs/{job_id}", headers=headers).json()
        return info if info["state"] in ("finished", "failed", "cancelled") else None

    return wait_until(ended, timeout, f"job {job_id} to end", every=0.1)


def submit(client: httpx.Client, data: bytes, name: str = "photo.png", **params: Any) -> dict:
    """POST /upscale with `data` as a PNG upload named `name`; asserts 202 and returns the job."""
    response = client.post("/upscale", params=params, files={"file": (name, data, "image/png")})
    assert response.status_code == 202, response.text
    return response.json()


def finished_job(client: httpx.Client, data: bytes, name: str = "photo.png", **params: Any) -> dict:
    """`submit`, then wait for the job; asserts it finished and returns its last JSON."""
    job = wait_job(client, submit(client, data, name, **params)["id"])
    assert job["state"] == "finished", job
    return job

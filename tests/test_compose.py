"""Self-hosting, for real: the images build, docker-compose.yml runs, and the stack upscales over HTTP.

The CPU stack (docker-compose.yml + docker-compose.cpu.yml) is built and started with podman and podman-compose under
its own project name, published on 127.0.0.1 only, and torn down with its volumes at the end. The GPU variant is
checked as far as a machine without a GPU and without NVIDIA's base image can: its compose configuration, and its
Dockerfile up to the stage that needs the CUDA image. `make containers` prepares podman and the CPU torch wheel.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from compose_helpers import ROOT, Compose, drop_stale_test_images, ensure_images, image_tag, podman, podman_missing
from service_helpers import free_port, image_size, make_pair, png_bytes, wait_until

from esrgan.models.registry import DEFAULT_PAIR, resolve_pair

CPU_FILES = ["docker-compose.yml", "docker-compose.cpu.yml"]
DEFAULT_ALPHA = 0.35  # set through the env file, so a request without alpha shows the file reached the containers
STOP_GRACE = 300  # seconds a stopping worker gets to finish its job


def test_docker_requirements_match_pyproject() -> None:
    """The images install docker/requirements.txt; it must be the current closure of pyproject's dependencies."""
    result = subprocess.run(
        [sys.executable, "docker/pin_requirements.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


compose_mark = pytest.mark.compose


@dataclass
class Stack:
    compose: Compose
    client: httpx.Client  # the API as published on 127.0.0.1


@pytest.fixture(scope="module")
def podman_ready() -> None:
    reason = podman_missing()
    if reason:
        pytest.skip(reason)
    wheels = list((ROOT / "docker" / "wheels").glob("torch-2.13.0+cpu-*.whl"))
    assert wheels, "docker/wheels/ has no torch CPU wheel: run `make docker-wheels`"


def merged_config(files: list[str]) -> dict:
    """The configuration podman-compose would run, with defaults interpolated (no .env of the caller)."""
    compose = Compose("esrgan-config", files, {"ESRGAN_ENV_FILE": "/nonexistent.env"})
    return yaml.safe_load(compose("config", timeout=60).stdout)


@compose_mark
def test_gpu_compose_config(podman_ready: None) -> None:
    cfg = merged_config(["docker-compose.yml"])
    services = cfg["services"]
    assert set(services) == {"redis", "api", "worker"}
    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "docker/worker-cuda.Dockerfile"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert worker["stop_signal"] == "SIGTERM" and worker["stop_grace_period"] == "10m"
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "/opt/esrgan/healthcheck.py" in services["api"]["healthcheck"]["test"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
        assert services[name]["environment"]["ESRGAN_REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["volumes"] == ["storage:/data/storage", "weights:/data/weights"]
    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["volumes"] == ["redis:/data"]
    assert set(cfg["volumes"]) == {"redis", "storage", "weights"}

    cpu = merged_config(CPU_FILES)["services"]["worker"]
    assert cpu["build"]["dockerfile"] == "docker/Dockerfile" and cpu["build"]["target"] == "worker-cpu"
    assert "deploy" not in cpu, "the CPU override must drop the GPU reservation"


@compose_mark
def test_cuda_image_builds_up_to_the_cuda_base(podman_ready: None) -> None:
    """Everything before `FROM nvidia/cuda` builds here: the pinned CUDA dependency set resolves for Python 3.12 from
    PyPI's metadata with every package pinned, and the project wheel builds."""
    image = f"localhost/esrgan-worker-cuda-wheel:{image_tag()}"
    if podman("image", "exists", image, check=False).returncode != 0:
        dockerfile = "docker/worker-cuda.Dockerfile"
        podman(
            "build", "--format", "docker", "-f", dockerfile, "--target", "wheel", "-t", image, str(ROOT), timeout=1200
        )
    listing = podman("run", "--rm", image, "ls", "/dist").stdout.split()
    assert len(listing) == 1 and listing[0].startswith("esrgan_service-") and listing[0].endswith("-py3-none-any.whl")


@pytest.fixture(scope="module")
def mounted_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PSNR/GAN pair in a host folder, mounted as the weights volume (the 'mounted from the host' path)."""
    folder = tmp_path_factory.mktemp("weights")
    make_pair(folder, "mounted")
    folder.chmod(0o755)  # the containers run as uid 10001
    for file in folder.iterdir():
        file.chmod(0o644)
    return folder


@pytest.fixture(scope="module")
def stack(podman_ready: None, mounted_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    resolve_pair(DEFAULT_PAIR)  # the images embed models/weights/: without it they would have no default model
    tag = image_tag()
    env_file = tmp_path_factory.mktemp("env") / "esrgan.env"
    mounted = "mounted=/data/weights/mounted_psnr.safetensors+/data/weights/mounted_gan.safetensors"
    # One torch thread per process: the API and two workers share two cores here (and OpenMP spin-waits collapse
    # under oversubscription).
    settings = {
        "ESRGAN_DEFAULT_ALPHA": DEFAULT_ALPHA,
        "ESRGAN_WEIGHTS": f"{DEFAULT_PAIR},{mounted}",
        "OMP_NUM_THREADS": 1,
    }
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    port = free_port()
    compose = Compose(
        f"esrgan-test-{port}",
        CPU_FILES,
        {
            "ESRGAN_IMAGE_TAG": tag,
            "ESRGAN_PUBLISH": f"127.0.0.1:{port}",
            "ESRGAN_ENV_FILE": str(env_file),
            "ESRGAN_WEIGHTS_VOLUME": str(mounted_weights),
            "ESRGAN_WORKER_STOP_GRACE": f"{STOP_GRACE}s",
        },
    )
    images = {"redis": "esrgan-redis", "api": "esrgan-api", "worker": "esrgan-worker-cpu"}
    ensure_images(compose, {service: f"localhost/{name}:{tag}" for service, name in images.items()})
    drop_stale_test_images(tag)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False)
    try:
        compose("up", "-d", "--scale", "worker=2")
        yield Stack(compose, client)
    finally:
        client.close()
        compose.down(volumes=True)


def get(client: httpx.Client, path: str) -> httpx.Response | None:
    """GET that treats a connection refused or reset (a container restarting) as no answer yet."""
    try:
        return client.get(path)
    except httpx.TransportError:
        return None


def ready(client: httpx.Client, workers: int) -> dict | None:
    response = get(client, "/readyz")
    if response is None or response.status_code != 200:
        return None
    body = response.json()
    return body if body["workers"] == workers else None


def job(client: httpx.Client, job_id: str) -> dict:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def finished(client: httpx.Client, job_id: str) -> dict | None:
    info = job(client, job_id)
    assert info["state"] in ("queued", "started", "finished"), info
    return info if info["state"] == "finished" else None


def upload(client: httpx.Client, png: bytes, **params: object) -> httpx.Response:
    return client.post("/upscale", params=params, files={"file": ("in.png", png, "image/png")})


def wait_ready(stack: Stack) -> dict:
    return wait_until(lambda: ready(stack.client, workers=2), 300, "the API ready with 2 workers", every=0.5)


@compose_mark
def test_stack_upscales_over_http(stack: Stack) -> None:
    client = stack.client
    body = wait_ready(stack)  # two workers: --scale worker=2
    assert body["queue"] == "redis" and body["weights"] is True

    # The embedded default pair, at the default alpha from the env file: the image itself comes back, 4x larger.
    response = upload(client, png_bytes(40, 32), wait="true")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert image_size(response.content) == (160, 128)

    # The pair mounted from the host, queued and polled.
    response = upload(client, png_bytes(24, 20, seed=1), model="mounted", alpha=0.6)
    assert response.status_code == 202, response.text
    info = wait_until(lambda: finished(client, response.json()["id"]), 120, "the mounted-pair job", every=0.2)
    assert info["model"] == "mounted" and info["alpha"] == 0.6
    result = client.get(info["result_url"])
    assert result.status_code == 200 and image_size(result.content) == (96, 80)

    # Without alpha, the default from the env file applies.
    response = upload(client, png_bytes(16, 16, seed=2))
    assert response.status_code == 202 and response.json()["alpha"] == DEFAULT_ALPHA, response.text
    wait_until(lambda: finished(client, response.json()["id"]), 120, "the default-alpha job", every=0.2)

    models = {m["name"]: m for m in client.get("/models").json()}
    assert models[DEFAULT_PAIR]["available"] and models["mounted"]["available"], models


@compose_mark
def test_containers_are_hardened_and_healthy(stack: Stack) -> None:
    compose = stack.compose
    wait_ready(stack)
    for service in ("redis", "api", "worker"):
        name = compose.container(service)
        # The image's HEALTHCHECK, run by hand: podman has no systemd here to run it on a timer.
        assert podman("healthcheck", "run", name, check=False).returncode == 0, f"{service} is unhealthy"
        assert podman("exec", name, "id", "-u").stdout.strip() != "0", f"{service} runs as root"
    for service in ("api", "worker"):
        found = podman("exec", compose.container(service), "sh", "-c", "command -v gcc cc c++ g++ clang make || true")
        assert found.stdout.strip() == "", f"{service} image has build tools: {found.stdout}"
    signal = podman("inspect", "--format", "{{.Config.StopSignal}}", compose.container("worker")).stdout.strip()
    assert signal in ("15", "SIGTERM")
    # The embedded default pair ships inside the image; `esrgan weights` works through `compose run --rm api`.
    listing = compose("run", "--rm", "api", "esrgan", "weights", "list", timeout=120).stdout
    block = listing.split(f"{DEFAULT_PAIR} (default)")[1].splitlines()[1:4]  # its alpha line, then its two files
    files = [line for line in block if line.strip().startswith(("psnr:", "gan:"))]
    assert len(files) == 2 and all("[present]" in line for line in files), listing


@compose_mark
def test_workers_stop_warm_and_queued_jobs_survive_redis(stack: Stack) -> None:
    client, compose = stack.client, stack.compose
    wait_ready(stack)

    # SIGTERM mid-job (compose stop): the worker finishes the job first, then exits.
    response = upload(client, png_bytes(512, 512, seed=3), model="mounted", tile=16)
    assert response.status_code == 202, response.text
    slow = response.json()["id"]

    def running() -> dict | None:
        info = job(client, slow)
        progress = info["progress"] or {}
        return info if info["state"] == "started" and 0 < progress.get("done", 0) < progress.get("total", 0) else None

    wait_until(running, 120, "the slow job to be running", every=0.1)
    compose.stop("worker", STOP_GRACE)
    logs = [compose.logs(name) for name in compose.containers("worker")]
    busy = next(log for log in logs if f"({slow})" in log)
    assert "warm shut down requested" in busy and f"Job OK ({slow})" in busy, busy[-3000:]
    assert busy.index("warm shut down requested") < busy.index(f"Job OK ({slow})"), busy[-3000:]
    info = job(client, slow)
    assert info["state"] == "finished" and info["attempts"] == 1, info

    # With no worker running a job waits in Redis. Redis is killed (only the fsynced append-only file can keep the
    # job), then the whole stack is recreated from its volumes.
    response = upload(client, png_bytes(30, 26, seed=4), alpha=1.0)
    assert response.status_code == 202, response.text
    queued = response.json()["id"]
    assert job(client, queued)["state"] == "queued"
    time.sleep(1.5)  # appendfsync everysec
    podman("kill", "--signal", "KILL", compose.container("redis"))
    compose.down(volumes=False)
    compose("up", "-d", "redis", "api")
    info = wait_until(
        lambda: (r := get(client, f"/jobs/{queued}")) and r.status_code == 200 and r.json(), 120, "the API"
    )
    assert info["state"] == "queued" and info["position"] == 0 and info["alpha"] == 1.0, info

    compose("up", "-d", "--scale", "worker=2")
    info = wait_until(lambda: finished(client, queued), 300, "the surviving job to finish", every=0.2)
    result = client.get(info["result_url"])
    assert result.status_code == 200 and image_size(result.content) == (120, 104)


@compose_mark
def test_scaling_out_compose_config(podman_ready: None) -> None:
    """A worker-only host (docker-compose.worker.yml, GPU or CPU) and the API host beside it (docker-compose.hub.yml):
    the queue over TLS with a password, job files in the object store; a worker host refuses to start without both."""
    env = {
        "ESRGAN_ENV_FILE": "/nonexistent.env",
        "ESRGAN_REDIS_PASSWORD": "a-long-password",
        "ESRGAN_REDIS_URL": "rediss://:a-long-password@hub.example.org:6380/0?ssl_ca_certs=/tls/redis.crt",
        "ESRGAN_STORAGE_URL": "s3://jobs/esrgan",
    }

    def config(files: list[str]) -> dict:
        return yaml.safe_load(Compose("esrgan-config", files, env)("config", timeout=60).stdout)

    worker = config(["docker-compose.worker.yml"])["services"]["worker"]
    assert worker["environment"]["ESRGAN_REDIS_URL"] == env["ESRGAN_REDIS_URL"]
    assert worker["environment"]["ESRGAN_STORAGE_URL"] == "s3://jobs/esrgan"
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert any(volume.endswith(":/tls:ro") for volume in worker["volumes"])
    assert not any("/data/storage" in volume for volume in worker["volumes"])  # no shared folder on a worker host
    cpu = config(["docker-compose.worker.yml", "docker-compose.cpu.yml"])["services"]["worker"]
    assert cpu["build"]["target"] == "worker-cpu" and "deploy" not in cpu

    hub = config(["docker-compose.yml", "docker-compose.hub.yml"])["services"]
    command = hub["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == "a-long-password"
    assert command[command.index("--tls-port") + 1] == "6380" and hub["redis"]["ports"] == ["6380:6380"]
    for name in ("api", "worker"):
        assert hub[name]["environment"]["ESRGAN_REDIS_URL"] == "redis://:a-long-password@redis:6379/0"
        assert hub[name]["environment"]["ESRGAN_STORAGE_URL"] == "s3://jobs/esrgan"

    bare = Compose("esrgan-config", ["docker-compose.worker.yml"], {"ESRGAN_ENV_FILE": "/nonexistent.env"})
    refused = bare("config", timeout=60, check=False)
    assert refused.returncode != 0 and "set ESRGAN_REDIS_URL in .env" in refused.stdout + refused.stderr

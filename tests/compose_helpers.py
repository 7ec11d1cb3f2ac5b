"""Running docker-compose.yml for real with podman and podman-compose (no Docker engine runs on these machines).

Images are tagged `test-<hash of everything that goes into them>`, so an unchanged tree reuses them and only a change
to code or dependencies costs a build (podman's layer cache then rebuilds just the project wheel).
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the Dockerfiles copy (the allow-list in .dockerignore), plus the files that decide how they build.
BUILD_INPUTS = [
    "pyproject.toml",
    "README.md",
    "__init__.py",
    "cli.py",
    ".dockerignore",
    "docker",
    "models",
    "service",
    "training",
    "web",
]
COMPOSE = Path(sys.executable).parent / "podman-compose"


def podman_missing() -> str | None:
    """Why podman cannot run containers here, or None when it can."""
    try:
        subprocess.run(["podman", "info"], check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        return "podman is not installed (make containers sets it up where ../shared/tools/podman-setup.sh exists)"
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"podman cannot run here: {exc}"
    return None


def _skipped(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return (
        "__pycache__" in parts
        or path.suffix == ".pyc"
        or (parts[:2] == ("docker", "wheels") and "+cpu" not in path.name)
    )


def image_tag() -> str:
    """`test-` and 12 hex digits of a hash over every build input (wheels by name and size, the rest by content)."""
    digest = hashlib.sha256()
    for name in BUILD_INPUTS:
        top = ROOT / name
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if not path.is_file() or _skipped(path):
                continue
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
            data = str(path.stat().st_size).encode() if path.suffix == ".whl" else path.read_bytes()
            digest.update(hashlib.sha256(data).digest())
    return "test-" + digest.hexdigest()[:12]


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


class Compose:
    """`podman-compose -p PROJECT -f FILE...` with a fixed environment: one stack, isolated by its project name."""

    def __init__(self, project: str, files: list[str], env: dict[str, str]) -> None:
        self.project = project
        self.files = files
        # Nothing from the caller's ESRGAN_*/COMPOSE_* variables may leak into the stack under test.
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ESRGAN_", "COMPOSE_"))}
        self.env = {**base, "BUILDAH_FORMAT": "docker", **env}  # docker format keeps the images' HEALTHCHECKs

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        # --env-file /dev/null: a developer's .env in the checkout must not change the stack under test.
        command = ["nice", "-n", "10", str(COMPOSE), "--env-file", "/dev/null", "-p", self.project]
        for file in self.files:
            command += ["-f", str(ROOT / file)]
        result = subprocess.run(
            [*command, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"podman-compose {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.project}_{service}_{index}"

    def containers(self, service: str) -> list[str]:
        """Every container of a service. podman-compose 1.6 forgets `--scale` replicas after `up` (its stop and down
        only know `_1`), so replicas are found, stopped and removed through the labels it puts on them."""
        labels = ["--filter", f"label=io.podman.compose.project={self.project}"]
        labels += ["--filter", f"label=io.podman.compose.service={service}"]
        return sorted(podman("ps", "-a", *labels, "--format", "{{.Names}}").stdout.split())

    def stop(self, service: str, grace: int) -> None:
        """`compose stop SERVICE` for every replica at once: SIGTERM (the STOPSIGNAL), SIGKILL after `grace` s."""
        podman("stop", "--time", str(grace), *self.containers(service), timeout=grace + 60)

    def logs(self, name: str) -> str:
        result = podman("logs", name, check=False)
        return result.stdout + result.stderr

    def down(self, volumes: bool) -> None:
        """`compose down [-v]`, plus what it leaves behind: replicas beyond `_1`, the pod, the network (the volumes)."""
        self("down", *(["-v"] if volumes else []), check=False)
        label = f"label=io.podman.compose.project={self.project}"
        leftovers = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
        if leftovers:
            podman("rm", "--force", "--time", "0", *leftovers, check=False)
        podman("pod", "rm", "--force", f"pod_{self.project}", check=False)
        for kind in ("network", "volume") if volumes else ("network",):
            names = podman(kind, "ls", "--filter", label, "--format", "{{.Name}}", check=False).stdout.split()
            if names:
                podman(kind, "rm", "--force", *names, check=False)


def ensure_images(compose: Compose, images: dict[str, str]) -> None:
    """Build the services whose image (service -> name:tag) is missing, one at a time so later builds hit the cache
    of earlier ones (podman-compose builds in parallel, which would run the same pip install twice at once)."""
    for service, image in images.items():
        if podman("image", "exists", image, check=False).returncode != 0:
            compose("build", service, timeout=1800)


def drop_stale_test_images(keep_tag: str) -> None:
    """Untag the images of earlier test runs (other `test-*` tags of our repositories); images in use stay."""
    listing = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    stale = [ref for ref in listing if re.search(r"/esrgan-[\w-]+:test-", ref) and not ref.endswith(f":{keep_tag}")]
    if stale:
        podman("rmi", *stale, check=False)

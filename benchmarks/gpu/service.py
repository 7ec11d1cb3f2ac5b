"""Step 5, service: `esrgan serve` (in-process workers) on the check's device and a free loopback port, uploads of
several sizes, modes and alphas over HTTP with `wait=true`, every result against the engine run directly on the same
pair, p50/p95 latency, and the GPU's utilisation sampled while the uploads run."""

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

from benchmarks.gpu.base import EMBEDDED, Recorder, mosaic, photo
from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.images import read_image, write_image

TOLERANCE = 1  # grey levels: fp16 kernels may round differently in another process; on the CPU results are equal
Upload = tuple[str, bytes, float]


def png(pixels: np.ndarray, mode: str) -> bytes:
    """8-bit PNG of a float RGB image as RGB, grey (L) or RGBA (a transparency ramp across the width)."""
    rgb = (pixels * 255).round().astype(np.uint8)
    if mode == "L":
        image = Image.fromarray(rgb).convert("L")
    elif mode == "RGBA":
        ramp = np.linspace(0, 255, rgb.shape[1], dtype=np.float32).round().astype(np.uint8)
        image = Image.fromarray(np.dstack([rgb, np.broadcast_to(ramp, rgb.shape[:2])]), "RGBA")
    else:
        image = Image.fromarray(rgb)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def uploads(quick: bool) -> list[Upload]:
    """Photos and mosaics of the travelling photos in several sizes, RGB mostly, one grey and one with alpha."""
    sizes = [(48, 32), (32, 32), (40, 24)] if quick else [(192, 192), (96, 64), (160, 120), (64, 48), (320, 240)]
    alphas = [0.0, 0.25, 0.5, 0.8, 1.0]
    count = 3 if quick else 20
    items = []
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        if not quick and i % 7 == 6:
            w, h = 640, 480
        pixels = photo(i)[:h, :w] if max(w, h) <= 192 else mosaic(w, h)
        mode = "L" if i % 10 == 1 else "RGBA" if i % 10 == 2 else "RGB"
        items.append((f"upload{i:02d}_{w}x{h}_{mode}.png", png(pixels, mode), alphas[i % len(alphas)]))
    return items


class Utilisation(threading.Thread):
    """Samples the GPU's utilisation (%) every 0.1 s: torch.cuda.utilization (NVML), else nvidia-smi."""

    def __init__(self, device: str) -> None:
        super().__init__(daemon=True)
        self.device, self.samples, self.stop = device, [], threading.Event()

    def read(self) -> float | None:
        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:
            if shutil.which("nvidia-smi") is None:
                return None
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
            done = subprocess.run(query, capture_output=True, text=True, timeout=5)
            return float(done.stdout.split()[0]) if done.returncode == 0 and done.stdout.strip() else None

    def run(self) -> None:
        while not self.stop.wait(0.1):
            value = self.read()
            if value is None:
                return
            self.samples.append(value)

    def figures(self) -> dict[str, Any]:
        if not self.samples:
            return {"gpu_util": "n/a"}
        return {"gpu_util_mean_pct": float(np.mean(self.samples)), "gpu_util_max_pct": max(self.samples)}


def post(client: httpx.Client, upload: Upload) -> tuple[bytes, float]:
    name, data, alpha = upload
    started = time.perf_counter()
    response = client.post(
        "/upscale", params={"alpha": alpha, "wait": "true"}, files={"file": (name, data, "image/png")}
    )
    latency = time.perf_counter() - started
    if response.status_code != 200:
        raise AssertionError(f"{name}: HTTP {response.status_code}: {response.text[:300]}")
    return response.content, latency


@contextmanager
def esrgan_serve(env: dict[str, str], log: Path) -> Iterator[httpx.Client]:
    """`esrgan serve` as a user starts it (the working tree's CLI, no install needed), on a free loopback port;
    yields a client once /readyz answers 200 (weights loaded, workers alive)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-c", "from esrgan.cli import app; app()", "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--log-level", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"esrgan serve did not become ready (exit status {proc.poll()})")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)


def serve(rec: Recorder, tmp: Path, items: list[Upload], results: dict[str, bytes]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_") and "proxy" not in k.lower()}
    env.update(
        ESRGAN_WEIGHTS=f"embedded={EMBEDDED[0]}+{EMBEDDED[1]}", ESRGAN_STORAGE_DIR=str(tmp / "storage"),
        ESRGAN_DEVICE=rec.device,
    )  # fmt: skip
    if not rec.cuda:
        env["OMP_NUM_THREADS"] = "1"  # the check's own process keeps computing beside the server on a small CPU box
    log = tmp / "serve.log"
    try:
        with esrgan_serve(env, log) as client:
            client.timeout = httpx.Timeout(120.0)
            _, first = post(client, items[0])  # loads the pair onto the device
            sampler = Utilisation(rec.device)
            if rec.cuda:
                sampler.start()
            latencies = []
            for upload in items:
                results[upload[0]], latency = post(client, upload)
                latencies.append(latency)
            sampler.stop.set()
    finally:
        if log.exists():
            print("esrgan serve log (last lines):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return {
        "uploads": len(latencies),
        "first_upload_s": first,
        "p50_s": float(np.percentile(latencies, 50)),
        "p95_s": float(np.percentile(latencies, 95)),
        **(sampler.figures() if rec.cuda else {"gpu_util": "n/a"}),
    }


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image).astype(np.int32)


def against_engine(rec: Recorder, items: list[Upload], results: dict[str, bytes]) -> dict[str, Any]:
    """Each upload through the same pair in this process, as the worker runs it: read, blend, upscale, PNG."""
    if len(results) != len(items):
        raise AssertionError(f"only {len(results)} of {len(items)} uploads came back")
    engine = Engine.from_pair(*EMBEDDED, EngineSettings(device=rec.device))
    worst, exact = 0, 0
    for name, data, alpha in items:
        engine.set_alpha(alpha)
        direct = pixels(write_image(engine.upscale(read_image(data)), "png"))
        served = pixels(results[name])
        if direct.shape != served.shape:
            raise AssertionError(f"{name}: served {served.shape}, direct {direct.shape}")
        diff = int(np.abs(direct - served).max())
        worst, exact = max(worst, diff), exact + (diff == 0)
    figures = {"compared": len(items), "identical": exact, "max_levels": worst, "tolerance_levels": TOLERANCE}
    if worst > TOLERANCE:
        raise AssertionError(f"a served result differs from the engine's by more than {TOLERANCE} level: {figures}")
    return figures


def run(rec: Recorder) -> None:
    items = uploads(rec.quick)
    results: dict[str, bytes] = {}
    with TemporaryDirectory(prefix="gpu-check-serve-") as tmp:
        rec.check(
            f"esrgan serve on {rec.device}: {len(items)} uploads over HTTP", serve, rec, Path(tmp), items, results
        )
    rec.check("every served result against the engine run directly", against_engine, rec, items, results)

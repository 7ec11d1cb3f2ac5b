"""Builders for the browser tests: a tiny hand-made model pair, a real server process, the system Chromium.

The pair is RRDBNet(nf=8, nb=1, gc=4) with weights set by hand instead of trained: the trunk is switched off and
every conv passes the RGB channels through, so the network is a x4 nearest-neighbour upscale followed by `conv_hr`.
In the PSNR model `conv_hr` blurs and in the GAN model it sharpens, so the result is a real picture, alpha visibly
changes it, and a test can compute the exact expected output.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from service_helpers import api_server, service_env

from esrgan.models.checkpoints import save_generator
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ESRGAN_CHROMIUM", "/usr/bin/chromium"))
# Headless, offline and quiet: no GPU, no QUIC, no background fetches, no first-run or sync UI.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "web"
BLUR = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 16
SHARPEN = -BLUR.copy()
SHARPEN[1, 1] += 2.0  # 2 * identity - blur: an unsharp mask


def tiny_pair(folder: Path) -> tuple[Path, Path]:
    """Write the hand-made PSNR (blur) and GAN (sharpen) generators; return their paths."""
    paths = []
    for stage, kernel in (("psnr", BLUR), ("gan", SHARPEN)):
        net = RRDBNet(RRDBConfig(nf=8, nb=1, gc=4, scale=4))
        with torch.no_grad():
            for p in net.parameters():
                p.zero_()
            for name in ("conv_first", "conv_up1", "conv_up2", "conv_hr", "conv_last"):
                weight = getattr(net, name).weight
                for c in range(3):
                    if name == "conv_hr":
                        weight[c, c] = torch.from_numpy(kernel)
                    else:
                        weight[c, c, 1, 1] = 1.0
        path = folder / f"tiny-{stage}.safetensors"
        save_generator(path, net.state_dict(), stage=stage, provenance="hand-made for the web UI tests")
        paths.append(path)
    return paths[0], paths[1]


def expected_output(rgb: np.ndarray, alpha: float) -> np.ndarray:
    """What the tiny pair computes at `alpha` for an HxWx3 float image in [0, 1], before rounding to 8 bits."""
    up = rgb.repeat(4, axis=0).repeat(4, axis=1)
    kernel = (1 - alpha) * BLUR + alpha * SHARPEN
    padded = np.pad(up, ((1, 1), (1, 1), (0, 0)))
    h, w = up.shape[:2]
    out = sum(kernel[i, j] * padded[i : i + h, j : j + w] for i in range(3) for j in range(3))
    out = np.where(out > 0, out, 0.2 * out)  # the LeakyReLU after conv_hr
    return np.clip(out, 0, 1)


def sample_image(path: Path, size: tuple[int, int] = (96, 64)) -> Path:
    """A small picture with edges, gradients and strokes (drawn 4x larger, then reduced, so the edges are
    anti-aliased like a photo's), so blur and sharpen are visible."""
    w, h = size[0] * 4, size[1] * 4
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    base = np.stack([0.25 + 0.6 * x + 0 * y, 0.35 + 0.4 * y + 0 * x, 0.85 - 0.5 * x * y], axis=-1)
    img = Image.fromarray((base * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((w * 0.08, h * 0.15, w * 0.42, h * 0.75), fill=(250, 200, 40), outline=(40, 30, 20), width=8)
    draw.rectangle((w * 0.55, h * 0.2, w * 0.9, h * 0.55), fill=(30, 60, 120), outline=(255, 255, 255), width=4)
    for i in range(6):
        draw.line((w * 0.55, h * (0.65 + i * 0.05), w * 0.92, h * (0.62 + i * 0.06)), fill=(20, 20, 20), width=4)
    img.resize(size, Image.Resampling.LANCZOS).save(path)
    return path


@contextmanager
def page_server(folder: Path, psnr: Path, gan: Path, **settings: object) -> Iterator[str]:
    """`esrgan serve` (in-process queue: no ESRGAN_REDIS_URL) with the tiny pair on the CPU, 32 px tiles unless
    `settings` say otherwise; yields its URL once ready."""
    env = service_env(folder, f"tiny={psnr}+{gan}", **{"device": "cpu", "tile": 32, **settings})
    with api_server(env, folder / "server.log") as client:
        yield str(client.base_url).rstrip("/")


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None. `make test` installs Debian's chromium when it is missing."""
    if not CHROMIUM.exists() and not shutil.which(str(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (install it with `apt-get install -y chromium`, as `make test` does)"
    return None

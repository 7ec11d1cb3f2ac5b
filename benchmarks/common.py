"""What the benchmarks share: the machine line atop each run, the two network sizes, Real-ESRGAN's plain tiled way,
the 8-bit PSNR, timers that wait for the GPU, and the measured rate of the 3x3 conv that makes up most of RRDBNet's
work.

Device-agnostic on purpose: benchmarks/engine.py runs these on the CPU, benchmarks/gpu_check.py on CUDA (and on the
CPU in its quick mode), so one definition of "the plain approach" serves both.
"""

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esrgan.models.architectures import ArchConfig
from esrgan.models.checkpoints import network_for
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet

PAPER = RRDBConfig()  # nf 64, nb 23, gc 32
COMPACT = RRDBConfig(nf=32, nb=6, gc=16)  # the embedded default pair's architecture
MFLOP_PER_INPUT_PX = 35.85  # paper-size RRDBNet, FACTS.md (17.93 M multiply-adds); conv_flops_per_input_px counts it


def machine_line() -> str:
    """Architecture, cores, `lscpu`'s CPU family and model (families 25 and 26 are all "AMD EPYC", at very different
    speeds, and family 25 comes as model 1 without AVX-512 and as a model with bf16: compare figures only within one
    run), the bf16 flags, torch and its threads, the load, the time: printed atop every run."""
    from esrgan.models.engine import cpu_flags

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in info.splitlines()[:30])}
    family, model = field.get("cpu family", "?"), field.get("model", "?")
    bf16 = " ".join(flag for flag in cpu_flags().split() if "bf16" in flag) or "none"
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, CPU family {family} model {model}, bf16 flags: {bf16}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}, "
        + time.strftime("%F %H:%M")
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two [0, 1] images after the rounding to 8 bit a saved file would get."""
    qa = (np.clip(a, 0, 1) * 255).round()
    qb = (np.clip(b, 0, 1) * 255).round()
    mse = float(np.mean((qa - qb) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def max_grey_levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs((np.clip(a, 0, 1) * 255).round() - (np.clip(b, 0, 1) * 255).round()).max())


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def sync(device: str) -> None:
    """Wait for queued GPU work, so a timer stops when the work is done rather than when it was launched."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], Any], device: str = "cpu", repeats: int = 3) -> tuple[Any, float]:
    """The last result and the fastest of `repeats` timed calls, each bracketed by a device sync."""
    best, result = float("inf"), None
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - started)
    return result, best


@torch.inference_mode()
def plain_upscale(net: RRDBNet, x: np.ndarray, tile: int = 128, pad: int = 10) -> np.ndarray:
    """Real-ESRGAN's tile_process: crop tile + context, run batch 1 in NCHW, paste the tile's centre hard.

    The tiles run on the net's device in its dtype (fp32 on the CPU, `net.half()` on CUDA as Real-ESRGAN does); a tile
    as large as the image is its whole-image forward.
    """
    weight = next(net.parameters())
    t = torch.from_numpy(x).permute(2, 0, 1)[None].to(weight.device, weight.dtype)
    _, c, h, w = t.shape
    s = net.scale
    out = t.new_zeros(1, c, h * s, w * s)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0, py1, px1 = max(y0 - pad, 0), max(x0 - pad, 0), min(y1 + pad, h), min(x1 + pad, w)
            y = net(t[:, :, py0:py1, px0:px1])
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = y[:, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s]
    return out[0].permute(1, 2, 0).float().cpu().numpy()


def conv_rate_gflops(
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    shape: tuple[int, int, int, int] = (1, 64, 256, 256),
    layout: torch.memory_format = torch.channels_last,
    repeats: int = 5,
) -> float:
    """Best of `repeats`: a 3x3 conv 64->64 on `shape`, the shape of most of RRDBNet's work, in GFLOP/s."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device, dtype, memory_format=layout)
    x = torch.rand(shape, device=device, dtype=dtype).contiguous(memory_format=layout)
    flops = 2 * 64 * 64 * 9 * shape[0] * shape[2] * shape[3]
    with torch.inference_mode():
        conv(x)
        _, seconds = best_seconds(lambda: conv(x), device, repeats)
    return flops / seconds / 1e9


def conv_flops_per_input_px(config: ArchConfig) -> float:
    """FLOPs (2 per multiply-add) of the network's convolutions per input pixel, counted on a 16x16 input (on the meta
    device: shapes only, no weights initialised or computed)."""
    with torch.device("meta"):
        net = network_for(config).eval()
    total = 0

    def count(module: torch.nn.Conv2d, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += 2 * module.in_channels * module.out_channels * k * output.shape[2] * output.shape[3]

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net(torch.zeros(1, config.in_ch, 16, 16, device="meta"))
    for hook in hooks:
        hook.remove()
    return total / 256

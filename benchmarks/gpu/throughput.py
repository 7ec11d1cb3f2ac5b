"""Step 3, throughput: the paper-size network through our engine (its defaults and a few tile/batch choices, cuDNN's
benchmark mode, torch.compile last since its compile time is the least predictable) against Real-ESRGAN's two ways
(whole image, and tiles of 128 px with 10 px of context pasted hard; fp16 NCHW batch 1 on CUDA, fp32 on the CPU), and
the embedded pair. Output MP/s, the achieved conv FLOP/s as a fraction of step 1's rate, and peak GPU memory."""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.common import COMPACT, PAPER, best_seconds, conv_flops_per_input_px, plain_upscale, timed
from benchmarks.gpu.base import EMBEDDED, Recorder, Skip, mosaic, peak_gib, reset_peak
from benchmarks.gpu.environment import CONV_CHECK
from esrgan.models.checkpoints import StateDict, build_generator, read_state_dict
from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.rrdbnet import RRDBConfig, random_state_dict

ALPHA = 0.8


class Bench:
    """Times upscalers on one input and turns seconds into the step's figures."""

    def __init__(self, rec: Recorder, x: np.ndarray) -> None:
        self.rec, self.x = rec, x
        self.repeats = 1 if rec.quick else 2
        self.conv = rec.earlier_figures("environment", CONV_CHECK)
        self.flops = {PAPER: conv_flops_per_input_px(PAPER), COMPACT: conv_flops_per_input_px(COMPACT)}

    def measure(self, upscale: Callable[[np.ndarray], np.ndarray], config: RRDBConfig, precision: str) -> dict:
        """A warm-up call (cuDNN's choices, the allocator's pool; not in quick mode), then the best of `repeats`."""
        if not self.rec.quick:
            upscale(self.x)
        reset_peak(self.rec.device)
        out, seconds = best_seconds(lambda: upscale(self.x), self.rec.device, self.repeats)
        h, w = self.x.shape[:2]
        tflops = h * w * self.flops[config] / seconds / 1e12
        rate = self.conv.get(f"{precision}_tflops")
        return {
            "upscale_s": seconds,
            "out_mp_s": out.shape[0] * out.shape[1] / 1e6 / seconds,
            "tflops": tflops,
            "of_conv_rate": tflops / rate if isinstance(rate, float) else None,
            "peak_gib": peak_gib(self.rec.device),
            "precision": precision,
        }


def ours(bench: Bench, sd: StateDict, tile: int | None = None, batch: int | None = None) -> dict[str, Any]:
    engine = Engine(sd, None, EngineSettings(device=bench.rec.device, tile=tile, batch=batch))
    figures = bench.measure(engine.upscale_array, PAPER, "fp16" if bench.rec.cuda else "fp32")
    return {"tile": engine.tile, "overlap": engine.overlap, "batch": engine.batch, **figures}


def ours_cudnn_benchmark(bench: Bench, sd: StateDict) -> dict[str, Any]:
    """The defaults with cuDNN timing its algorithms per shape (the engine leaves it off)."""
    if not bench.rec.cuda:
        raise Skip("cuDNN is CUDA's")
    torch.backends.cudnn.benchmark = True
    try:
        return ours(bench, sd)
    finally:
        torch.backends.cudnn.benchmark = False


def real_esrgan(bench: Bench, sd: StateDict, tile: int | None, pad: int) -> dict[str, Any]:
    """Real-ESRGAN's RealESRGANer: `model.half()` on CUDA, NCHW, batch 1; `tile` None = the whole image at once."""
    net = build_generator(sd).eval().to(bench.rec.device)
    precision = "fp16" if bench.rec.cuda else "fp32"
    if bench.rec.cuda:
        net = net.half()
    side = tile or max(bench.x.shape[:2])
    figures = bench.measure(lambda x: plain_upscale(net, x, side, pad), PAPER, precision)
    return {"tile": side, "pad": pad, **figures}


def embedded(bench: Bench) -> dict[str, Any]:
    engine = Engine.from_pair(*EMBEDDED, EngineSettings(device=bench.rec.device))
    engine.set_alpha(ALPHA)
    figures = bench.measure(engine.upscale_array, COMPACT, "fp16" if bench.rec.cuda else "fp32")
    return {"tile": engine.tile, "batch": engine.batch, **figures}


def compiled(bench: Bench, sd: StateDict, config: RRDBConfig, baseline: dict[str, Any]) -> dict[str, Any]:
    """torch.compile of the network inside the engine's runner (`engine.runner.model`), defaults otherwise. Quick mode
    compiles with the `eager` backend: the same code path in seconds, no speed to read."""
    engine = Engine(sd, None, EngineSettings(device=bench.rec.device))
    backend = "eager" if bench.rec.quick else "inductor"
    runner = engine.runner
    runner.model = torch.compile(runner.model, backend=backend, dynamic=False)
    _, compile_s = timed(engine.upscale_array, bench.x)
    figures = bench.measure(engine.upscale_array, config, "fp16" if bench.rec.cuda else "fp32")
    speedup = baseline["upscale_s"] / figures["upscale_s"] if "upscale_s" in baseline else None
    return {"backend": backend, "first_call_s": compile_s, "vs_defaults": speedup, **figures}


def run(rec: Recorder) -> None:
    sizes = [(40, 24)] if rec.quick else [(1280, 720), (640, 480)]
    choices = [(16, 2)] if rec.quick else [(256, 8), (512, 2), (512, 4), (768, 2)]
    need = 1 if rec.quick else 8  # seconds a row is expected to take at most
    sd = random_state_dict(PAPER, 0, "paper")
    half = "fp16 NCHW batch 1" if rec.cuda else "fp32 NCHW batch 1"
    defaults: dict[str, Any] = {}
    for w, h in sizes:
        bench = Bench(rec, mosaic(w, h))
        size = f"{w}x{h}"
        found = rec.check(f"paper-size, ours, defaults, {size}", ours, bench, sd, need_s=need)
        defaults = defaults or found
        for tile, batch in choices:
            rec.check(f"paper-size, ours, tile {tile} batch {batch}, {size}", ours, bench, sd, tile, batch, need_s=need)
        rec.check(f"paper-size, ours, whole image, {size}", ours, bench, sd, max(w, h), 1, need_s=need)
        rec.check(f"paper-size, ours, defaults + cudnn.benchmark, {size}", ours_cudnn_benchmark, bench, sd, need_s=need)
        rec.check(f"paper-size, Real-ESRGAN whole image, {half}, {size}", real_esrgan, bench, sd, None, 0, need_s=need)
        tiled = "tile 16 + 4 px" if rec.quick else "tile 128 + 10 px"
        args = (16, 4) if rec.quick else (128, 10)
        rec.check(f"paper-size, Real-ESRGAN {tiled}, hard paste, {half}, {size}", real_esrgan, bench, sd, *args)
        rec.check(f"embedded pair, alpha {ALPHA}, ours, defaults, {size}", embedded, bench, need_s=need)
    w, h = sizes[0]
    bench = Bench(rec, mosaic(w, h))
    if rec.quick:  # the code path only: the embedded network, which dynamo traces in seconds on a CPU
        embedded_psnr = read_state_dict(EMBEDDED[0])
        rec.check(f"torch.compile (eager backend), embedded, {w}x{h}", compiled, bench, embedded_psnr, COMPACT, {})
    else:
        rec.check(
            f"torch.compile, paper-size, ours, defaults, {w}x{h}", compiled, bench, sd, PAPER, defaults, need_s=60
        )

"""Step 2, correctness: the suite's CUDA tests, half precision against fp32 on the same weights and tiles, the fp16
overflow fallback forced, and the out-of-memory back-off forced (simulated on any device, and a real CUDA OOM under a
memory cap) and seen to split, never skip."""

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from benchmarks.common import PAPER, max_grey_levels, psnr
from benchmarks.gpu.base import EMBEDDED, REPO, Recorder, Skip, mosaic, peak_gib, reset_peak
from esrgan.models.checkpoints import StateDict, read_state_dict
from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.rrdbnet import random_state_dict
from esrgan.models.tiling import tiled_forward, window_size

ALPHA = 0.8  # the service's default alpha
MIN_PSNR_DB = 30.0  # below this a half-precision or backed-off output is visibly wrong, not rounding
Pair = tuple[StateDict, StateDict | None]


class Collect(logging.Handler):
    """Keeps the messages of warnings logged under `esrgan` (the engine's fallbacks say what they did)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def engine_warnings() -> Iterator[list[str]]:
    handler = Collect()
    logger = logging.getLogger("esrgan")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def cuda_tests(rec: Recorder) -> dict[str, Any]:
    """`pytest -m cuda` on the test files that carry the marker (collecting every file would import the browser and
    compose tests, whose tools the device lacks)."""
    if not rec.cuda:
        raise Skip("no CUDA")
    files = sorted(str(p) for p in (REPO / "tests").glob("test_*.py") if "pytest.mark.cuda" in p.read_text())
    if not files:
        raise AssertionError("no test file carries @pytest.mark.cuda")
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", *files]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=max(10, rec.left() - 10))
    print(done.stdout[-4000:], done.stderr[-2000:], sep="\n")
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode != 0 or "passed" not in summary or "skipped" in summary:
        raise AssertionError(f"pytest exited {done.returncode}, and on a CUDA machine nothing may skip: {summary}")
    return {"files": [f.rsplit("/", 1)[-1] for f in files], "summary": summary}


def engine_for(rec: Recorder, pair: Pair, **settings: Any) -> Engine:
    engine = Engine(pair[0], pair[1], EngineSettings(device=rec.device, **settings))
    if pair[1] is not None:
        engine.set_alpha(ALPHA)
    return engine


def precisions(rec: Recorder, pair: Pair, x: np.ndarray) -> dict[str, Any]:
    """fp16 and bf16 outputs against fp32, each through its own engine with the same tiles (the device defaults)."""
    reference = engine_for(rec, pair, precision="fp32")
    fp32 = reference.upscale_array(x)
    figures: dict[str, Any] = {"input": f"{x.shape[1]}x{x.shape[0]}", "tile": reference.tile, "batch": reference.batch}
    if not rec.cuda:
        raise Skip(f"the engine runs fp32 only on the CPU (fp32 output {fp32.shape[1]}x{fp32.shape[0]} computed)")
    bad = []
    for name in ("fp16", "bf16"):
        out = engine_for(rec, pair, precision=name).upscale_array(x)
        quality = psnr(out, fp32)
        figures.update({f"{name}_psnr_db": quality, f"{name}_max_abs": float(np.abs(out - fp32).max())})
        figures[f"{name}_max_levels"] = max_grey_levels(out, fp32)
        if not np.isfinite(out).all() or quality < MIN_PSNR_DB:
            bad.append(f"{name}: {quality:.1f} dB, finite {bool(np.isfinite(out).all())}")
    if bad:
        raise AssertionError(f"half precision differs visibly from fp32 (< {MIN_PSNR_DB} dB): {bad}; {figures}")
    return figures


def overflow(rec: Recorder, pair: Pair) -> dict[str, Any]:
    """conv_last scaled by 1e5 drives the output past fp16's 65504: the engine must see Inf and redo the tile in
    fp32, giving what an fp32 engine gives."""
    if not rec.cuda:
        raise Skip("fp16 runs on CUDA only: nothing overflows on the CPU path")
    sd = {k: v * 1e5 if k == "conv_last.weight" else v for k, v in pair[0].items()}
    tiles = torch.from_numpy(mosaic(64, 64)).permute(2, 0, 1)[None].contiguous()
    with engine_warnings() as messages:
        out = Engine(sd, None, EngineSettings(device=rec.device, precision="fp16")).forward_tiles(tiles)
    fp32 = Engine(sd, None, EngineSettings(device=rec.device, precision="fp32")).forward_tiles(tiles)
    retried = [m for m in messages if "non-finite" in m]
    relative = float((out - fp32).abs().max() / fp32.abs().max())
    figures = {"warnings": retried[:2], "max_abs_output": float(out.abs().max()), "vs_fp32_relative": relative}
    if not retried or not torch.isfinite(out).all() or out.abs().max() <= 65504 or relative > 1e-3:
        raise AssertionError(f"the fp16 overflow was not redone in fp32: {figures}")
    return figures


def refusing(fn: Callable[[torch.Tensor], torch.Tensor], limit: int, calls: list[tuple[int, int, int]]):
    """`fn`, except that a batch of several tiles, or a tile larger than `limit`, raises CUDA's out-of-memory error,
    as a device too small for them would: the engine's back-off must split them."""

    def run(tiles: torch.Tensor) -> torch.Tensor:
        calls.append((tiles.shape[0], *tiles.shape[-2:]))
        if tiles.shape[0] > 1 or max(tiles.shape[-2:]) > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated by the GPU check: {tuple(tiles.shape)})")
        return fn(tiles)

    return run


def simulated_oom(rec: Recorder, pair: Pair) -> dict[str, Any]:
    """An input of 2 x 2 whole windows, so that they come in batches; every batch and every window is refused, and
    only windows of at most half the size are let through."""
    settings = {} if rec.cuda else {"tile": 32, "overlap": 4, "batch": 2}
    engine = engine_for(rec, pair, **settings)
    side = 2 * engine.tile - engine.overlap
    x = torch.from_numpy(mosaic(side, side)).permute(2, 0, 1)[None].contiguous()
    geometry = (engine.scale, engine.tile, engine.overlap, engine.batch)
    reference = tiled_forward(x, engine.forward_tiles, *geometry, align=engine.align)
    calls: list[tuple[int, int, int]] = []
    limit = window_size(side, engine.tile, engine.overlap, engine.align) // 2
    with engine_warnings() as messages:
        out = tiled_forward(x, refusing(engine.forward_tiles, limit, calls), *geometry, align=engine.align)
    ran = [c for c in calls if c[0] == 1 and max(c[1:]) <= limit]
    quality = psnr(out[0].permute(1, 2, 0).numpy(), reference[0].permute(1, 2, 0).numpy())
    figures = {
        "input": f"{side}x{side}",
        "tile": engine.tile,
        "batch": engine.batch,
        "refused_calls": len(calls) - len(ran),
        "ran_calls": len(ran),
        "largest_ran": max((max(c[1:]) for c in ran), default=0),
        "warnings": sorted(set(m.split(":")[0] for m in messages)),
        "vs_no_oom_psnr_db": quality,
    }
    if out.shape != reference.shape or not torch.isfinite(out).all() or not ran or quality < MIN_PSNR_DB:
        raise AssertionError(f"the back-off did not split the refused tiles into a whole output: {figures}")
    return figures


def real_oom(rec: Recorder) -> dict[str, Any]:
    """A 1024 px tile of the paper-size network in fp16 needs ~6 GiB; under a 3 GiB cap (a public torch setting, no
    patching) it runs out of memory for real and the engine must split it."""
    if not rec.cuda:
        raise Skip("a real OOM needs a CUDA memory cap; the simulated check runs the same back-off")
    engine = engine_for(rec, (random_state_dict(PAPER, 0, "paper"), None))
    x = mosaic(1024, 1024)
    cap = 3 * 2**30
    total = torch.cuda.get_device_properties(rec.device).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / total, rec.device)
    try:
        reset_peak(rec.device)
        with engine_warnings() as messages:
            out = engine.upscale_array(x, tile=1024)
        capped_peak = peak_gib(rec.device)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, rec.device)
        torch.cuda.empty_cache()
    reset_peak(rec.device)
    reference = engine.upscale_array(x, tile=1024)
    figures = {
        "cap_gib": cap / 2**30,
        "capped_peak_gib": capped_peak,
        "uncapped_peak_gib": peak_gib(rec.device),
        "warnings": messages[:4],
        "vs_uncapped_psnr_db": psnr(out, reference),
    }
    if not any("splitting" in m for m in messages) or figures["vs_uncapped_psnr_db"] < MIN_PSNR_DB:
        raise AssertionError(f"no split under the cap, or a wrong output: {figures}")
    return figures


def run(rec: Recorder) -> None:
    rec.check("pytest -m cuda", cuda_tests, rec, need_s=20)
    pair = (read_state_dict(EMBEDDED[0]), read_state_dict(EMBEDDED[1]))
    side = 48 if rec.quick else 256
    x = mosaic(side, side)
    rec.check(f"fp16/bf16 vs fp32: embedded pair, alpha {ALPHA}", precisions, rec, pair, x)
    paper = (random_state_dict(PAPER, 0, "paper"), None)
    note = "paper-size nf64 nb23, random weights (no paper weights offline)"
    rec.check(f"fp16/bf16 vs fp32: {note}", precisions, rec, paper, x[: side // 3, : side // 3], need_s=5)
    rec.check("NaN/Inf fallback: fp16 overflow redone in fp32", overflow, rec, pair)
    rec.check("OOM back-off, simulated: batches and tiles refused, split", simulated_oom, rec, pair, need_s=3)
    rec.check("OOM back-off, real CUDA OOM under a 3 GiB cap", real_oom, rec, need_s=10)

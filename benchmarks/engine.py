"""Inference engine benchmark: our tiled engine against the plain approach, on identical weights and input, one run.

The plain approach is what popular tools do (Real-ESRGAN's `tile_process`): one tile at a time, batch 1, fp32 eager
NCHW, 128 px tiles with 10 px of context, outputs pasted hard. Printed:
  1. speed (output MP/s), achieved FLOP/s against the 3x3-conv peak measured in this run, and the seam PSNR of each
     approach against the whole-image forward (paper-size RRDBNet, 256x256 crop of a Set14 photo);
  2. memory layout and glibc malloc thresholds (each in a fresh process, since mallopt cannot be undone);
  3. PyTorch against ONNX Runtime, and ONNX with alpha as a graph input against one fixed-weight session per alpha;
  4. the time to serve a new alpha (blend + first tile) against a repeated alpha;
  5. peak RSS for 256, 1024 and 2048 px inputs, each in a fresh process (read -> upscale -> PNG, as the CLI does).
`--seams` instead measures tiled (default settings) and the plain hard paste against the whole-image output on every
Set5/Set14 photo.

    nice -n 10 .venv/bin/python -m benchmarks.engine [--seams] [--weights PSNR.safetensors]

(Run as a module from the repository root: it imports benchmarks/common.py, shared with benchmarks/gpu_check.py.)
"""

import argparse
import io
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import (
    COMPACT,
    MFLOP_PER_INPUT_PX,
    PAPER,
    conv_rate_gflops,
    max_grey_levels,
    plain_upscale,
    psnr,
    timed,
)
from esrgan.models.checkpoints import StateDict, build_generator, read_state_dict
from esrgan.models.engine import DEVICE_DEFAULTS, Engine, EngineSettings
from esrgan.models.images import Picture, write_image
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet, random_state_dict
from esrgan.models.tiling import window_size, window_starts

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def photo(size: int, name: str = "Set14/baboon.png") -> np.ndarray:
    """A real photo as float HxWx3: the centre crop for sizes it has, else resized (bicubic) to size x size."""
    im = Image.open(DATASETS / name).convert("RGB")
    w, h = im.size
    if size <= min(w, h):
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    else:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.float32) / 255


def child(argv: list[str]) -> str:
    """Run this script in a fresh process and return its last stdout line."""
    cmd = [sys.executable, __file__, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": "."})
    return out.stdout.strip().splitlines()[-1]


def child_layout(layout: str, malloc: str) -> None:
    """One 128x128 paper-size forward in the given layout, with or without raised malloc thresholds."""
    if malloc == "on":
        from esrgan.models.engine import tune_malloc

        tune_malloc()
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    net = RRDBNet(PAPER).eval().to(memory_format=fmt)
    x = torch.from_numpy(photo(128)).permute(2, 0, 1)[None].contiguous(memory_format=fmt)
    with torch.inference_mode():
        net(x[:, :, :32, :32])
        _, seconds = timed(net, x)
    print(json.dumps({"seconds": seconds}))


def proc_status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MB. Not ru_maxrss: Linux keeps that across fork and exec, so a
    child started by this benchmark would report the parent's high-water mark (it did: 1769 MB at every size)."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def child_rss(size: int) -> None:
    """read-equivalent -> upscale -> PNG for one size x size photo, with a model of the paper's widths (nf 64, gc 32)
    but one block, so activations per tile are the paper's and the run stays short; prints peak RSS in MB."""
    engine = Engine(random_state_dict(RRDBConfig(nf=64, nb=1, gc=32), init="paper"), None, EngineSettings(device="cpu"))
    picture = Picture(photo(size))
    before = proc_status_mb("VmRSS")
    result, seconds = timed(engine.upscale, picture)
    data = write_image(result)
    peak = proc_status_mb("VmHWM")
    print(json.dumps({"before_mb": before, "peak_mb": peak, "seconds": seconds, "png_mb": len(data) / 1e6}))


def onnx_rows(psnr_sd: StateDict, gan_sd: StateDict, x: np.ndarray) -> list[tuple[str, float]]:
    """PyTorch vs ONNX Runtime on one tile, and the two ways to serve alpha with ONNX."""
    import onnxruntime as ort

    from esrgan.models.interpolate import interpolate_state_dicts
    from esrgan.models.onnx_export import export_onnx

    tiles = torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()
    torch_engine = Engine(psnr_sd, gan_sd, EngineSettings(device="cpu"))
    torch_engine.set_alpha(0.5)
    torch_engine.forward_tiles(tiles[:, :, :16, :16])
    _, t_torch = timed(torch_engine.forward_tiles, tiles)

    buf = io.BytesIO()
    _, t_export = timed(export_onnx, psnr_sd, gan_sd, buf)
    alpha_session, t_load_alpha = timed(ort.InferenceSession, buf.getvalue(), None, ["CPUExecutionProvider"])
    feed = {"input": tiles.numpy(), "alpha": np.array(0.5, np.float32)}
    alpha_session.run(None, {**feed, "input": tiles.numpy()[:, :, :16, :16]})
    _, t_alpha_graph = timed(alpha_session.run, None, feed)

    def fixed_session(alpha: float):
        one = io.BytesIO()
        export_onnx(interpolate_state_dicts(psnr_sd, gan_sd, alpha), None, one)
        return ort.InferenceSession(one.getvalue(), providers=["CPUExecutionProvider"])

    fixed, t_new_session = timed(fixed_session, 0.5)
    fixed.run(None, {"input": tiles.numpy()[:, :, :16, :16]})
    _, t_fixed = timed(fixed.run, None, {"input": tiles.numpy()})
    return [
        ("PyTorch eager, channels_last (one tile)", t_torch),
        ("ONNX Runtime, alpha as graph input (one tile)", t_alpha_graph),
        ("ONNX Runtime, fixed weights for one alpha (one tile)", t_fixed),
        ("ONNX export of the pair (alpha input), once", t_export),
        ("ONNX session load (alpha input), once", t_load_alpha),
        ("ONNX: new alpha with a session per alpha (blend+export+load)", t_new_session),
    ]


def alpha_rows(psnr_sd: StateDict, gan_sd: StateDict, x: np.ndarray) -> list[tuple[str, float]]:
    engine = Engine(psnr_sd, gan_sd, EngineSettings(device="cpu"))
    engine.set_alpha(0.1)
    engine.upscale_array(x)

    def serve(alpha: float) -> None:
        engine.set_alpha(alpha)
        engine.upscale_array(x)

    _, t_blend = timed(engine.set_alpha, 0.3)
    _, t_new = timed(serve, 0.7)
    _, t_repeat = timed(serve, 0.7)
    return [
        ("set_alpha to a new alpha (in-place blend)", t_blend),
        ("new alpha: blend + first tile", t_new),
        ("repeated alpha: no-op + first tile", t_repeat),
    ]


def seams(weights: Path | None, init: str) -> None:
    """Tiled at default CPU settings vs whole image, and the plain hard paste vs whole image, on every Set5/Set14
    photo used as the input itself."""
    sd = read_state_dict(weights) if weights else random_state_dict(COMPACT, init=init)
    what = weights.name if weights else f"compact RRDBNet (nf 32, nb 6, gc 16), random weights, {init} init"
    engine = Engine(sd, None, EngineSettings(device="cpu"))
    net = build_generator(sd).eval()
    print(f"model: {what}; ours: tile {engine.tile}, overlap {engine.overlap}, feathered; plain: tile 128, 10 px, hard")
    print("| image | input | windows (ours) | ours vs whole: PSNR dB | max diff | plain vs whole: PSNR dB | max diff |")
    print("|---|---|---|---|---|---|---|")
    worst = {"ours": float("inf"), "plain": float("inf")}
    for path in sorted(DATASETS.glob("Set*/*.png")):
        x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        tiled = engine.upscale_array(x)
        count = 1
        for n in x.shape[:2]:
            count *= len(window_starts(n, window_size(n, engine.tile, engine.overlap), engine.overlap))
        whole = engine.upscale_array(x, tile=max(x.shape[:2]))
        plain = plain_upscale(net, x)
        p_ours, p_plain = psnr(tiled, whole), psnr(plain, whole)
        worst = {"ours": min(worst["ours"], p_ours), "plain": min(worst["plain"], p_plain)}
        name = f"{path.parent.name}/{path.name}"
        print(f"| {name} | {x.shape[1]}x{x.shape[0]} | {count} | {p_ours:.2f} | {max_grey_levels(tiled, whole)} | "
              f"{p_plain:.2f} | {max_grey_levels(plain, whole)} |", flush=True)  # fmt: skip
    print(f"worst: ours {worst['ours']:.2f} dB, plain {worst['plain']:.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seams", action="store_true", help="tiled vs whole on every Set5/Set14 photo")
    parser.add_argument("--weights", type=Path, help="weights for --seams [default: a random compact net]")
    parser.add_argument("--init", choices=["paper", "default"], default="paper", help="random init for --seams")
    parser.add_argument("--child-layout", nargs=2, metavar=("LAYOUT", "MALLOC"), help=argparse.SUPPRESS)
    parser.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_layout:
        return child_layout(*args.child_layout)
    if args.child_rss:
        return child_rss(args.child_rss)
    if args.seams:
        return seams(args.weights, args.init)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"{machine}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}, {time.strftime('%F %H:%M')}")
    started = time.perf_counter()
    psnr_sd = random_state_dict(PAPER, 0, "paper")
    gan_sd = {k: v + 0.01 * torch.randn_like(v) for k, v in psnr_sd.items()}  # a fine-tuned-like GAN half
    x = photo(256)
    out_mp = (256 * 4) ** 2 / 1e6

    peak = conv_rate_gflops()
    peak_nchw = conv_rate_gflops(layout=torch.contiguous_format)
    print(f"\n3x3 conv 64->64 on 1x64x256x256: {peak:.0f} GFLOP/s channels_last, {peak_nchw:.0f} GFLOP/s NCHW")

    net = build_generator(psnr_sd).eval()
    plain, t_plain = timed(plain_upscale, net, x)  # first: before any engine raises the malloc thresholds
    whole_engine = Engine(psnr_sd, None, EngineSettings(device="cpu", tile=256))
    whole_engine.upscale_array(x[:32, :32])
    whole, t_whole = timed(whole_engine.upscale_array, x)
    ours_128, t_128 = timed(Engine(psnr_sd, None, EngineSettings(device="cpu", tile=128, overlap=32)).upscale_array, x)
    ours, t_ours = timed(Engine(psnr_sd, None, EngineSettings(device="cpu")).upscale_array, x)
    d = DEVICE_DEFAULTS["cpu"]
    print("\npaper-size RRDBNet (random init), 256x256 crop of Set14/baboon -> 1024x1024, fp32, CPU")
    print("| approach | seconds | output MP/s | vs plain | GFLOP/s | of conv peak | seam PSNR (dB) | max diff |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [
        ("plain: tile 128 + 10 px context, hard paste, NCHW, batch 1", t_plain, plain),
        ("ours: tile 128, overlap 32, feathered, channels_last", t_128, ours_128),
        (f"ours: defaults (tile {d.tile}, overlap {d.overlap}, batch {d.batch})", t_ours, ours),
        ("whole image in one forward (reference)", t_whole, whole),
    ]
    for name, seconds, out in rows:
        gflops = 256 * 256 * MFLOP_PER_INPUT_PX / 1e3 / seconds
        print(f"| {name} | {seconds:.1f} | {out_mp / seconds:.3f} | {t_plain / seconds:.2f}x | {gflops:.0f} | "
              f"{gflops / peak:.0%} | {psnr(out, whole):.1f} | {max_grey_levels(out, whole)} |")  # fmt: skip

    print("\nmemory layout and malloc thresholds (one 128x128 forward, each in a fresh process)")
    print("| layout | glibc thresholds | seconds |\n|---|---|---|")
    for layout, malloc in (("nchw", "off"), ("nchw", "on"), ("cl", "off"), ("cl", "on")):
        seconds = json.loads(child(["--child-layout", layout, malloc]))["seconds"]
        print(f"| {'channels_last' if layout == 'cl' else 'NCHW'} | {'raised' if malloc == 'on' else 'default'} | "
              f"{seconds:.2f} |")  # fmt: skip

    print("\nbackends (paper-size, one 128x128 tile, fp32, CPU)\n| what | seconds |\n|---|---|")
    for name, seconds in onnx_rows(psnr_sd, gan_sd, x[:128, :128]):
        print(f"| {name} | {seconds:.2f} |")

    print("\nalpha (paper-size pair, one 64x64 tile)\n| what | seconds |\n|---|---|")
    for name, seconds in alpha_rows(psnr_sd, gan_sd, x[:64, :64]):
        print(f"| {name} | {seconds:.3f} |")

    print("\npeak RSS: upscale -> PNG, a fresh process per size; nf 64 / gc 32 but nb 1 (the paper's activations per")
    print("tile, 1/23 of its trunk's work)\n| input | output | RSS before (MB) | peak RSS (MB) | seconds |")
    print("|---|---|---|---|---|")
    for size in (256, 1024, 2048):
        r = json.loads(child(["--child-rss", str(size)]))
        print(f"| {size}x{size} | {size * 4}x{size * 4} | {r['before_mb']:.0f} | {r['peak_mb']:.0f} | "
              f"{r['seconds']:.1f} |")  # fmt: skip
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""Inference engine benchmark on the CPU: our tiled engine against the plain approach, on identical weights and input,
every figure against a baseline measured in the same run (the machine line says which CPU family ran it).

The plain approach is what popular tools do (Real-ESRGAN's `tile_process`): one tile at a time, batch 1, fp32 eager
NCHW, 128 px tiles with 10 px of context, outputs pasted hard. Printed:
  1. the 3x3-conv peak in fp32 and bf16; speed (output MP/s) of the plain approach, ours in fp32 and in bf16 (the
     CPU default where the processor has bf16), each against the conv peak of its precision, and each output against
     the fp32 whole-image forward (paper-size RRDBNet, 256x256 crop of a Set14 photo);
  2. the CPU runtimes on one 128x128 tile, embedded pair and paper-size pair: PyTorch fp32/bf16, ONNX Runtime,
     OpenVINO f32/bf16 (if installed), with what a new alpha costs each (benchmarks/cpu_runtimes.py);
  3. tile size for bf16 on a 384x384 input, with peak RSS (fresh process each), and 1 against 2 threads;
  4. memory layout and glibc malloc thresholds (each in a fresh process, since mallopt cannot be undone);
  5. peak RSS for 256, 1024 and 2048 px inputs at the defaults, each in a fresh process (read -> upscale -> PNG);
  6. whole-process wall time of `esrgan upscale` on a 256x256 photo with a paper-size pair saved to files, against
     the plain approach as a whole process too (median of 3 interleaved rounds), and its output against the fp32
     whole-image result;
  7. preview latency: `esrgan serve` (in-process workers, embedded pair), POST /upscale?wait=true of a 128x128 crop
     at a new alpha each time, median of 10 end to end over loopback, bf16 and fp32, and where the time goes;
  8. the two architectures on the same photo at the engine's defaults, fp32 and bf16: the paper-size RRDBNet against
     a realesr-general-x4v3-sized SRVGGNetCompact (num_feat 64, num_conv 32), output MP/s (`--architectures`: only
     these rows).
`--seams` instead measures tiled (default settings) and the plain hard paste against the whole-image output on every
Set5/Set14 photo.

    .venv/bin/python -m benchmarks.engine [--seams [--precision auto|fp32|bf16]] [--weights PSNR.safetensors]
    .venv/bin/python -m benchmarks.engine --architectures
    .venv/bin/python -m benchmarks.engine --pair PSNR.safetensors GAN.safetensors   # only rows 6, on these files

(Run as a module from the repository root: it imports benchmarks/common.py, shared with benchmarks/gpu_check.py.)
"""

import argparse
import io
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import (
    COMPACT,
    MFLOP_PER_INPUT_PX,
    PAPER,
    best_seconds,
    conv_flops_per_input_px,
    conv_rate_gflops,
    machine_line,
    max_grey_levels,
    plain_upscale,
    psnr,
    timed,
)
from benchmarks.cpu_runtimes import runtime_table
from esrgan.models import srvgg
from esrgan.models.architectures import SRVGGConfig
from esrgan.models.checkpoints import StateDict, build_generator, read_state_dict
from esrgan.models.engine import DEVICE_DEFAULTS, Engine, EngineSettings
from esrgan.models.images import Picture, write_image
from esrgan.models.registry import resolve_pair
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


def child_rss(size: int, tile: int | None, precision: str, nb: int) -> None:
    """read-equivalent -> upscale -> PNG for one size x size photo, with a model of the paper's widths (nf 64, gc 32)
    and `nb` blocks (1: activations per tile are the paper's and the run stays short; 23: the paper's network);
    prints the time, the peak RSS in MB and the output, for the parent to compare."""
    sd = random_state_dict(RRDBConfig(nf=64, nb=nb, gc=32), init="paper")
    engine = Engine(sd, None, EngineSettings(device="cpu", tile=tile, precision=precision))
    picture = Picture(photo(size))
    before = proc_status_mb("VmRSS")
    result, seconds = timed(engine.upscale, picture)
    data = write_image(result)
    peak = proc_status_mb("VmHWM")
    print(json.dumps({"before_mb": before, "peak_mb": peak, "seconds": seconds, "png_mb": len(data) / 1e6}))


def child_plain(psnr_path: str, gan_path: str, alpha: str, src: str, dest: str) -> None:
    """The plain approach as a whole process, as other tools run it: load the pair, blend, build, read, tile, write."""
    from esrgan.models.images import read_image
    from esrgan.models.interpolate import interpolate_state_dicts

    net = build_generator(interpolate_state_dicts(read_state_dict(psnr_path), read_state_dict(gan_path), float(alpha)))
    out = plain_upscale(net.eval(), read_image(Path(src)).as_float())
    # zlib level 1: what cv2.imwrite writes by default, as Real-ESRGAN and chaiNNer save (and as ours does).
    Image.fromarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8)).save(dest, compress_level=1)


def esrgan_command() -> list[str]:
    """The installed `esrgan` console script, else the same command through this interpreter."""
    script = Path(sys.executable).parent / "esrgan"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from esrgan.cli import app; app()"]


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env={**os.environ, "PYTHONPATH": "."})
    return time.perf_counter() - started


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def cli_rows(
    psnr_sd: StateDict, gan_sd: StateDict, work: Path, weights: str = "random weights", rounds: int = 3
) -> None:
    """`esrgan upscale` against the plain approach, each a whole process on the same files; outputs against the fp32
    whole-image result of the same pipeline (pre-pad included: alpha 0.8 blends in the GAN end)."""
    from esrgan.models.checkpoints import save_generator

    alpha = "0.8"
    paths = work / "paper_psnr.safetensors", work / "paper_gan.safetensors"
    save_generator(paths[0], psnr_sd, stage="psnr", provenance=f"benchmark, {weights}")
    save_generator(paths[1], gan_sd, stage="gan", provenance=f"benchmark, {weights}")
    src = work / "baboon256.png"
    Image.fromarray((photo(256) * 255).round().astype(np.uint8)).save(src)
    x = read_png(src)
    reference = Engine(psnr_sd, gan_sd, EngineSettings(device="cpu", precision="fp32", tile=256))
    reference.set_alpha(float(alpha))
    whole = reference.upscale_array(x)
    pair = ["--psnr", str(paths[0]), "--gan", str(paths[1]), "--alpha", alpha, "--device", "cpu"]
    plain = [sys.executable, __file__, "--child-plain", str(paths[0]), str(paths[1]), alpha, str(src)]
    commands = {"plain approach, whole process (baseline)": (plain, work / "plain.png")}
    for precision in ("fp32", "auto"):
        cmd = [*esrgan_command(), "upscale", str(src), *pair, "--precision", precision, "-o"]
        commands[f"esrgan upscale --precision {precision}"] = cmd, work / f"ours_{precision}.png"
    # Rounds interleave the commands, so a burst of other work lands on all of them; the median of each is compared
    # (single runs of the plain approach spread 20.8-28.3 s on a quiet family-25 EPYC, ours 10.6-11.1 s).
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, (cmd, dest) in commands.items():
            times[name].append(wall([*cmd, str(dest)]))
    t_plain = statistics.median(times[next(iter(commands))])
    head = f"paper-size pair ({weights}, files), 256x256 photo -> 1024x1024 PNG, alpha {alpha}, {rounds} rounds"
    print(f"\nwhole process: {head}")
    print("| command | median wall s | min-max s | vs plain | PSNR vs fp32 whole image (dB) |\n|---|---|---|---|---|")
    for name, (_, dest) in commands.items():
        t = times[name]
        median = statistics.median(t)
        quality = psnr(read_png(dest), whole)
        print(f"| {name} | {median:.1f} | {min(t):.1f}-{max(t):.1f} | {t_plain / median:.2f}x | {quality:.1f} |")
    print("(the plain approach has no pre-pad, so its border differs from the reference by more than its seams)")


def preview_rows(work: Path) -> None:
    """`esrgan serve` with in-process workers and the embedded pair: POST /upscale?wait=true of a 128x128 crop at a new
    alpha each time, end to end over loopback; one warm-up request, then the median of 10."""
    import httpx

    from esrgan.models.images import read_image
    from esrgan.models.registry import resolve_pair

    buf = io.BytesIO()
    Image.fromarray((photo(128) * 255).round().astype(np.uint8)).save(buf, "PNG")
    crop = buf.getvalue()
    print("\npreview: POST /upscale?alpha=A&wait=true, 128x128 crop -> 512x512 PNG, a new alpha each time")
    print("| server precision | first request s | median of 10 s | min s | max s |\n|---|---|---|---|---|")
    for precision in ("auto", "fp32"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_") and "proxy" not in k.lower()}
        env.update({"ESRGAN_STORAGE_DIR": str(work / f"jobs_{precision}"), "ESRGAN_PRECISION": precision})
        cmd = [*esrgan_command(), "serve", "--port", str(port), "--log-level", "warning"]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False)
            for _ in range(600):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            ran = client.get("/readyz").json()["precision"]
            times = []
            for i in range(11):
                files = {"file": ("crop.png", crop, "image/png")}
                params = {"alpha": round(0.05 + 0.09 * i, 2), "wait": "true"}
                response, seconds = timed(partial(client.post, "/upscale", params=params, files=files))
                assert response.status_code == 200 and len(response.content) > 1000, response.text[:200]
                times.append(seconds)
            rest = sorted(times[1:])
            print(f"| {precision} ({ran}) | {times[0]:.3f} | {rest[4] / 2 + rest[5] / 2:.3f} | {rest[0]:.3f} | "
                  f"{rest[-1]:.3f} |", flush=True)  # fmt: skip
        finally:
            server.terminate()
            server.wait(10)
    engine = Engine.from_pair(*resolve_pair("esrgan-compact-x4"), EngineSettings(device="cpu"))
    engine.set_alpha(0.1)
    picture, t_decode = timed(read_image, crop)
    engine.upscale(picture)
    _, t_blend = timed(engine.set_alpha, 0.35)
    result, t_upscale = timed(engine.upscale, picture)
    _, t_png = timed(write_image, result)
    print(f"where the time goes, in this process ({engine.precision}): decode {t_decode * 1e3:.0f} ms, new alpha "
          f"{t_blend * 1e3:.0f} ms, upscale {t_upscale * 1e3:.0f} ms, PNG encode {t_png * 1e3:.0f} ms")  # fmt: skip


def ours_rows(psnr_sd: StateDict, x: np.ndarray, peaks: dict[str, float]) -> None:
    """The plain approach, ours in fp32 and in bf16 at the defaults, and the fp32 whole-image reference."""
    out_mp = (x.shape[0] * 4) * (x.shape[1] * 4) / 1e6
    net = build_generator(psnr_sd).eval()
    plain, t_plain = timed(plain_upscale, net, x)  # first: before any engine raises the malloc thresholds
    whole_engine = Engine(psnr_sd, None, EngineSettings(device="cpu", tile=256, precision="fp32"))
    whole_engine.upscale_array(x[:32, :32])
    whole, t_whole = timed(whole_engine.upscale_array, x)
    rows = [("plain: tile 128 + 10 px context, hard paste, NCHW, batch 1 (baseline)", "fp32", t_plain, plain)]
    d = DEVICE_DEFAULTS["cpu"]
    for precision in ("fp32", "bf16"):
        engine = Engine(psnr_sd, None, EngineSettings(device="cpu", precision=precision))
        engine.upscale_array(x[:32, :32])
        out, seconds = timed(engine.upscale_array, x)
        rows.append((f"ours: defaults (tile {d.tile}, overlap {d.overlap}, batch {d.batch}), channels_last",
                     precision, seconds, out))  # fmt: skip
    rows.append(("whole image in one forward (reference)", "fp32", t_whole, whole))
    print(f"\npaper-size RRDBNet (random init), {x.shape[1]}x{x.shape[0]} crop of Set14/baboon -> 4x, CPU")
    print("| approach | precision | seconds | output MP/s | vs plain | GFLOP/s | of its conv peak | PSNR vs fp32 whole "
          "(dB) | max diff |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name, precision, seconds, out in rows:
        gflops = x.shape[0] * x.shape[1] * MFLOP_PER_INPUT_PX / 1e3 / seconds
        print(f"| {name} | {precision} | {seconds:.1f} | {out_mp / seconds:.3f} | {t_plain / seconds:.2f}x | "
              f"{gflops:.0f} | {gflops / peaks[precision]:.0%} | {psnr(out, whole):.1f} | "
              f"{max_grey_levels(out, whole)} |", flush=True)  # fmt: skip


GENERAL = SRVGGConfig(num_feat=64, num_conv=32)  # realesr-general-x4v3's size


def architecture_rows(x: np.ndarray) -> None:
    """The paper-size RRDBNet against a realesr-general-x4v3-sized SRVGGNetCompact, random weights, the same photo,
    the engine's CPU defaults, fp32 and bf16."""
    out_mp = (x.shape[0] * 4) * (x.shape[1] * 4) / 1e6
    nets = {
        "RRDBNet, paper size (nf 64, nb 23, gc 32)": (PAPER, random_state_dict(PAPER, 0, "paper")),
        "SRVGGNetCompact, realesr-general-x4v3 size (num_feat 64, num_conv 32)": (
            GENERAL,
            srvgg.random_state_dict(GENERAL),
        ),
    }
    print(f"\narchitectures: {x.shape[1]}x{x.shape[0]} crop of Set14/baboon -> 4x, CPU, engine defaults")
    print("| network | parameters | MFLOP per input px | precision | seconds | output MP/s | vs RRDBNet |")
    print("|---|---|---|---|---|---|---|")
    for precision in ("fp32", "bf16"):
        base = None
        for name, (config, sd) in nets.items():
            engine = Engine(sd, None, EngineSettings(device="cpu", precision=precision))
            engine.upscale_array(x[:32, :32])
            _, seconds = timed(engine.upscale_array, x)
            base = base or seconds
            parameters = sum(v.numel() for v in sd.values())
            print(f"| {name} | {parameters / 1e6:.2f} M | {conv_flops_per_input_px(config) / 1e6:.2f} | {precision} | "
                  f"{seconds:.2f} | {out_mp / seconds:.3f} | {base / seconds:.1f}x |", flush=True)  # fmt: skip


def tile_rows() -> None:
    """bf16 tile sizes on a 384x384 input (windows of <= tile with overlap 32), paper-size network, a fresh process
    each for its peak RSS; fp32 at the default tile for comparison."""
    print("\ntiles: paper-size RRDBNet, 384x384 crop -> 1536x1536, overlap 32, a fresh process each")
    print("| precision | tile | seconds | vs bf16 tile 256 | peak RSS (MB) |\n|---|---|---|---|---|")
    runs = [("bf16", t) for t in (192, 256, 384)] + [("fp32", 256)]
    results = {run: json.loads(child(["--child-rss", "384", "--tile", str(run[1]), "--precision", run[0],
                                      "--nb", "23"])) for run in runs}  # fmt: skip
    base = results[("bf16", 256)]["seconds"]
    for (precision, tile), r in results.items():
        print(f"| {precision} | {tile} | {r['seconds']:.1f} | {base / r['seconds']:.2f}x | {r['peak_mb']:.0f} |")


def thread_rows(psnr_sd: StateDict, x: np.ndarray) -> None:
    engine = Engine(psnr_sd, None, EngineSettings(device="cpu", precision="bf16"))
    tiles = torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()
    threads = torch.get_num_threads()
    print(f"\nthreads: paper-size, one {x.shape[1]}x{x.shape[0]} tile, bf16\n| threads | seconds |\n|---|---|")
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        engine.forward_tiles(tiles)
        _, seconds = best_seconds(lambda: engine.forward_tiles(tiles), repeats=2)
        print(f"| {n} | {seconds:.2f} |")
    torch.set_num_threads(threads)


def seams(weights: Path | None, init: str, precision: str) -> None:
    """Tiled at default CPU settings vs whole image in the same precision, and the plain hard paste (fp32) vs the fp32
    whole image, on every Set5/Set14 photo used as the input itself."""
    sd = read_state_dict(weights) if weights else random_state_dict(COMPACT, init=init)
    what = weights.name if weights else f"compact RRDBNet (nf 32, nb 6, gc 16), random weights, {init} init"
    engine = Engine(sd, None, EngineSettings(device="cpu", precision=precision))
    fp32 = engine if engine.precision == "fp32" else Engine(sd, None, EngineSettings(device="cpu", precision="fp32"))
    net = build_generator(sd).eval()
    print(f"model: {what}; ours: tile {engine.tile}, overlap {engine.overlap}, feathered, {engine.precision}; plain: "
          "tile 128, 10 px, hard, fp32 (against the fp32 whole image)")  # fmt: skip
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
        whole_fp32 = whole if fp32 is engine else fp32.upscale_array(x, tile=max(x.shape[:2]))
        plain = plain_upscale(net, x)
        p_ours, p_plain = psnr(tiled, whole), psnr(plain, whole_fp32)
        worst = {"ours": min(worst["ours"], p_ours), "plain": min(worst["plain"], p_plain)}
        name = f"{path.parent.name}/{path.name}"
        print(f"| {name} | {x.shape[1]}x{x.shape[0]} | {count} | {p_ours:.2f} | {max_grey_levels(tiled, whole)} | "
              f"{p_plain:.2f} | {max_grey_levels(plain, whole_fp32)} |", flush=True)  # fmt: skip
    print(f"worst: ours {worst['ours']:.2f} dB, plain {worst['plain']:.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seams", action="store_true", help="tiled vs whole on every Set5/Set14 photo")
    parser.add_argument("--weights", type=Path, help="weights for --seams [default: a random compact net]")
    parser.add_argument("--init", choices=["paper", "default"], default="paper", help="random init for --seams")
    parser.add_argument("--child-layout", nargs=2, metavar=("LAYOUT", "MALLOC"), help=argparse.SUPPRESS)
    parser.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help="precision of ours for --seams [default: auto]")
    parser.add_argument("--nb", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child-plain", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--architectures", action="store_true", help="only RRDBNet against SRVGGNetCompact")
    parser.add_argument("--pair", nargs=2, type=Path, metavar=("PSNR", "GAN"), help="only rows 6, on these files")
    args = parser.parse_args()
    if args.child_layout:
        return child_layout(*args.child_layout)
    if args.child_rss:
        return child_rss(args.child_rss, args.tile, args.precision, args.nb)
    if args.child_plain:
        return child_plain(*args.child_plain)
    print(machine_line())
    if args.seams:
        return seams(args.weights, args.init, args.precision)
    if args.architectures:
        return architecture_rows(photo(256))
    if args.pair:
        with tempfile.TemporaryDirectory() as work:
            return cli_rows(*map(read_state_dict, args.pair), Path(work), weights=" + ".join(p.name for p in args.pair))

    started = time.perf_counter()
    psnr_sd = random_state_dict(PAPER, 0, "paper")
    gan_sd = {k: v + 0.01 * torch.randn_like(v) for k, v in psnr_sd.items()}  # a fine-tuned-like GAN half
    x = photo(256)

    peaks = {"fp32": conv_rate_gflops(), "bf16": conv_rate_gflops(dtype=torch.bfloat16)}
    peak_nchw = conv_rate_gflops(layout=torch.contiguous_format)
    ratio = peaks["bf16"] / peaks["fp32"]
    print(f"\n3x3 conv 64->64 on 1x64x256x256: {peaks['fp32']:.0f} GFLOP/s fp32 channels_last, {peaks['bf16']:.0f} "
          f"GFLOP/s bf16 channels_last ({ratio:.2f}x), {peak_nchw:.0f} GFLOP/s fp32 NCHW")  # fmt: skip
    ours_rows(psnr_sd, x, peaks)
    architecture_rows(x)

    tile = torch.from_numpy(x[:128, :128]).permute(2, 0, 1)[None].contiguous()
    embedded = [read_state_dict(path) for path in resolve_pair("esrgan-compact-x4")]
    runtime_table("embedded pair (compact RRDBNet nf 32, nb 6, gc 16)", *embedded, tile)
    runtime_table("paper-size pair (random init)", psnr_sd, gan_sd, tile)

    tile_rows()
    thread_rows(psnr_sd, x[:128, :128])

    print("\nmemory layout and malloc thresholds (one 128x128 fp32 forward, each in a fresh process)")
    print("| layout | glibc thresholds | seconds |\n|---|---|---|")
    for layout, malloc in (("nchw", "off"), ("nchw", "on"), ("cl", "off"), ("cl", "on")):
        seconds = json.loads(child(["--child-layout", layout, malloc]))["seconds"]
        print(f"| {'channels_last' if layout == 'cl' else 'NCHW'} | {'raised' if malloc == 'on' else 'default'} | "
              f"{seconds:.2f} |")  # fmt: skip

    print("\npeak RSS at the defaults: upscale -> PNG, a fresh process per size; nf 64 / gc 32 but nb 1 (the")
    print("paper's activations per tile, 1/23 of its trunk's work)")
    print("| input | output | RSS before (MB) | peak RSS (MB) | seconds |")
    print("|---|---|---|---|---|")
    for size in (256, 1024, 2048):
        r = json.loads(child(["--child-rss", str(size)]))
        print(f"| {size}x{size} | {size * 4}x{size * 4} | {r['before_mb']:.0f} | {r['peak_mb']:.0f} | "
              f"{r['seconds']:.1f} |")  # fmt: skip

    with tempfile.TemporaryDirectory() as work:
        cli_rows(psnr_sd, gan_sd, Path(work))
        preview_rows(Path(work))
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

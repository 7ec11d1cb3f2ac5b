"""What CPU speed costs in pixels, on every Set5 and Set14 photo (the LR made from each HR by MATLAB's bicubic x4):

default: bf16 against fp32 output of the same engine, tiles and alpha, at both ends of the embedded pair (and of
         any paper-size pair found in the weights cache, or the files given with --pair), as 8-bit PSNR; the floor
         we hold is 50 dB;
--borders: the outer 8-pixel band of the output against the HR image (PSNR-Y) with and without reflect-padding the
         whole LR image by a few pixels before tiling (Real-ESRGAN's `pre_pad`), at alpha 0, 0.8 (the
           service's default) and 1.

  .venv/bin/python -m benchmarks.cpu_quality [--pair PSNR GAN] [--borders] [--pad 2,4,8] [--alphas 0,0.8,1]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine_line, psnr
from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.registry import PAIRS, resolve_pair
from esrgan.training.bicubic import downscale_uint8
from esrgan.training.evaluate import load_hr, modcrop, to_uint8
from esrgan.training.metrics import luminance

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SCALE = 4
BAND = 8  # output pixels along each border


def photos() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, HR modcropped to 4, its LR as float HxWx3 in [0, 1]) for every Set5/Set14 photo; grey ones as RGB."""
    out = []
    for path in sorted(DATASETS.glob("Set*/*.png")):
        hr = modcrop(load_hr(path), SCALE)
        if hr.ndim == 2:
            hr = np.repeat(hr[..., None], 3, axis=2)
        out.append((f"{path.parent.name}/{path.name}", hr, downscale_uint8(hr, SCALE).astype(np.float32) / 255))
    return out


def pairs() -> dict[str, tuple[Path, Path]]:
    """The embedded pair and every other known pair whose files are already in the cache (nothing is downloaded)."""
    found = {}
    for name in PAIRS:
        try:
            found[name] = resolve_pair(name)
        except FileNotFoundError:
            continue
    return found


def precision_table(images: list, extra: tuple[Path, Path] | None = None) -> None:
    worst = float("inf")
    found = pairs() | ({f"{extra[0].name} + {extra[1].name}": extra} if extra else {})
    for name, (psnr_path, gan_path) in found.items():
        engines = {
            p: Engine.from_pair(psnr_path, gan_path, EngineSettings(device="cpu", precision=p))
            for p in ("fp32", "bf16")
        }
        tiles = f"tile {engines['bf16'].tile}, overlap {engines['bf16'].overlap}"
        print(f"\n{name}: bf16 against fp32, 8-bit PSNR (dB), {tiles}")
        print("| image | LR | alpha 0 | alpha 1 |\n|---|---|---|---|")
        for image, _, lr in images:
            cells = []
            for alpha in (0.0, 1.0):
                out = {}
                for precision, engine in engines.items():
                    engine.set_alpha(alpha)
                    out[precision] = engine.upscale_array(lr)
                cells.append(psnr(out["bf16"], out["fp32"]))
            worst = min(worst, *cells)
            print(f"| {image} | {lr.shape[1]}x{lr.shape[0]} | {cells[0]:.1f} | {cells[1]:.1f} |", flush=True)
    print(f"\nworst: {worst:.1f} dB (floor 50 dB: {'held' if worst >= 50 else 'MISSED'})")


def band_psnr_y(sr: np.ndarray, hr: np.ndarray) -> float:
    """PSNR-Y of the outer BAND pixels of two uint8 images (nothing shaved: the border is what is measured)."""
    mask = np.ones(hr.shape[:2], bool)
    mask[BAND:-BAND, BAND:-BAND] = False
    diff = luminance(sr)[mask] - luminance(hr)[mask]
    return float(10 * np.log10(255**2 / np.mean(diff**2)))


def padded_upscale(engine: Engine, lr: np.ndarray, pad: int) -> np.ndarray:
    """The engine on the LR image reflect-padded by `pad` pixels on every side, the padding cropped off again."""
    if pad == 0:
        return engine.upscale_array(lr)
    out = engine.upscale_array(np.pad(lr, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
    return out[pad * SCALE : -pad * SCALE, pad * SCALE : -pad * SCALE]


def borders_table(images: list, pads: list[int], alphas: list[float]) -> None:
    # pre_pad=0: the engine pads nothing itself (its default pads a pair at alpha > 0), so "pad 0" means none
    engine = Engine.from_pair(*resolve_pair("esrgan-compact-x4"), EngineSettings(device="cpu", pre_pad=0))
    print(f"\nembedded pair ({engine.precision}): PSNR-Y (dB) of the outer {BAND} output pixels against HR")
    heads = [f"alpha {a:g}, pad {p}" for a in alphas for p in (0, *pads)]
    print(f"| image | {' | '.join(heads)} |\n|---|{'---|' * len(heads)}")
    sums = np.zeros(len(heads))
    for image, hr, lr in images:
        cells = []
        for alpha in alphas:
            engine.set_alpha(alpha)
            for pad in (0, *pads):
                cells.append(band_psnr_y(to_uint8(np.clip(padded_upscale(engine, lr, pad), 0, 1)), hr))
        sums += cells
        print(f"| {image} | {' | '.join(f'{c:.2f}' for c in cells)} |", flush=True)
    print(f"| mean | {' | '.join(f'{s / len(images):.2f}' for s in sums)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--borders", action="store_true", help="the border band with and without pre-padding")
    parser.add_argument("--pad", default="2,4,8", help="pre-pad sizes in LR pixels for --borders")
    parser.add_argument("--alphas", default="0,0.8,1", help="alphas for --borders")
    parser.add_argument("--pair", nargs=2, type=Path, metavar=("PSNR", "GAN"), help="one more pair, from files")
    args = parser.parse_args()
    print(machine_line())
    started = time.perf_counter()
    images = photos()
    if args.borders:
        borders_table(images, [int(p) for p in args.pad.split(",")], [float(a) for a in args.alphas.split(",")])
    else:
        precision_table(images, args.pair)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

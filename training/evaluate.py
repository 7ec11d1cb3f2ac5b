"""Score a PSNR/GAN pair across interpolation weights, the way the paper's Figure 10 compares them.

For every HR image in a folder: crop it to a multiple of the scale, make the LR input with MATLAB's bicubic, then
score (PSNR-Y, SSIM-Y, NIQE; training/metrics.py, crop = scale) the bicubic upscale, the network at each alpha
(network interpolation through the Engine), and the pixel blend of the alpha = 0 and alpha = 1 outputs (image
interpolation). Writes `metrics.csv` (per image and mean), `perception_distortion.png` (PSNR against NIQE, one point
per alpha) and one side-by-side crop per image (bicubic | alpha 0 | mid | alpha 1 | HR) under `crops/`.

Two artifact columns, on the flat 8x8 blocks of the HR (training/metrics.py, in grey levels): `hatch`, the diagonal
periodic texture a row adds to the bicubic upscale, and `colour_shift`, the largest per-channel mean change of a row
against the alpha 0 output (so 0 there; the HR row shows the alpha 0 output's own shift). Both NaN where the image
has no flat patch or pixel, `colour_shift` also for gray images. They let a retrained pair be compared with the shipped
one on the two artifacts its GAN end was seen to have.

Gray HR images (such as Set14's bridge) are fed to the network as three equal channels. With `gray="raw"` (the default,
as published tables do) they are scored on raw gray levels against MATLAB's `rgb2gray` of each output; with
`gray="rgb"` the HR is turned into RGB first and scored on Y like the others.
"""

import csv
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from esrgan.models.images import IMAGE_SUFFIXES, list_images
from esrgan.training.bicubic import downscale_uint8, imresize
from esrgan.training.metrics import flat_colour_shift, flat_mask, hatch_amplitude, niqe, psnr_y, ssim_y

log = logging.getLogger(__name__)

DEFAULT_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
GrayMode = Literal["raw", "rgb"]
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])  # MATLAB's rgb2gray


@dataclass
class Row:
    """One line of the CSV. `method` is bicubic, network (interpolated weights), image (blended outputs) or hr."""

    image: str
    method: str
    alpha: float | None
    psnr: float
    ssim: float
    niqe: float  # NaN when the image holds fewer than two 96x96 blocks
    hatch: float  # grey levels; NaN when no 64x64 patch of the HR is flat
    colour_shift: float  # grey levels, against the alpha 0 output; NaN for gray images or no flat pixel


@dataclass
class Report:
    rows: list[Row]  # per image, then the means (image == "mean")
    csv_path: Path
    plot_path: Path
    crop_paths: list[Path]


def hr_images(folder: Path) -> list[Path]:
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def load_hr(path: Path) -> np.ndarray:
    """An 8-bit HR image: HxW for gray files (kept gray so they can be scored on raw levels), HxWx3 otherwise."""
    with Image.open(path) as img:
        if img.mode in ("I", "I;16", "I;16B", "F"):
            raise ValueError(f"{path}: the metrics are defined on 8-bit images, this one is {img.mode}")
        return np.asarray(img.convert("L" if img.mode in ("L", "LA", "1") else "RGB"))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round a [0, 1] float image to 8 bits (half away from zero, as MATLAB converts) before it is scored."""
    return np.clip(np.floor(np.asarray(x, np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB's imresize(lr, scale) on a uint8 image."""
    return to_uint8(imresize(lr.astype(np.float64) / 255.0, scale))


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def network_outputs(engine, lr: np.ndarray, alphas: list[float]) -> dict[float, np.ndarray]:
    """The engine's float [0, 1] output for each alpha (interpolated weights, the model blended in place)."""
    x = lr.astype(np.float32) / 255.0
    outputs = {}
    for alpha in alphas:
        engine.set_alpha(alpha)
        outputs[alpha] = np.clip(engine.upscale_array(x), 0.0, 1.0)
    return outputs


def as_scored(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """A uint8 RGB output as it is compared with `hr`: MATLAB's rgb2gray of it for a gray HR, else itself."""
    if hr.ndim == 2:
        return np.clip(np.floor(sr.astype(np.float64) @ _RGB2GRAY + 0.5), 0, 255).astype(np.uint8)
    return sr


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float, float]:
    """PSNR, SSIM and NIQE of a uint8 RGB output; a gray HR is compared with the output's MATLAB rgb2gray."""
    sr = as_scored(sr, hr)
    try:
        naturalness = niqe(sr, crop=scale)
    except ValueError as exc:
        log.warning("NIQE left out: %s", exc)
        naturalness = math.nan
    return psnr_y(sr, hr, scale), ssim_y(sr, hr, scale), naturalness


def artifacts(
    sr: np.ndarray, bicubic: np.ndarray, reference: np.ndarray, hr: np.ndarray, flat: np.ndarray
) -> tuple[float, float]:
    """Hatch (against the bicubic upscale) and colour shift (against `reference`) of a uint8 RGB output, on the flat
    mask of `hr` and in the form the output is scored (gray for a gray HR)."""
    sr = as_scored(sr, hr)
    hatch = hatch_amplitude(sr, as_scored(bicubic, hr), flat)
    return hatch, flat_colour_shift(sr, as_scored(reference, hr), flat)


def evaluate(
    psnr_path: Path,
    gan_path: Path,
    data_dir: Path,
    out_dir: Path,
    alphas: list[float] | tuple[float, ...] = DEFAULT_ALPHAS,
    tile: int | None = None,
    device: str = "auto",
    gray: GrayMode = "raw",
    progress: bool = True,
) -> Report:
    """Evaluate the pair on every image of `data_dir` and write the CSV, the plot and the crops to `out_dir`.

    alpha 0 and 1 are always run, since image interpolation blends exactly those two outputs.
    """
    from tqdm import tqdm

    from esrgan.models.engine import Engine, EngineSettings
    from esrgan.models.interpolate import check_alpha

    if gray not in ("raw", "rgb"):
        raise ValueError(f"gray must be 'raw' or 'rgb', not {gray!r}")
    alphas = sorted({check_alpha(a) for a in alphas} | {0.0, 1.0})
    paths = hr_images(data_dir)
    # fp32 everywhere: the metrics should not move with the GPU's half-precision rounding; no pre-pad: the networks'
    # own borders are scored, as published tables score them (the product's pre-pad: models/engine.py PRE_PAD)
    settings = EngineSettings(device=device, tile=tile, precision="fp32", pre_pad=0)
    engine = Engine.from_pair(psnr_path, gan_path, settings)
    scale = engine.scale
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "crops").mkdir(exist_ok=True)

    rows: list[Row] = []
    crop_paths = []
    for path in tqdm(paths, desc="evaluate", unit="image", disable=not progress):
        hr = modcrop(load_hr(path), scale)
        if hr.ndim == 2 and gray == "rgb":
            hr = np.repeat(hr[:, :, None], 3, axis=2)
        rgb_hr = hr if hr.ndim == 3 else np.repeat(hr[:, :, None], 3, axis=2)
        lr = downscale_uint8(rgb_hr, scale)
        bicubic = bicubic_upscale(lr, scale)
        outputs = network_outputs(engine, lr, alphas)
        network_u8 = {alpha: to_uint8(out) for alpha, out in outputs.items()}

        rows += image_rows(path.name, hr, bicubic, outputs, network_u8, scale)

        panels = comparison_panels(rgb_hr, bicubic, network_u8)
        crop_paths.append(out_dir / "crops" / f"{path.stem}.png")
        side_by_side(panels, rgb_hr).save(crop_paths[-1])

    rows += mean_rows(rows)
    csv_path = write_csv(rows, out_dir / "metrics.csv")
    plot_path = plot_perception_distortion(rows, out_dir / "perception_distortion.png", title=data_dir.name)
    return Report(rows, csv_path, plot_path, crop_paths)


def image_rows(
    name: str,
    hr: np.ndarray,
    bicubic: np.ndarray,
    outputs: dict[float, np.ndarray],
    network_u8: dict[float, np.ndarray],
    scale: int,
) -> list[Row]:
    """The rows of one image: the HR itself (NIQE and artifacts only), bicubic, then network and image interpolation
    at every alpha of `outputs` (float [0, 1] network outputs, alpha 0 and 1 among them; `network_u8` the same as
    uint8, converted once by the caller, which also crops them for the panels)."""
    rgb_hr = hr if hr.ndim == 3 else np.repeat(hr[:, :, None], 3, axis=2)
    flat, reference = flat_mask(hr), network_u8[0.0]
    candidates = [("hr", None, rgb_hr), ("bicubic", None, bicubic)]
    candidates += [("network", alpha, sr) for alpha, sr in network_u8.items()]
    # the blend at either end is that end's own output: not made again, its network row is copied (None below)
    candidates += [
        ("image", a, None if a in (0.0, 1.0) else to_uint8((1.0 - a) * outputs[0.0] + a * outputs[1.0]))
        for a in outputs
    ]
    rows: list[Row] = []
    network: dict[float, Row] = {}  # alpha -> the network row, for the blend at 0 and 1
    for method, alpha, sr in candidates:
        if sr is None:
            rows.append(replace(network[alpha], method="image"))
            continue
        psnr, ssim, naturalness = score(sr, hr, scale)
        if method == "hr":
            psnr, ssim = math.inf, 1.0
        rows.append(Row(name, method, alpha, psnr, ssim, naturalness, *artifacts(sr, bicubic, reference, hr, flat)))
        if method == "network":
            network[alpha] = rows[-1]
    return rows


def mean_rows(rows: list[Row]) -> list[Row]:
    """The set means per (method, alpha), as tables report them: the mean of per-image values (NaN NIQE, hatch and
    colour shift left out: images too small, without flat areas or gray)."""
    groups: dict[tuple[str, float | None], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.method, row.alpha), []).append(row)
    return [
        Row(
            "mean",
            method,
            alpha,
            float(np.mean([r.psnr for r in group])),
            float(np.mean([r.ssim for r in group])),
            *(_nanmean([getattr(r, key) for r in group]) for key in ("niqe", "hatch", "colour_shift")),
        )
        for (method, alpha), group in groups.items()
    ]


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def write_csv(rows: list[Row], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            values = asdict(row)
            values["alpha"] = "" if row.alpha is None else f"{row.alpha:g}"
            for key in ("psnr", "ssim", "niqe", "hatch", "colour_shift"):
                values[key] = f"{values[key]:.4f}"
            writer.writerow(values)
    return path


def plot_perception_distortion(rows: list[Row], path: Path, title: str = "") -> Path:
    """PSNR (distortion, up is better) against NIQE (perception, left is better) of the set means: one point per
    alpha for network and image interpolation, bicubic marked, the HR images' NIQE as a dotted line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = [r for r in rows if r.image == "mean"]
    fig = Figure(figsize=(6.4, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for method, style, label in (("network", "o-", "network interpolation"), ("image", "s--", "image interpolation")):
        points = sorted((r for r in means if r.method == method), key=lambda r: r.alpha)
        ax.plot([r.niqe for r in points], [r.psnr for r in points], style, label=label)
        if method == "network":
            for r in points:
                ax.annotate(f"{r.alpha:g}", (r.niqe, r.psnr), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for r in means:
        if r.method == "bicubic":
            ax.plot([r.niqe], [r.psnr], "k*", markersize=12, label="bicubic")
        if r.method == "hr" and math.isfinite(r.niqe):
            ax.axvline(r.niqe, color="gray", linestyle=":", label="HR NIQE")
    ax.set_xlabel("NIQE (lower is more natural)")
    ax.set_ylabel("PSNR-Y (dB)")
    ax.set_title(f"Perception-distortion{f': {title}' if title else ''} (labels: alpha)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def comparison_panels(
    hr: np.ndarray, bicubic: np.ndarray, outputs: dict[float, np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """bicubic | alpha 0 | the alpha nearest 0.5 | alpha 1 | HR, as labelled uint8 RGB images of one size."""
    mid = min((a for a in outputs if 0 < a < 1), key=lambda a: abs(a - 0.5), default=None)
    panels = [("bicubic", bicubic), ("alpha 0", outputs[0.0])]
    if mid is not None:
        panels.append((f"alpha {mid:g}", outputs[mid]))
    panels += [("alpha 1", outputs[1.0]), ("HR", hr)]
    return panels


def detail_box(hr: np.ndarray, size: int) -> tuple[int, int, int]:
    """(top, left, size) of the square window with the most detail (largest gray-level spread), on a half-size grid,
    so the crops show texture rather than sky."""
    gray = hr.astype(np.float64).mean(axis=2)
    size = min(size, *gray.shape)
    step = max(1, size // 2)
    best = (0.0, 0, 0)
    for top in range(0, gray.shape[0] - size + 1, step):
        for left in range(0, gray.shape[1] - size + 1, step):
            best = max(best, (float(gray[top : top + size, left : left + size].std()), top, left))
    return best[1], best[2], size


def side_by_side(
    panels: list[tuple[str, np.ndarray]],
    hr: np.ndarray,
    box: tuple[int, int, int] | None = None,
    zoom: int = 2,
) -> Image.Image:
    """One strip of equal crops (nearest-neighbour zoom, so pixels stay visible), each labelled underneath.

    `box` is (top, left, size) in HR pixels; by default the most detailed 96 px window of `hr`.
    """
    top, left, size = box or detail_box(hr, 96)
    font = ImageFont.load_default()
    label_h, gap = 18, 4
    side = size * zoom
    strip = Image.new("RGB", (len(panels) * (side + gap) - gap, side + label_h), "white")
    draw = ImageDraw.Draw(strip)
    for i, (label, img) in enumerate(panels):
        crop = Image.fromarray(img[top : top + size, left : left + size])
        x = i * (side + gap)
        strip.paste(crop.resize((side, side), Image.Resampling.NEAREST), (x, 0))
        draw.text((x + 4, side + 3), label, fill="black", font=font)
    return strip

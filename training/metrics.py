"""PSNR, SSIM and NIQE computed the way published super-resolution tables compute them.

Conventions (the MATLAB scripts behind the SRCNN/VDSR/EDSR/ESRGAN tables, and BasicSR's port of them):
- Inputs are uint8 images, so a network output is rounded to 8 bits before it is scored.
- Colour images are scored on the Y channel of MATLAB's `rgb2ycbcr` (BT.601, studio range 16-235):
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on [0, 1] inputs, rounded to integers as MATLAB does for uint8
  images. (BasicSR keeps Y in float; on Set5 bicubic x4 that reads 28.431 dB / 0.8113 against the published
  28.42 / 0.8104, where the rounded Y gives 28.419 / 0.8102.)
- A 2-D (single-channel) image is scored on its raw gray levels. That is how the published Set14 numbers score
  `bridge.png`; converting it to RGB first and taking Y instead scores it about 1.3 dB higher.
- `crop` pixels are shaved from every border first; tables use crop = scale.
- SSIM is Wang et al.'s: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255, 'valid' filtering, mean of the map.
- NIQE is the reference MATLAB `computequality` with its pristine model (training/niqe/), 96x96 blocks, two scales.

Two artifact measurements of our own, on the flat parts of the HR image (`flat_mask`), in 8-bit grey levels:
`hatch_amplitude` (a periodic diagonal texture the network adds to flat areas) and `flat_colour_shift` (a mean colour
change there against a reference output).
"""

import warnings
from functools import cache
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma

NIQE_PARAMS = Path(__file__).parent / "niqe" / "niqe_pris_params.npz"
NIQE_BLOCK = 96  # the block size the pristine model was fitted on

FLAT_BLOCK = 8  # flat mask: 8x8 blocks of HR luma ...
FLAT_STD = 3.0  # ... whose standard deviation is under 3 grey levels
HATCH_PATCH = 64  # spectra of 64x64 patches ...
HATCH_STRIDE = 32  # ... on this grid ...
HATCH_BORDER = 16  # ... at least this far from the image border ...
HATCH_MIN_FLAT = 0.9  # ... and at least this share flat
HATCH_RADII = (6.0, 14.0)  # cycles per patch: periods of 4.6-11 px, where the hatch was seen
HATCH_SECTOR = 20.0  # degrees either side of the diagonals (hatch) and of the axes (the baseline subtracted)

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def luminance(img: np.ndarray) -> np.ndarray:
    """The channel the metrics score, as float64 on a 0-255 scale: MATLAB's uint8 Y (16-235) for HxWx3, raw levels
    for HxW."""
    _check_uint8(img)
    if img.ndim == 2:
        return img.astype(np.float64)
    return np.floor(16.0 + img.astype(np.float64) @ _Y_WEIGHTS + 0.5)  # MATLAB rounds half away from zero


def psnr_y(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    """PSNR in dB on the luminance of two uint8 images with `crop` pixels shaved; inf when they are identical."""
    ya, yb = _pair(a, b, crop)
    mse = np.mean((ya - yb) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def ssim_y(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    """Mean SSIM on the luminance of two uint8 images with `crop` pixels shaved (needs at least 11x11 left)."""
    x, y = _pair(a, b, crop)
    if min(x.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {x.shape[1]}x{x.shape[0]}")
    k = _gaussian_1d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _filter_valid(x, k), _filter_valid(y, k)
    var_x = _filter_valid(x * x, k) - mu_x**2
    var_y = _filter_valid(y * y, k) - mu_y**2
    cov = _filter_valid(x * y, k) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def niqe(img: np.ndarray, crop: int = 0) -> float:
    """NIQE of a uint8 image (lower is more natural), on the same luminance as the PSNR, `crop` pixels shaved.

    The image is cut to whole 96x96 blocks; at least two blocks are needed to fit the image's own covariance.
    """
    from esrgan.training.bicubic import imresize

    y = _shave(luminance(img), crop)
    rows, cols = y.shape[0] // NIQE_BLOCK, y.shape[1] // NIQE_BLOCK
    if rows * cols < 2:
        raise ValueError(
            f"NIQE needs at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks, the image is {y.shape[1]}x{y.shape[0]}"
            f" after a {crop}-pixel crop"
        )
    y = y[: rows * NIQE_BLOCK, : cols * NIQE_BLOCK]
    mu_pris, cov_pris, window = _niqe_params()

    features = []
    for scale in (1, 2):
        mu = correlate(y, window, mode="nearest")
        sigma = np.sqrt(np.abs(correlate(y * y, window, mode="nearest") - mu * mu))
        normalized = (y - mu) / (sigma + 1)  # MSCN coefficients
        size = NIQE_BLOCK // scale
        features.append(
            [
                _block_features(normalized[r * size : (r + 1) * size, c * size : (c + 1) * size])
                for r in range(rows)
                for c in range(cols)
            ]
        )
        if scale == 1:
            y = imresize(y, 0.5)  # MATLAB's bicubic with antialiasing, as the reference does; no rounding
    feats = np.concatenate([np.asarray(f) for f in features], axis=1)

    finite = feats[~np.isnan(feats).any(axis=1)]  # MATLAB's nanmean / nancov drop blocks with undefined features
    if len(finite) < 2:
        raise ValueError("NIQE is undefined: fewer than two blocks have finite features (is the image flat?)")
    mu_dist = finite.mean(axis=0)
    cov_dist = np.cov(finite, rowvar=False)
    diff = mu_pris - mu_dist
    return float(np.sqrt(diff @ np.linalg.pinv((cov_pris + cov_dist) / 2) @ diff))


def flat_mask(hr: np.ndarray) -> np.ndarray:
    """Pixels of the 8x8 blocks of HR luma with a standard deviation under 3 grey levels (sky, walls), where a texture
    or a tint the network adds is most visible. The partial blocks at the right and bottom edges are not flat."""
    y = luminance(hr)
    rows, cols = y.shape[0] // FLAT_BLOCK, y.shape[1] // FLAT_BLOCK
    blocks = y[: rows * FLAT_BLOCK, : cols * FLAT_BLOCK].reshape(rows, FLAT_BLOCK, cols, FLAT_BLOCK)
    flat = blocks.std(axis=(1, 3)) < FLAT_STD
    mask = np.zeros(y.shape, bool)
    mask[: rows * FLAT_BLOCK, : cols * FLAT_BLOCK] = np.kron(flat, np.ones((FLAT_BLOCK, FLAT_BLOCK), bool))
    return mask


def hatch_amplitude(output: np.ndarray, bicubic: np.ndarray, flat: np.ndarray) -> float:
    """Amplitude in grey levels of the diagonal periodic texture that `output` adds to the bicubic upscale on flat
    areas (`flat_mask` of the HR); NaN when no 64x64 patch is flat.

    The Hann-windowed power spectra of luma(output) - luma(bicubic) over the flat patches are averaged; the power at
    6-14 cycles per patch within 20 degrees of the diagonals, less that within 20 degrees of the axes (so isotropic
    noise and axis-aligned structure cancel), is read as the amplitude of one sinusoid carrying it under the same
    window (Parseval), so a pure diagonal sinusoid of amplitude A scores A.
    """
    if output.shape != bicubic.shape or output.shape[:2] != flat.shape:
        raise ValueError(f"shapes differ: output {output.shape}, bicubic {bicubic.shape}, flat mask {flat.shape}")
    added = luminance(output) - luminance(bicubic)
    size = HATCH_PATCH
    tops = np.arange(HATCH_BORDER, added.shape[0] - HATCH_BORDER - size + 1, HATCH_STRIDE)
    lefts = np.arange(HATCH_BORDER, added.shape[1] - HATCH_BORDER - size + 1, HATCH_STRIDE)
    if not (tops.size and lefts.size):
        return float("nan")
    windows = np.lib.stride_tricks.sliding_window_view(added, (size, size))[np.ix_(tops, lefts)]
    share = np.lib.stride_tricks.sliding_window_view(flat, (size, size))[np.ix_(tops, lefts)].mean(axis=(2, 3))
    patches = windows[share >= HATCH_MIN_FLAT]
    if not len(patches):
        return float("nan")
    window, diagonal, axes = _hatch_masks()
    power = np.mean(np.abs(np.fft.fft2(patches * window)) ** 2, axis=0)
    excess = max(0.0, float(power[diagonal].sum() - power[axes].sum()))
    # a sinusoid A sin(.) carries A^2 / 2 * sum(window^2) per pixel, times size^2 in numpy's unnormalised FFT
    return float(np.sqrt(2.0 * excess / (size * size * np.sum(window**2))))


def flat_colour_shift(output: np.ndarray, reference: np.ndarray, flat: np.ndarray) -> float:
    """The largest change, over R, G and B, of the mean of `output` against `reference` on the flat pixels, in grey
    levels (a tint the eye sees on white and sky); NaN for gray images or when nothing is flat."""
    _check_uint8(output)
    _check_uint8(reference)
    if output.shape != reference.shape or output.shape[:2] != flat.shape:
        raise ValueError(f"shapes differ: output {output.shape}, reference {reference.shape}, flat mask {flat.shape}")
    if output.ndim == 2 or not flat.any():
        return float("nan")
    diff = output[flat].astype(np.float64) - reference[flat].astype(np.float64)
    return float(np.abs(diff.mean(axis=0)).max())


@cache
def _hatch_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2-D periodic Hann window of a patch and its diagonal and axis sectors of the frequency ring."""
    n = HATCH_PATCH
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic: a constant leaks only into the DC neighbours
    fy, fx = np.meshgrid(np.fft.fftfreq(n, 1 / n), np.fft.fftfreq(n, 1 / n), indexing="ij")
    radius = np.hypot(fy, fx)
    ring = (radius >= HATCH_RADII[0]) & (radius <= HATCH_RADII[1])
    angle = np.degrees(np.arctan2(fy, fx)) % 90  # folds both diagonals onto 45, both axes onto 0 and 90
    diagonal = ring & (np.abs(angle - 45) <= HATCH_SECTOR)
    axes = ring & ((angle <= HATCH_SECTOR) | (angle >= 90 - HATCH_SECTOR))
    return np.outer(hann, hann), diagonal, axes


def _block_features(block: np.ndarray) -> list[float]:
    """18 features of one block: the AGGD fit of the MSCN coefficients, then of their products with the neighbour
    to the right, below, below-right and below-left (circularly, as MATLAB's circshift)."""
    alpha, left, right = _aggd_fit(block)
    feats = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
        alpha, left, right = _aggd_fit(block * np.roll(block, shift, axis=(0, 1)))
        mean = (right - left) * gamma(2 / alpha) / gamma(1 / alpha)
        feats += [alpha, mean, left, right]
    return feats


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Moment-matching fit of an asymmetric generalised Gaussian: (shape, left scale, right scale), with the shape
    looked up on MATLAB's grid 0.2:0.001:10."""
    x = x.ravel()
    shapes, ratios = _aggd_table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one-sided blocks give NaN, as in MATLAB
        left_std = np.sqrt(np.mean(x[x < 0] ** 2))
        right_std = np.sqrt(np.mean(x[x > 0] ** 2))
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    if np.isnan(r_norm):
        return float("nan"), float("nan"), float("nan")
    alpha = shapes[np.argmin((ratios - r_norm) ** 2)]
    factor = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return float(alpha), float(left_std * factor), float(right_std * factor)


@cache
def _aggd_table() -> tuple[np.ndarray, np.ndarray]:
    shapes = np.arange(0.2, 10.0005, 0.001)
    return shapes, gamma(2 / shapes) ** 2 / (gamma(1 / shapes) * gamma(3 / shapes))


@cache
def _niqe_params() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    params = np.load(NIQE_PARAMS)
    return params["mu_pris_param"].ravel(), params["cov_pris_param"], params["gaussian_window"]


def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _filter_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering (the 2-D window is outer(k, k), so this is MATLAB's filter2(w, x, 'valid'))."""
    n = k.size
    x = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ k
    return np.lib.stride_tricks.sliding_window_view(x, n, axis=1) @ k


def _check_uint8(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"metrics take uint8 images (round outputs first), got {getattr(img, 'dtype', type(img))}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"metrics take HxW gray or HxWx3 RGB images, got shape {img.shape}")


def _shave(y: np.ndarray, crop: int) -> np.ndarray:
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if 2 * crop >= min(y.shape):
        raise ValueError(f"a {crop}-pixel crop leaves nothing of a {y.shape[1]}x{y.shape[0]} image")
    return y[crop : y.shape[0] - crop, crop : y.shape[1] - crop]


def _pair(a: np.ndarray, b: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return _shave(luminance(a), crop), _shave(luminance(b), crop)

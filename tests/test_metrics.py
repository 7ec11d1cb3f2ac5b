"""PSNR/SSIM/NIQE against independent float64 references written here from the papers' formulas and the MATLAB
reference code's definitions (loops, no shared helpers), plus sanity values and the published bicubic baselines."""

import math
from pathlib import Path

import numpy as np
import pytest
from matlab_reference import matlab_kernel
from paths import SHARED_DATASETS
from PIL import Image

from esrgan.training.bicubic import downscale_uint8, imresize
from esrgan.training.metrics import flat_colour_shift, flat_mask, hatch_amplitude, luminance, niqe, psnr_y, ssim_y

DATASETS = SHARED_DATASETS
needs_datasets = pytest.mark.skipif(not DATASETS.is_dir(), reason="the shared Set5/Set14 images are not here")


def load(name: str) -> np.ndarray:
    return np.asarray(Image.open(DATASETS / name))


# ---- independent references -------------------------------------------------------------------------------------


def ref_y(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr on uint8, pixel by pixel: round-half-away of 16 + (65.481 R + 128.553 G + 24.966 B)/255."""
    if img.ndim == 2:
        return img.astype(np.float64)
    h, w, _ = img.shape
    y = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            r, g, b = (float(v) / 255.0 for v in img[i, j])
            y[i, j] = math.floor(16.0 + 65.481 * r + 128.553 * g + 24.966 * b + 0.5)
    return y


def ref_psnr(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    ya, yb = ref_y(a), ref_y(b)
    h, w = ya.shape
    total, n = 0.0, 0
    for i in range(crop, h - crop):
        for j in range(crop, w - crop):
            total += (ya[i, j] - yb[i, j]) ** 2
            n += 1
    return 10 * math.log10(255.0**2 / (total / n))


def ref_ssim(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    """Wang et al. 2004: 11x11 Gaussian (sigma 1.5) window, one weighted local statistic per valid position."""
    x = ref_y(a)[crop : a.shape[0] - crop, crop : a.shape[1] - crop]
    y = ref_y(b)[crop : b.shape[0] - crop, crop : b.shape[1] - crop]
    d = np.arange(-5, 6)
    window = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = np.sum(window * px), np.sum(window * py)
            vx = np.sum(window * (px - mx) ** 2)
            vy = np.sum(window * (py - my) ** 2)
            cxy = np.sum(window * (px - mx) * (py - my))
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def ref_halve_axis0(img: np.ndarray) -> np.ndarray:
    """MATLAB imresize(., 0.5) along rows: antialiased cubic (kernel stretched to width 8), mirrored borders."""
    n = img.shape[0]
    out = np.zeros((n // 2, *img.shape[1:]))
    for o in range(n // 2):
        centre = (o + 1) * 2 - 0.5  # 1-based source coordinate of output pixel o + 1
        taps = range(math.floor(centre - 4), math.floor(centre - 4) + 10)
        weights = [0.5 * matlab_kernel(0.5 * (centre - t)) for t in taps]
        total = sum(weights)
        for t, wt in zip(taps, weights, strict=True):
            k = t - 1
            while not 0 <= k < n:  # mirror: -1 -> 0, n -> n - 1
                k = -k - 1 if k < 0 else 2 * n - 1 - k
            out[o] += wt / total * img[k]
    return out


def ref_aggd(v: np.ndarray) -> tuple[float, float, float]:
    neg, pos = v[v < 0], v[v > 0]
    left, right = math.sqrt(np.mean(neg**2)), math.sqrt(np.mean(pos**2))
    g = left / right
    r = np.mean(np.abs(v)) ** 2 / np.mean(v**2)
    rn = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    best, best_err = None, math.inf
    for k in range(9801):  # MATLAB's gam = 0.2:0.001:10
        a = 0.2 + 0.001 * k
        err = (math.gamma(2 / a) ** 2 / (math.gamma(1 / a) * math.gamma(3 / a)) - rn) ** 2
        if err < best_err:
            best, best_err = a, err
    f = math.sqrt(math.gamma(1 / best) / math.gamma(3 / best))
    return best, left * f, right * f


def ref_niqe(img: np.ndarray) -> float:
    """Mittal et al.'s computequality: MSCN with a 7x7 Gaussian (replicate borders), 18 AGGD features per block and
    scale, MVG distance to the pristine model."""
    params = np.load(Path(__file__).parents[1] / "training" / "niqe" / "niqe_pris_params.npz")
    window = params["gaussian_window"]
    y = ref_y(img)
    rows, cols = y.shape[0] // 96, y.shape[1] // 96
    y = y[: rows * 96, : cols * 96]
    feats = [[] for _ in range(rows * cols)]
    for scale in (1, 2):
        h, w = y.shape
        padded = np.pad(y, 3, mode="edge")
        mu = np.zeros_like(y)
        second = np.zeros_like(y)
        for di in range(7):
            for dj in range(7):
                patch = padded[di : di + h, dj : dj + w]
                mu += window[di, dj] * patch
                second += window[di, dj] * patch**2
        mscn = (y - mu) / (np.sqrt(np.abs(second - mu**2)) + 1)
        size = 96 // scale
        for r in range(rows):
            for c in range(cols):
                blk = mscn[r * size : (r + 1) * size, c * size : (c + 1) * size]
                a, bl, br = ref_aggd(blk.ravel())
                feats[r * cols + c] += [a, (bl + br) / 2]
                for di, dj in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                    # circshift: shifted[i, j] = blk[(i - di) mod size, (j - dj) mod size]
                    idx_i = (np.arange(size) - di) % size
                    idx_j = (np.arange(size) - dj) % size
                    prod = blk * blk[idx_i][:, idx_j]
                    a, bl, br = ref_aggd(prod.ravel())
                    mean = (br - bl) * math.gamma(2 / a) / math.gamma(1 / a)
                    feats[r * cols + c] += [a, mean, bl, br]
        y = ref_halve_axis0(ref_halve_axis0(y).T).T
    f = np.array(feats)
    mu_d, cov_d = f.mean(axis=0), np.cov(f.T)
    diff = params["mu_pris_param"].ravel() - mu_d
    return math.sqrt(diff @ np.linalg.pinv((params["cov_pris_param"] + cov_d) / 2) @ diff)


# ---- agreement with the references --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A real HR crop and its bicubic x4 reconstruction (a realistic, non-trivial error). Without the shared photos, a
    textured synthetic crop with the same kind of error (SSIM about 0.9; pure noise would score 0.08)."""
    if DATASETS.is_dir():
        hr = load("Set5/bird.png")[100:148, 80:120]
    else:
        yy, xx = np.mgrid[0:48, 0:40]
        base = 128 + 60 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + np.random.default_rng(3).normal(0, 8, (48, 40))
        hr = np.clip(np.stack([base, 0.8 * base + 20, 255 - base], -1), 0, 255).astype(np.uint8)
    lr = downscale_uint8(hr, 4)
    sr = np.clip(np.floor(imresize(lr.astype(np.float64), 4) + 0.5), 0, 255).astype(np.uint8)
    return hr, sr


def test_luminance_matches_matlab_rgb2ycbcr(pair):
    hr, _ = pair
    np.testing.assert_array_equal(luminance(hr), ref_y(hr))
    assert luminance(np.zeros((1, 1, 3), np.uint8))[0, 0] == 16
    assert luminance(np.full((1, 1, 3), 255, np.uint8))[0, 0] == 235


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_matches_reference(pair, crop):
    hr, sr = pair
    assert psnr_y(hr, sr, crop) == pytest.approx(ref_psnr(hr, sr, crop), abs=1e-10)


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_matches_reference(pair, crop):
    hr, sr = pair
    value = ssim_y(hr, sr, crop)
    assert value == pytest.approx(ref_ssim(hr, sr, crop), abs=1e-10)
    assert 0.2 < value < 1


@needs_datasets
def test_niqe_matches_reference():
    img = load("Set5/baby.png")[:192, :288]  # 2 x 3 blocks of 96
    assert niqe(img) == pytest.approx(ref_niqe(img), rel=1e-9)
    gray = load("Set14/bridge.png")[100:292, 50:242]  # raw gray levels, 2 x 2 blocks
    assert niqe(gray) == pytest.approx(ref_niqe(gray), rel=1e-9)


@needs_datasets
def test_niqe_close_to_the_matlab_value_reported_for_baboon():
    """A MATLAB R2021a NIQE of 5.7296 for baboon.png (Y channel, no crop) is quoted with BasicSR's NIQE port; the
    file there is presumably Set14's baboon, which we score 5.7300."""
    assert niqe(load("Set14/baboon.png")) == pytest.approx(5.7296, abs=0.002)


# ---- sanity values ------------------------------------------------------------------------------------------------


def test_identical_images_score_perfectly(pair):
    hr, _ = pair
    assert psnr_y(hr, hr.copy(), 4) == math.inf
    assert ssim_y(hr, hr.copy(), 4) == pytest.approx(1.0, abs=1e-12)


def test_known_mse_gives_known_psnr():
    a = np.full((20, 20), 100, np.uint8)
    b = np.full((20, 20), 110, np.uint8)  # gray: MSE exactly 100
    assert psnr_y(a, b, 0) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    black, white = np.zeros((20, 20, 3), np.uint8), np.full((20, 20, 3), 255, np.uint8)  # Y 16 vs 235
    assert psnr_y(black, white, 2) == pytest.approx(20 * math.log10(255 / 219), abs=1e-12)


def test_crop_ignores_the_border(pair):
    hr, _ = pair
    damaged = hr.copy()
    damaged[:3] = 0
    damaged[:, -3:] = 255
    assert psnr_y(hr, damaged, 3) == math.inf
    assert psnr_y(hr, damaged, 2) < 30


def test_bad_inputs_are_refused(pair):
    hr, sr = pair
    with pytest.raises(TypeError, match="uint8"):
        psnr_y(hr.astype(np.float32), sr.astype(np.float32), 4)
    with pytest.raises(ValueError, match="shape"):
        ssim_y(hr, sr[:-1], 4)
    with pytest.raises(ValueError, match="crop"):
        psnr_y(hr, sr, 30)
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        niqe(hr)


@needs_datasets
def test_niqe_prefers_natural_images_to_blurred_or_noisy_ones():
    rng = np.random.default_rng(0)
    for name in ("Set5/baby.png", "Set5/bird.png", "Set14/lenna.png"):
        img = load(name)
        blurred = np.clip(np.floor(imresize(imresize(img.astype(np.float64), 0.25), 4) + 0.5), 0, 255)
        noisy = np.clip(np.round(img + rng.normal(0, 25, img.shape)), 0, 255)
        natural = niqe(img, 4)
        assert natural < niqe(blurred.astype(np.uint8), 4) - 1
        assert natural < niqe(noisy.astype(np.uint8), 4) - 1


# ---- published bicubic x4 baselines -------------------------------------------------------------------------------


def bicubic_means(folder: str, gray_as_rgb: bool = False) -> tuple[float, float]:
    psnrs, ssims = [], []
    for path in sorted((DATASETS / folder).glob("*.png")):
        hr = np.asarray(Image.open(path))
        h, w = hr.shape[:2]
        hr = hr[: h - h % 4, : w - w % 4]
        if gray_as_rgb and hr.ndim == 2:
            hr = np.repeat(hr[:, :, None], 3, axis=2)
        lr = downscale_uint8(hr, 4)
        sr = np.clip(np.floor(imresize(lr.astype(np.float64), 4) + 0.5), 0, 255).astype(np.uint8)
        psnrs.append(psnr_y(hr, sr, 4))
        ssims.append(ssim_y(hr, sr, 4))
    return float(np.mean(psnrs)), float(np.mean(ssims))


@needs_datasets
def test_set5_bicubic_x4_matches_published_table():
    psnr, ssim = bicubic_means("Set5")
    assert psnr == pytest.approx(28.42, abs=0.05)
    assert ssim == pytest.approx(0.8104, abs=0.001)


@needs_datasets
def test_set14_bicubic_x4_matches_published_table_with_bridge_on_raw_gray_levels():
    psnr, ssim = bicubic_means("Set14")
    assert psnr == pytest.approx(26.00, abs=0.05)
    assert ssim == pytest.approx(0.7027, abs=0.001)
    converted, _ = bicubic_means("Set14", gray_as_rgb=True)  # the other convention scores bridge ~1.3 dB higher
    assert converted - psnr == pytest.approx(0.09, abs=0.03)


# ---- flat-area artifacts ------------------------------------------------------------------------------------------


def sinusoid(shape: tuple[int, int], amplitude: float, angle: float, cycles: float = 8.0) -> np.ndarray:
    """A plane wave of `cycles` per 64 px whose crests run across `angle` degrees (45: a diagonal hatch)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    fx, fy = np.cos(np.radians(angle)) * cycles / 64, np.sin(np.radians(angle)) * cycles / 64
    return amplitude * np.sin(2 * np.pi * (fx * x + fy * y) + 0.3)


def to_levels(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def half_flat() -> np.ndarray:
    """A 192x320 gray HR: flat (128) on the left 160 columns, noise of std 40 on the right."""
    rng = np.random.default_rng(5)
    hr = np.full((192, 320), 128.0)
    hr[:, 160:] += rng.normal(0, 40, (192, 160))
    return to_levels(hr)


def test_flat_mask_keeps_whole_8x8_blocks_under_3_grey_levels():
    checker = np.indices((8, 8)).sum(axis=0) % 2 * 2 - 1  # +-1, std exactly 1
    img = np.full((20, 20), 100.0)
    img[:8, 8:16] += 2 * checker
    img[8:16, :8] += 3 * checker  # exactly 3: not under it
    flat = flat_mask(to_levels(img))
    assert flat[:8, :16].all() and not flat[8:16, :8].any() and flat[8:16, 8:16].all()
    assert not flat[16:].any() and not flat[:, 16:].any()  # the partial blocks at the edges


@pytest.mark.parametrize("angle", [45, 135, 30])
def test_hatch_reads_the_amplitude_of_a_diagonal_sinusoid_on_the_flat_part_only(half_flat, angle):
    added = sinusoid(half_flat.shape, 2.0, angle)
    added[:, 160:] *= 5  # a stronger pattern where the HR is textured is not counted
    value = hatch_amplitude(to_levels(half_flat + added), half_flat, flat_mask(half_flat))
    assert value == pytest.approx(2.0 if angle != 30 else 1.86, rel=0.05)  # 15 degrees off: its peak leaks out


def test_hatch_reads_sub_grey_level_amplitudes_on_noisy_flat_areas():
    """Where the eye saw the hatch (about 0.9 levels): noise dithers the rounding, as on a real sky."""
    rng = np.random.default_rng(1)
    sky = 128 + rng.normal(0, 1.0, (256, 256))
    hr = to_levels(sky)
    flat = flat_mask(hr)
    assert flat.all()
    for amplitude in (0.0, 0.5, 0.9):
        output = to_levels(sky + sinusoid(sky.shape, amplitude, 45) + rng.normal(0, 0.7, sky.shape))
        assert hatch_amplitude(output, hr, flat) == pytest.approx(amplitude, abs=0.08)


def test_hatch_is_zero_for_axis_aligned_patterns_and_no_texture(half_flat):
    flat = flat_mask(half_flat)
    for angle in (0, 90):
        assert hatch_amplitude(to_levels(half_flat + sinusoid(half_flat.shape, 2.0, angle)), half_flat, flat) < 0.05
    assert hatch_amplitude(half_flat, half_flat, flat) == 0


def test_hatch_in_rgb_is_measured_on_luma():
    hr = np.full((128, 128, 3), (120, 90, 200), np.uint8)
    rgb = to_levels(hr + sinusoid(hr.shape[:2], 3.0, 45)[:, :, None] * (1.0, 0.5, 2.0))
    value = hatch_amplitude(rgb, hr, flat_mask(hr))
    assert value == hatch_amplitude(to_levels(luminance(rgb)), to_levels(luminance(hr)), flat_mask(hr))
    assert value == pytest.approx(3.0 * (65.481 + 0.5 * 128.553 + 2 * 24.966) / 255, rel=0.15)


def test_hatch_of_a_flat_noisy_hr_against_its_bicubic_upscale_is_about_zero():
    rng = np.random.default_rng(6)
    hr = to_levels(np.full((256, 256), 140.0) + rng.normal(0, 1.0, (256, 256)))
    sr = to_levels(imresize(downscale_uint8(hr, 4).astype(np.float64), 4))
    flat = flat_mask(hr)
    assert flat.mean() > 0.9
    assert hatch_amplitude(hr, sr, flat) < 0.1


def test_hatch_is_nan_without_a_flat_patch(half_flat):
    rng = np.random.default_rng(7)
    textured = to_levels(128 + rng.normal(0, 40, (192, 192)))
    assert math.isnan(hatch_amplitude(textured, textured, flat_mask(textured)))
    small = half_flat[:95, :95]  # no 64 px patch 16 px from every border
    assert math.isnan(hatch_amplitude(small, small, flat_mask(small)))


def test_colour_shift_is_the_largest_channel_mean_change_on_flat_pixels(half_flat):
    hr = np.repeat(half_flat[:, :, None], 3, axis=2)
    flat = flat_mask(hr)
    reference = to_levels(hr.astype(np.float64) + 3)
    output = reference.astype(np.float64)
    output[:, :160, 1] += 5  # green up on the flat part
    output[:, :160, 2] -= 2
    output[:, 160:] -= 50  # not counted: the HR is textured there
    assert flat_colour_shift(to_levels(output), reference, flat) == pytest.approx(5.0, abs=1e-12)
    assert flat_colour_shift(reference, reference, flat) == 0


def test_colour_shift_is_nan_for_gray_images_or_without_flat_pixels(half_flat):
    assert math.isnan(flat_colour_shift(half_flat, half_flat, flat_mask(half_flat)))
    rng = np.random.default_rng(8)
    textured = to_levels(128 + rng.normal(0, 40, (64, 64, 3)))
    assert math.isnan(flat_colour_shift(textured, textured, flat_mask(textured)))

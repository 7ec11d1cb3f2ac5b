"""training/bicubic.imresize against a direct, loop-based float64 transcription of MATLAB's imresize formulas."""

import math

import numpy as np
import pytest
from matlab_reference import matlab_kernel

from esrgan.training.bicubic import downscale_uint8, imresize


def reference_resize_axis(column: list[float], out_length: int, scale: float) -> list[float]:
    """One output sample at a time, exactly as MATLAB's `contributions` + `resizeAlongDim` spell it out."""
    n = len(column)
    width = 4.0 / scale if scale < 1 else 4.0
    aux = list(range(1, n + 1)) + list(range(n, 0, -1))
    out = []
    for x in range(1, out_length + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + j for j in range(math.ceil(width) + 2)]
        if scale < 1:
            weights = [scale * matlab_kernel((u - t) * scale) for t in taps]
        else:
            weights = [matlab_kernel(u - t) for t in taps]
        total = sum(weights)
        value = 0.0
        for t, wgt in zip(taps, weights, strict=True):
            source = aux[(t - 1) % len(aux)]
            value += wgt / total * column[source - 1]
        out.append(value)
    return out


def reference_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    chans = img.shape[2] if img.ndim == 3 else 1
    planes = img.reshape(h, w, chans)
    result = np.zeros((out_h, out_w, chans))
    for c in range(chans):
        rows_done = np.zeros((out_h, w))
        for j in range(w):
            rows_done[:, j] = reference_resize_axis(list(planes[:, j, c]), out_h, scale)
        for i in range(out_h):
            result[i, :, c] = reference_resize_axis(list(rows_done[i, :]), out_w, scale)
    return result.reshape((out_h, out_w, *img.shape[2:]))


@pytest.mark.parametrize(
    ("shape", "scale"),
    [
        ((16, 12, 3), 1 / 4),  # multiples of the scale
        ((17, 23, 3), 1 / 4),  # not multiples: output is ceil(in * scale)
        ((9, 14), 1 / 3),  # grayscale, 3x
        ((13, 10, 3), 1 / 2),
        ((5, 7, 3), 4),  # upscaling: no antialiasing stretch
        ((6, 5), 3),
        ((3, 4, 2), 1 / 4),  # smaller than the kernel: every tap mirrors
    ],
)
def test_imresize_matches_loop_reference(shape: tuple[int, ...], scale: float) -> None:
    img = np.random.default_rng(sum(shape)).random(shape)
    ours = imresize(img, scale)
    ref = reference_imresize(img, scale)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) < 1e-6


def test_imresize_keeps_constants_and_does_not_clamp() -> None:
    flat = np.full((20, 18, 3), 0.3)
    assert np.allclose(imresize(flat, 1 / 4), 0.3, atol=1e-12)
    step = np.zeros((16, 16))
    step[:, 8:] = 1.0
    up = imresize(step, 4)
    assert up.min() < 0 and up.max() > 1  # cubic overshoot is kept: rounding is the caller's job


def test_downscale_uint8_rounds_like_matlab() -> None:
    img = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    lr = downscale_uint8(img, 4)
    expected = np.clip(np.floor(reference_imresize(img.astype(np.float64), 1 / 4) + 0.5), 0, 255)
    assert lr.dtype == np.uint8 and lr.shape == (6, 5, 3)
    assert np.array_equal(lr, expected.astype(np.uint8))


def test_imresize_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros(4), 0.5)

"""MATLAB-compatible bicubic `imresize`: how every published SR benchmark and the DIV2K LR images were made.

Follows MATLAB's `imresize(img, scale)` (method 'bicubic', antialiasing on): Keys' cubic kernel with a = -0.5, the
kernel stretched by 1/scale when shrinking, output size ceil(in * scale), sample centres u = x/scale + (1 - 1/scale)/2
(1-based), symmetric (mirror) border handling, and the dimension with the smaller scale first (rows first on a tie).
Each pass gathers the taps of all output samples at once and sums them with their weights, in float64.
"""

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def contributions(
    in_length: int, out_length: int, scale: float, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per output sample, the weights and (0-based) input indices of its taps: MATLAB's `contributions`.

    Taps that fall outside [1, in_length] are mirrored back in, as MATLAB's `aux = [1:n, n:-1:1]` does.
    """
    kernel_width = 4.0
    shrink = scale < 1 and antialiasing
    if shrink:
        kernel_width /= scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(distance * scale) if shrink else cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    period = 2 * in_length
    mirrored = np.mod(indices.astype(np.int64) - 1, period)
    mirrored = np.where(mirrored < in_length, mirrored, period - 1 - mirrored)
    return weights, mirrored


def _resize_axis0(img: np.ndarray, out_length: int, scale: float, antialiasing: bool) -> np.ndarray:
    """Weighted sum of gathered rows. No BLAS on purpose: these products are tiny, and a threaded BLAS on a busy
    machine made them a hundred times slower than this loop over the few taps."""
    weights, indices = contributions(img.shape[0], out_length, scale, antialiasing)
    weights = weights.reshape(weights.shape + (1,) * (img.ndim - 1))
    out = np.zeros((out_length, *img.shape[1:]), dtype=np.float64)
    for k in range(indices.shape[1]):
        out += weights[:, k] * img[indices[:, k]]
    return out


def imresize(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC float image by `scale` like MATLAB's `imresize(img, scale)`.

    Returns float64 with no clamping or rounding: callers that want uint8 pixels round and clip themselves, which is
    what MATLAB does for uint8 inputs.
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize takes an HxW or HxWxC image, got shape {img.shape}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale}")
    out = np.asarray(img, dtype=np.float64)
    h, w = out.shape[:2]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    # MATLAB resizes along the dimension with the smaller scale first; with one scalar scale that is rows first.
    out = _resize_axis0(out, out_h, scale, antialiasing)
    out = _resize_axis0(np.swapaxes(out, 0, 1), out_w, scale, antialiasing)
    return np.ascontiguousarray(np.swapaxes(out, 0, 1))


def downscale_uint8(img: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of an HxWx3 uint8 HR image, as MATLAB's imresize(img, 1/scale) returns it for uint8 input
    (rounded half away from zero, which for non-negative values is floor(x + 0.5), then saturated)."""
    lr = imresize(img.astype(np.float64), 1.0 / scale)
    return np.clip(np.floor(lr + 0.5), 0, 255).astype(np.uint8)

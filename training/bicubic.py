"""MATLAB-compatible bicubic `imresize`: how every published SR benchmark and the DIV2K LR images were made.

Follows MATLAB's `imresize(img, scale)` (method 'bicubic', antialiasing on): Keys' cubic kernel with a = -0.5, the
kernel stretched by 1/scale when shrinking, output size ceil(in * scale), sample centres u = x/scale + (1 - 1/scale)/2
(1-based), symmetric (mirror) border handling, and the dimension with the smaller scale first (rows first on a tie).
Each pass is a dense (out, in) weight matrix built once per dimension and applied with one matmul, in float64.
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


def resize_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """The (out_length, in_length) matrix M with out = M @ in along one axis (MATLAB's `contributions`).

    Taps that fall outside [1, in_length] are mirrored back in (MATLAB's `aux = [1:n, n:-1:1]`), so their weight is
    added to the pixel they mirror onto; that is why the matrix is accumulated rather than assigned.
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
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], mirrored.shape)
    np.add.at(matrix, (rows, mirrored), weights)
    return matrix


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
    rows = resize_matrix(h, out_h, scale, antialiasing)
    out = np.tensordot(rows, out, axes=(1, 0))
    cols = resize_matrix(w, out_w, scale, antialiasing)
    out = np.moveaxis(np.tensordot(cols, out, axes=(1, 1)), 0, 1)
    return out


def downscale_uint8(img: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of an HxWx3 uint8 HR image, as MATLAB's imresize(img, 1/scale) returns it for uint8 input
    (rounded half away from zero, which for non-negative values is floor(x + 0.5), then saturated)."""
    lr = imresize(img.astype(np.float64), 1.0 / scale)
    return np.clip(np.floor(lr + 0.5), 0, 255).astype(np.uint8)

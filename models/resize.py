"""Output scale: which size a request asks for, and the resize of the network's result to it.

The network always runs at its own scale (x4, x2); a request for less (`--outscale 2`, `?scale=2`, a target width
or height) resizes the assembled result afterwards, as Real-ESRGAN's `--outscale` does. No torch here: the API's
request path checks sizes with `output_size` without loading it.

The filter is Pillow's Lanczos (a = 3). Pillow widens the kernel by the shrink factor, so it stays an antialiased,
area-weighted filter when it shrinks, unlike OpenCV's fixed 8x8 INTER_LANCZOS4 that Real-ESRGAN's `--outscale`
applies to its output, which aliases fine patterns once it shrinks. A mild shrink, the usual case (x4 -> x2 or x3),
keeps edges crisp with a little ringing that the clamp to the value range cuts. When shrinking a lot (by
2 x `REDUCING_GAP` or more, which an x8 network asked for x1.3 would do), Pillow first averages whole blocks
(`Image.reduce`, a box/area filter: cheap, and it cannot alias) and Lanczos does the remaining factor, at least
`REDUCING_GAP`; Pillow documents a gap of 3 as indistinguishable from the plain filter. For the x2 and x4 networks
every allowed scale shrinks their output by less than 4x, so their results are pure Lanczos.
"""

import numpy as np
from PIL import Image

from esrgan.models.images import Picture

REDUCING_GAP = 3.0
BAND = 256  # rows premultiplied at a time in 16 bits


class ScaleError(ValueError):
    """A requested output size the network cannot give; the message names the limit and is meant for people."""


def _rounded(value: float) -> int:
    """Nearest whole pixel (halves up), at least 1."""
    return max(1, int(value + 0.5))


def output_size(
    width: int,
    height: int,
    model_scale: int,
    scale: float | None = None,
    out_width: int | None = None,
    out_height: int | None = None,
) -> tuple[int, int]:
    """The output (width, height) of a `width` x `height` input for one request.

    Nothing asked: the model's own scale. `scale`: any value in (1, model_scale], each side rounded to the nearest
    pixel (Real-ESRGAN truncates; rounding makes x2.5 of 101 px 253, not 252). `out_width` or `out_height`: that
    side exactly, the other from the aspect ratio (rounded). Both: accepted only when one follows from the other by
    that rounding (either way), and then used exactly as given.

    Raises:
        ScaleError: scale with a target size, a scale or target outside (1, model_scale] of the input, or a width
            and height that do not keep the aspect ratio.
    """
    limit = f"the model's own scale (x{model_scale})"
    if scale is not None:
        if out_width is not None or out_height is not None:
            raise ScaleError("give a scale, or a target width/height, not both")
        if scale > model_scale:
            raise ScaleError(f"scale {scale:g} is larger than {limit}: ask for at most {model_scale}")
        if not scale > 1:
            raise ScaleError(f"scale {scale:g} must be more than 1 (and at most {limit})")
        return _rounded(width * scale), _rounded(height * scale)
    if out_width is None and out_height is None:
        return width * model_scale, height * model_scale
    from_w = None if out_width is None else (out_width, _rounded(height * out_width / width))
    from_h = None if out_height is None else (_rounded(width * out_height / height), out_height)
    if from_w and from_h and from_w[1] != out_height and from_h[0] != out_width:
        raise ScaleError(
            f"width {out_width} and height {out_height} do not keep the image's aspect ratio ({width}x{height}): "
            f"for width {out_width} the height is {from_w[1]}; give only one of them"
        )
    size = (out_width, out_height) if from_w and from_h else from_w or from_h
    assert size is not None
    for side, target, source in (("width", out_width, width), ("height", out_height, height)):
        if target is None:
            continue  # follows from the other side, within a rounding of it
        if target > source * model_scale:
            raise ScaleError(
                f"{side} {target} needs x{target / source:.3g}, more than {limit}: "
                f"at most {source * model_scale} for this {width}x{height} image"
            )
        if target <= source:
            raise ScaleError(f"{side} {target} must be larger than the image's {source} (and at most x{model_scale})")
    return size


def resize(picture: Picture, width: int, height: int) -> Picture:
    """The picture resized to `width` x `height` (see the module's note on the filter), with its bit depth, channels
    and ICC profile, in the integer dtype of its depth (as the engine's output already is).

    One channel at a time, in Pillow's integer modes (8-bit "L", 16-bit "I;16", reading the plane in place where its
    layout allows): besides the picture it is given, only about one full-size plane of 1 or 2 bytes a pixel exists at
    once, and the result is allocated at its own size (benchmarks/resize_memory.py). With transparency the colour is
    premultiplied by alpha before filtering and divided after, so the invisible colour of transparent pixels never
    bleeds into the visible ones.
    """
    if (width, height) == (picture.width, picture.height):
        return picture
    px = picture.as_int()
    top = np.iinfo(px.dtype).max
    out = np.empty((height, width, px.shape[2]), dtype=px.dtype)
    if not picture.has_alpha:
        for c in range(px.shape[2]):
            out[..., c] = _resize_plane(px[..., c], width, height)
        return Picture(pixels=out, bits=picture.bits, icc=picture.icc)
    alpha = px[..., -1]
    # Colour x alpha and alpha itself go through the same 16-bit filter, in the same units, so that their quotient
    # is the colour again: for 8 bits alpha x 255 and colour x alpha (exact, both at most 255 * 255 < 2**16); for 16
    # bits alpha and colour x alpha / 65535 (rounded: the error only shows where alpha is a few levels).
    unit = 255 if px.dtype == np.uint8 else 1
    small_alpha = _resize_plane(alpha.astype(np.uint16) * np.uint16(unit), width, height).astype(np.float32)
    out[..., -1] = _rounded_into(small_alpha / unit, top)
    visible = small_alpha > 0
    for c in range(px.shape[2] - 1):
        if px.dtype == np.uint8:
            premultiplied = px[..., c].astype(np.uint16) * alpha
        else:  # in bands of rows, so that the 32-bit product never exists at full size
            premultiplied = np.empty(alpha.shape, np.uint16)
            for y in range(0, alpha.shape[0], BAND):
                wide = px[y : y + BAND, :, c].astype(np.uint32)
                wide *= alpha[y : y + BAND]
                wide += top // 2
                wide //= top
                premultiplied[y : y + BAND] = wide
        colour = _resize_plane(premultiplied, width, height).astype(np.float32)
        del premultiplied
        colour *= top
        np.divide(colour, small_alpha, out=colour, where=visible)
        colour[~visible] = 0
        out[..., c] = _rounded_into(colour, top)
    return Picture(pixels=out, bits=picture.bits, icc=picture.icc)


def _rounded_into(values: np.ndarray, top: int) -> np.ndarray:
    """Float values clamped to [0, top] and offset for rounding, in place: assigned to an integer array they round."""
    np.clip(values, 0, top, out=values)
    values += 0.5
    return values


def _resize_plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """One uint8 or uint16 channel resized with Lanczos (block-averaged first when it shrinks a lot)."""
    mode = "L" if plane.dtype == np.uint8 else "I;16"
    h, w = plane.shape
    image = Image.frombuffer(mode, (w, h), np.ascontiguousarray(plane), "raw", mode, 0, 1)  # shares the buffer
    if mode == "I;16" and max(w / width, h / height) >= 2 * REDUCING_GAP:
        image = image.convert("I")  # Image.reduce, the block average, has no 16-bit mode; 32-bit has
    small = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP))
    return np.clip(small, 0, np.iinfo(plane.dtype).max).astype(plane.dtype)

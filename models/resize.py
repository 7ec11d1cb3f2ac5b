"""Output scale: which size a request asks for, and the resize of the network's result to it.

The network always runs at its own scale (x4, x2); a request for less (`--outscale 2`, `?scale=2`, a target width
or height) resizes the assembled result afterwards, as Real-ESRGAN's `--outscale` does. No torch here: the API's
request path checks sizes with `output_size` without loading it.

The filter is Pillow's Lanczos (a = 3). Pillow widens the kernel by the shrink factor, so it is an antialiased,
area-weighted filter when it shrinks (unlike OpenCV's fixed 8-tap INTER_LANCZOS4, which Real-ESRGAN uses and which
aliases fine patterns when the factor passes 2); a mild shrink, the usual case (x4 -> x2 or x3), keeps edges crisp
with a little ringing that the clamp to the value range cuts. When shrinking a lot (by `REDUCING_GAP` x 2 or more,
which an x8 network asked for x1.3 would do), Pillow first averages whole blocks (`Image.reduce`, a box/area filter:
cheap, and it cannot alias) and Lanczos does the rest, at most `REDUCING_GAP` times; Pillow documents a gap of 3 as
indistinguishable from the plain filter. For the x2 and x4 networks every allowed scale shrinks by less than 4x,
so their results are pure Lanczos.
"""

import numpy as np
from PIL import Image

from esrgan.models.images import Picture

REDUCING_GAP = 3.0


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
    pixel. `out_width` or `out_height`: that side exactly, the other from the aspect ratio (rounded). Both: accepted
    only when one follows from the other by that rounding (either way), and then used exactly as given.

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
    """The picture resized to `width` x `height` (see the module's note on the filter), keeping its dtype, bit depth,
    channels and ICC profile.

    One channel at a time, in float32 (exact for 16 bit): besides the input, only one full-size float plane exists
    at once, and the result is allocated at its own, smaller size. With transparency the colour is premultiplied by
    alpha before filtering and divided after, so the invisible colour of transparent pixels never bleeds into the
    visible ones.
    """
    if (width, height) == (picture.width, picture.height):
        return picture
    px = picture.pixels
    integer = np.issubdtype(px.dtype, np.integer)
    top = float(np.iinfo(px.dtype).max) if integer else 1.0
    out = np.empty((height, width, px.shape[2]), dtype=px.dtype)
    colours = px.shape[2] - 1 if picture.has_alpha else px.shape[2]
    alpha = None
    if picture.has_alpha:
        alpha = _resize_plane(px[..., -1].astype(np.float32), width, height).clip(0, top)
        out[..., -1] = _stored(alpha, px.dtype, top)
    for c in range(colours):
        plane = px[..., c].astype(np.float32)
        if alpha is not None:
            plane *= px[..., -1]  # premultiplied, in units of top * top
            small = _resize_plane(plane, width, height)
            del plane
            small = np.divide(small, alpha, out=np.zeros_like(small), where=alpha > 0)
        else:
            small = _resize_plane(plane, width, height)
            del plane
        out[..., c] = _stored(small, px.dtype, top)
    return Picture(pixels=out, bits=picture.bits, icc=picture.icc)


def _resize_plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """One float32 channel resized with Lanczos (block-averaged first when it shrinks a lot)."""
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))  # mode F
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP))


def _stored(values: np.ndarray, dtype: np.dtype, top: float) -> np.ndarray:
    """Filtered values back in the picture's dtype: Lanczos over- and undershoot clamped, integers rounded."""
    clipped = np.clip(values, 0, top)
    return (clipped + 0.5).astype(dtype) if np.issubdtype(dtype, np.integer) else clipped.astype(dtype)

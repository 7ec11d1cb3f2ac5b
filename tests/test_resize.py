"""Output scale: the size rules a request is checked against, and the resize that follows the network."""

import numpy as np
import pytest
from PIL import Image

from esrgan.models.images import Picture, read_image, write_image
from esrgan.models.resize import ScaleError, output_size, resize


def test_output_size_follows_the_scale_or_the_target() -> None:
    assert output_size(100, 75, 4) == (400, 300)
    assert output_size(100, 75, 4, scale=2) == (200, 150)
    assert output_size(100, 75, 4, scale=4) == (400, 300)
    assert output_size(101, 75, 4, scale=2.5) == (253, 188)  # 252.5 and 187.5 round up
    assert output_size(100, 75, 4, out_width=300) == (300, 225)
    assert output_size(100, 75, 4, out_height=150) == (200, 150)
    assert output_size(100, 75, 4, out_width=300, out_height=225) == (300, 225)
    assert output_size(101, 75, 4, out_width=300, out_height=223) == (300, 223)  # 300 from 223 (299.9): consistent


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"scale": 4.5}, "scale 4.5 is larger than the model's own scale (x4): ask for at most 4"),
        ({"scale": 1}, "scale 1 must be more than 1"),
        ({"scale": 0.5}, "scale 0.5 must be more than 1"),
        ({"scale": 2, "out_width": 200}, "not both"),
        ({"out_width": 401}, "width 401 needs x4.01, more than the model's own scale (x4): at most 400"),
        ({"out_height": 301}, "height 301 needs x4.01, more than the model's own scale (x4): at most 300"),
        ({"out_width": 100}, "width 100 must be larger than the image's 100"),
        ({"out_width": 300, "out_height": 300}, "do not keep the image's aspect ratio (100x75): for width 300 the"),
    ],
)
def test_output_size_refusals_say_why(kwargs: dict, words: str) -> None:
    with pytest.raises(ScaleError) as refused:
        output_size(100, 75, 4, **kwargs)
    assert words in str(refused.value)


def picture(pixels: np.ndarray, bits: int = 8) -> Picture:
    return Picture(pixels=pixels, bits=bits, icc=b"profile")


def test_8_bit_colour_matches_pillows_own_lanczos() -> None:
    """On a smooth picture (Pillow's 8-bit path rounds and clamps between its horizontal and vertical passes, ours
    stays float, so noise that overshoots would differ by the clamp)."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    smooth = [128 + 100 * np.sin(x / 5 + k) * np.cos(y / 7 - k) for k in range(3)]
    arr = np.stack(smooth, axis=2).round().astype(np.uint8)
    out = resize(picture(arr), 40, 30)
    want = np.asarray(Image.fromarray(arr).resize((40, 30), Image.Resampling.LANCZOS), dtype=np.int16)
    assert out.pixels.shape == (30, 40, 3) and out.pixels.dtype == np.uint8
    assert out.bits == 8 and out.icc == b"profile"
    assert np.abs(out.pixels.astype(np.int16) - want).max() <= 1  # Pillow filters 8-bit in fixed point


def test_shrinking_a_fine_pattern_does_not_alias() -> None:
    """One-pixel stripes shrunk by 3.2 become the even grey they average to: an antialiased filter. Point sampling
    (what a fixed-width kernel approaches as the factor grows) would keep stripes of 0 and 255."""
    arr = np.zeros((320, 320, 1), np.uint8)
    arr[:, ::2] = 255
    out = resize(picture(arr), 100, 100).pixels.astype(np.float32)
    assert np.abs(out[:, 2:-2] - 127.5).max() <= 3  # the outer columns see a kernel cut by the border
    point = arr[::3, ::3]  # every third pixel: the aliasing this avoids
    assert point.std() > 100


def test_16_bit_stays_16_bit_and_precise() -> None:
    """A smooth 16-bit ramp enlarged keeps values between the 8-bit steps, within one 16-bit level of the exact
    linear ramp (Lanczos reproduces a linear function away from the borders)."""
    ramp = np.linspace(1000, 1000 + 300, 64, dtype=np.float64)  # 300 levels over 64 px: far finer than 8 bit
    arr = np.repeat(np.round(ramp).astype(np.uint16)[None, :, None], 8, axis=0).repeat(3, axis=2)
    out = resize(picture(arr, bits=16), 96, 12)
    assert out.pixels.dtype == np.uint16 and out.bits == 16
    row = out.pixels[6, 10:-10, 0].astype(np.float64)
    x = (np.arange(96)[10:-10] + 0.5) * 64 / 96 - 0.5
    assert np.abs(row - (1000 + 300 * x / 63)).max() <= 1.5
    assert np.any(row % 257 != 0)


@pytest.mark.parametrize(("dtype", "bits"), [(np.uint8, 8), (np.uint16, 16)])
def test_transparent_colour_does_not_bleed_into_the_visible_part(dtype: type, bits: int) -> None:
    """Left half opaque blue, right half fully transparent with red colour values: shrunk, every visible pixel stays
    pure blue (premultiplied filtering), and the alpha edge stays where it was."""
    top = np.iinfo(dtype).max
    arr = np.zeros((40, 40, 4), dtype)
    arr[:, :20] = (0, 0, top, top)
    arr[:, 20:] = (top, 0, 0, 0)
    out = resize(picture(arr, bits), 30, 30).pixels
    visible = out[..., 3] > 0
    assert out[visible][:, 0].max() == 0 and out[visible][:, 2].min() == top
    seen = out[..., 3] > top // 100  # Lanczos rings a few 16-bit levels past the edge
    assert seen[:, :14].all() and not seen[:, 17:].any()
    assert out.dtype == dtype and out.shape == (30, 30, 4)


def test_a_16_bit_shrink_by_more_than_6_averages_blocks_first() -> None:
    """Past 2 x REDUCING_GAP Pillow block-averages before Lanczos; in 16 bits that runs in its 32-bit mode."""
    arr = np.zeros((140, 140, 1), np.uint16)
    arr[:, ::2] = 65535
    out = resize(picture(arr, bits=16), 20, 20).pixels
    assert out.dtype == np.uint16 and np.abs(out[:, 1:-1].astype(np.float64) - 32767.5).max() < 400


def test_grey_with_alpha_and_float_pictures() -> None:
    arr = np.full((20, 30, 2), 200, np.uint8)
    out = resize(picture(arr), 45, 30)
    assert out.pixels.shape == (30, 45, 2) and (out.pixels == 200).all()
    floats = resize(Picture(np.full((20, 30, 3), 0.25, np.float32), bits=16), 50, 33)  # as decoded: float in [0, 1]
    assert floats.pixels.dtype == np.uint16 and (floats.pixels == round(0.25 * 65535)).all()


def test_the_same_size_is_the_same_picture() -> None:
    pic = picture(np.zeros((5, 6, 3), np.uint8))
    assert resize(pic, 6, 5) is pic


def test_a_resized_result_round_trips_through_png() -> None:
    arr = np.random.default_rng(1).integers(0, 65536, (16, 24, 4), dtype=np.uint16)
    out = resize(picture(arr, bits=16), 36, 24)
    back = read_image(write_image(out, "png"))
    assert back.bits == 16 and back.pixels.shape == (24, 36, 4)
    assert np.array_equal((back.pixels * 65535 + 0.5).astype(np.uint16), out.pixels)

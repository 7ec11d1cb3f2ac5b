"""Decoding and encoding: formats, modes, alpha, 16 bit, ICC, EXIF orientation, and every kind of bad input."""

import io
import zlib

import numpy as np
import png
import pytest
from PIL import Image, ImageCms, ImageOps

from esrgan.models.images import FORMATS, ImageError, ImageTooLarge, Picture, read_image, write_image


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgb(h: int = 24, w: int = 36, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "JPEG"])
def test_every_input_format_decodes_to_float_rgb(fmt):
    arr = rgb()
    data = encode(Image.fromarray(arr), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    pic = read_image(data)
    assert pic.mode == "RGB" and pic.bits == 8 and pic.pixels.dtype == np.float32
    assert pic.pixels.shape == (24, 36, 3) and pic.pixels.min() >= 0 and pic.pixels.max() <= 1
    if fmt != "JPEG":  # the others are lossless here
        np.testing.assert_array_equal((pic.pixels * 255).round().astype(np.uint8), arr)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_output_format_writes_what_pillow_reads(fmt):
    pic = Picture(rgb().astype(np.float32) / 255)
    out = Image.open(io.BytesIO(write_image(pic, fmt)))
    assert out.format == fmt.upper() and out.size == (36, 24) and out.mode == "RGB"
    if fmt == "png":
        np.testing.assert_array_equal(np.asarray(out), rgb())


def test_unknown_output_format_is_refused():
    with pytest.raises(ImageError, match="choose one of png, webp, jpeg"):
        write_image(Picture(np.zeros((2, 2, 3), np.float32)), "gif")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow_does(orientation):
    im = Image.fromarray(rgb(10, 16))
    exif = Image.Exif()
    exif[0x0112] = orientation
    pic = read_image(encode(im, "PNG", exif=exif.tobytes()))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(encode(im, "PNG", exif=exif.tobytes())))))
    np.testing.assert_array_equal((pic.pixels * 255).round().astype(np.uint8), expected)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_icc_profile_is_carried_to_the_output(fmt):
    pic = read_image(encode(Image.fromarray(rgb()), "PNG", icc_profile=SRGB))
    assert pic.icc == SRGB
    assert Image.open(io.BytesIO(write_image(pic, fmt))).info.get("icc_profile") == SRGB


def test_grey_stays_grey_and_palette_becomes_rgb_or_rgba():
    grey = read_image(encode(Image.fromarray(rgb()[..., 0]), "PNG"))
    assert grey.mode == "L" and Image.open(io.BytesIO(write_image(grey))).mode == "L"
    assert read_image(encode(Image.fromarray(rgb()[..., 0]).convert("1"), "PNG")).mode == "L"
    assert read_image(encode(Image.fromarray(rgb()).convert("LA"), "PNG")).mode == "LA"
    pal = Image.fromarray(rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    assert read_image(encode(pal, "PNG")).mode == "RGB"
    pal.info["transparency"] = 0
    see_through = read_image(encode(pal, "PNG", transparency=0))
    assert see_through.mode == "RGBA" and see_through.pixels[..., 3].min() == 0


def test_rgba_keeps_transparency_in_png_and_webp_and_jpeg_flattens_on_white():
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, :4] = (255, 0, 0, 255)  # opaque red, and transparent black beside it
    pic = read_image(encode(Image.fromarray(arr), "PNG"))
    assert pic.mode == "RGBA"
    for fmt in ("png", "webp"):
        back = np.asarray(Image.open(io.BytesIO(write_image(pic, fmt))))
        assert back.shape == (8, 8, 4) and back[0, 0, 3] == 255 and back[0, 7, 3] == 0
    flat = np.asarray(Image.open(io.BytesIO(write_image(pic, "jpeg"))))
    assert flat.shape == (8, 8, 3) and flat[4, 7].min() > 240 and flat[4, 0, 0] > 240 > 20 > flat[4, 0, 1]


def png16(arr: np.ndarray, greyscale: bool, alpha: bool) -> bytes:
    h, w = arr.shape[:2]
    buf = io.BytesIO()
    writer = png.Writer(w, h, greyscale=greyscale, alpha=alpha, bitdepth=16)
    writer.write(buf, arr.reshape(h, -1).tolist())
    return buf.getvalue()


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_png_keeps_every_bit_through_to_a_16_bit_png(channels):
    arr = np.random.default_rng(channels).integers(0, 65536, (9, 13, channels), dtype=np.uint16)
    pic = read_image(png16(arr, greyscale=channels < 3, alpha=channels in (2, 4)))
    assert pic.bits == 16 and pic.pixels.shape == arr.shape
    np.testing.assert_array_equal((pic.pixels.astype(np.float64) * 65535).round().astype(np.uint16), arr)
    _, _, rows, info = png.Reader(bytes=write_image(pic, "png")).asDirect()
    assert info["bitdepth"] == 16 and info["planes"] == channels
    np.testing.assert_array_equal(np.vstack(list(rows)).reshape(arr.shape), arr)


def test_16_bit_png_output_carries_icc_and_16_bit_to_jpeg_is_8_bit():
    pic = Picture(np.full((4, 4, 3), 0.5, np.float32), bits=16, icc=SRGB)
    assert Image.open(io.BytesIO(write_image(pic, "png"))).info["icc_profile"] == SRGB
    assert np.asarray(Image.open(io.BytesIO(write_image(pic, "jpeg")))).dtype == np.uint8


def test_out_of_range_values_are_clamped_never_wrapped():
    pic = Picture(np.array([[[-0.5, 1.5, 0.5]]], np.float32))
    assert np.asarray(Image.open(io.BytesIO(write_image(pic)))).tolist() == [[[0, 255, 128]]]
    pic16 = Picture(np.array([[[-0.5, 1.5, 0.5]]], np.float32), bits=16)
    _, _, rows, _ = png.Reader(bytes=write_image(pic16)).asDirect()
    assert [list(r) for r in rows] == [[0, 65535, 32768]]


def test_bad_inputs_raise_image_error_with_a_clear_message(tmp_path):
    good = encode(Image.fromarray(rgb(64, 64)), "PNG")
    cases = {
        b"": "empty",
        b"this is not an image": "not an image",
        good[: len(good) // 2]: "broken or truncated",
        encode(Image.fromarray(rgb()), "GIF"): "GIF images are not supported",
    }
    for data, message in cases.items():
        with pytest.raises(ImageError, match=message):
            read_image(data)
    with pytest.raises(ImageError, match="cannot read the file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="more than the limit of 1,000"):
        read_image(good, max_pixels=1000)


def zero_size_png() -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + tag + body + zlib.crc32(tag + body).to_bytes(4, "big")

    ihdr = (0).to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_zero_size_image_is_refused():
    with pytest.raises(ImageError):
        read_image(zero_size_png())


def test_decompression_bomb_is_refused_from_the_header_before_decoding():
    # 12000 x 12000 grey zeros compress to ~140 kB but would decode to 144 MB
    im = Image.new("L", (12000, 12000))
    data = encode(im, "PNG", compress_level=9)
    assert len(data) < 1_000_000
    with pytest.raises(ImageTooLarge, match="more than the limit"):
        read_image(data)

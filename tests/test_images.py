"""Decoding and encoding: formats, modes, alpha, 16 bit, ICC, EXIF orientation, and every kind of bad input."""

import io
import zlib

import numpy as np
import png
import pytest
from PIL import Image, ImageCms

from esrgan.models.images import (
    FORMATS,
    MAX_SIDE,
    ImageError,
    ImageTooLarge,
    Picture,
    encoder_limit,
    read_image,
    write_image,
)


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


# How each EXIF orientation turns the stored pixels into the picture a person sees, in Pillow's words (its transpose
# is written independently of our numpy one).
TO_DISPLAY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def with_orientation(im: Image.Image, fmt: str, orientation: int) -> bytes:
    """`im` stored as it is, tagged with `orientation` where each format keeps it (a TIFF tag; EXIF otherwise:
    JPEG's APP1, PNG's eXIf chunk, WebP's EXIF chunk); orientation 0 writes no tag."""
    lossless = {"lossless": True} if fmt == "WEBP" else {}
    if not orientation:
        return encode(im, fmt, **lossless)
    if fmt == "TIFF":
        return encode(im, fmt, tiffinfo={0x0112: orientation})
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, fmt, exif=exif.tobytes(), **lossless)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_orientation_is_applied_exactly_once_in_every_format(fmt, orientation):
    """Pillow turns a TIFF itself when it loads it (and drops the tag); JPEG, PNG and WebP are left to us: either way
    the picture comes out turned once, pixel for pixel. The reference is the untagged file's own decode (JPEG is
    lossy, the others exact), turned by Pillow."""
    stored = Image.fromarray(rgb(10, 16))  # not square: a transposing orientation must swap the sides
    untagged = Image.open(io.BytesIO(with_orientation(stored, fmt, 0))).convert("RGB")
    expected = np.asarray(untagged.transpose(TO_DISPLAY[orientation]) if orientation > 1 else untagged)
    pic = read_image(with_orientation(stored, fmt, orientation))
    np.testing.assert_array_equal((pic.pixels * 255).round().astype(np.uint8), expected)


@pytest.mark.parametrize("orientation", [3, 6])
def test_orientation_of_a_16_bit_png_is_applied_once(orientation):
    """16-bit colour PNGs are decoded by pypng, not Pillow: the eXIf orientation still applies, once."""
    stored = np.random.default_rng(1).integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    writer = png.Writer(9, 6, greyscale=False, bitdepth=16)
    out = io.BytesIO()
    writer.write_array(out, stored.reshape(-1))
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()
    chunk = len(body).to_bytes(4, "big") + b"eXIf" + body + zlib.crc32(b"eXIf" + body).to_bytes(4, "big")
    data = out.getvalue()
    data = data[:33] + chunk + data[33:]  # after IHDR (8 + 25 bytes), before the pixel data
    pic = read_image(data)
    expected = np.rot90(stored, 2) if orientation == 3 else np.rot90(stored, -1)
    assert pic.bits == 16
    np.testing.assert_array_equal((pic.pixels * 65535).round().astype(np.uint16), expected)


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


@pytest.mark.parametrize("bits", [8, 16])
def test_pngs_are_written_at_the_fastest_zlib_level(bits):
    """A preview encodes on every slider move: level 1 (OpenCV's default) costs a quarter of Pillow's default 6."""
    data = write_image(Picture(rgb(64, 64).astype(np.float32) / 255, bits=bits), "png")
    idat = data.index(b"IDAT") + 4
    assert data[idat + 1] >> 6 == 0  # the zlib header's FLEVEL: 0 = fastest (levels 0-1), 2 = Pillow's default 6


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


@pytest.mark.parametrize(("fmt", "limit"), [("webp", 16383), ("jpeg", 65535)])
def test_results_past_an_encoders_side_limit_are_refused_naming_the_limit(fmt, limit):
    """The encoder's limit is known before any work (the API refuses with it at submit time); write_image says the
    same in words instead of the encoder's `encoding error 5`."""
    assert encoder_limit(fmt, limit, 1) is None and encoder_limit("png", limit + 1, limit + 1) is None
    reason = encoder_limit(fmt, 1, limit + 1)
    assert reason is not None and f"{limit:,} pixels" in reason and "format=png" in reason
    with pytest.raises(ImageError, match=f"at most {limit:,} pixels on a side"):
        write_image(Picture(np.zeros((1, limit + 1, 3), np.uint8)), fmt)
    at_limit = Image.open(io.BytesIO(write_image(Picture(np.zeros((1, MAX_SIDE["webp"], 3), np.uint8)), fmt)))
    assert at_limit.size == (MAX_SIDE["webp"], 1)

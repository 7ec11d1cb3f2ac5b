"""The API's upload check (service/uploads.py) on the files that used to be accepted and then fail, or be sized wrong:
a PNG whose chunks are all checksummed but whose pixel data is broken or missing rows, an interlaced PNG, and TIFFs
with an EXIF orientation. Real files; the check must agree with the workers' decoder (`read_image`)."""

import io
import zlib

import numpy as np
import png
import pytest
from fastapi import HTTPException
from PIL import Image

import esrgan.service.uploads as uploads_module
from esrgan.models.images import ImageError, read_image
from esrgan.service.job import Size
from esrgan.service.uploads import upload_size

RGB = np.random.default_rng(5).integers(0, 256, (12, 20, 3), dtype=np.uint8)


def chunk(tag: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + tag + body + zlib.crc32(tag + body).to_bytes(4, "big")


def png_with_rows(raw: bytes) -> bytes:
    """A 20x12 RGB PNG whose IDAT is `raw` deflated: every CRC right, whatever the rows hold."""
    out = io.BytesIO()
    Image.fromarray(RGB).save(out, "PNG")
    return out.getvalue()[:33] + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


ROWS = [bytes([0]) + RGB[y].tobytes() for y in range(12)]  # filter type 0 (None) on every row


def test_a_png_with_checksummed_rows_is_sized_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_with_rows(b"".join(ROWS))
    assert read_image(data).width == 20
    monkeypatch.setattr(uploads_module, "read_image", None)  # a good upload is never decoded into pixels here
    assert upload_size(data, max_pixels=10_000) == Size(width=20, height=12)


def test_a_png_with_a_bad_filter_byte_is_refused_in_the_decoders_words() -> None:
    """Every chunk's CRC is right, so Pillow's verify() passes it; only inflating the rows finds the bad filter."""
    data = png_with_rows(b"".join([ROWS[0], bytes([9]) + ROWS[1][1:], *ROWS[2:]]))
    with pytest.raises(ImageError) as decoded:
        read_image(data)
    with pytest.raises(HTTPException) as refused:
        upload_size(data, max_pixels=10_000)
    assert refused.value.status_code == 415 and refused.value.detail.endswith(str(decoded.value))


def test_an_interlaced_png_is_sized_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.BytesIO()
    png.Writer(20, 12, greyscale=False, interlace=True).write(out, RGB.reshape(12, 60).tolist())
    data = out.getvalue()
    assert np.array_equal((read_image(data).pixels * 255).round().astype(np.uint8), RGB)
    monkeypatch.setattr(uploads_module, "read_image", None)
    assert upload_size(data, max_pixels=10_000) == Size(width=20, height=12)


@pytest.mark.parametrize(("orientation", "size"), [(1, (20, 12)), (3, (20, 12)), (6, (12, 20)), (8, (12, 20))])
def test_a_turned_tiff_is_sized_as_the_decoder_turns_it(orientation: int, size: tuple[int, int]) -> None:
    """Pillow turns a TIFF when it opens it: its size is the turned one, which must not be swapped a second time."""
    out = io.BytesIO()
    Image.fromarray(RGB).save(out, "TIFF", tiffinfo={0x0112: orientation})
    data = out.getvalue()
    picture = read_image(data)
    assert (picture.width, picture.height) == size
    assert upload_size(data, max_pixels=10_000) == Size(width=size[0], height=size[1])

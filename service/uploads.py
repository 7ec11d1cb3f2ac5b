"""An upload's size and validity, found without turning it into pixels: the route needs only these; the worker decodes.

The route opens the upload with Pillow, takes the size from the header (turned by the EXIF orientation, as the decoder
turns the pixels) and checks that the file is whole: a PNG by walking its chunks' checksums to the end and inflating its
pixel data in small pieces that are counted and dropped (the rows must all be there, each with a valid filter byte), so
a flat 2000x2000 16-bit PNG costs the API a zlib pass and 64 KiB, never 128 MB of floats; other formats only by
decoding, which Pillow does once into its own buffer (no float conversion, no copy). Whatever this doubts goes to
`read_image`, the workers' own decoder, so the route refuses exactly what a worker would refuse, in the decoder's words,
and a good upload is never converted to pixels here.
"""

import io
import struct
import warnings
import zlib
from collections.abc import Iterator

from fastapi import HTTPException
from PIL import Image

from esrgan.models.images import READ_FORMATS, TRANSPOSED, ImageError, ImageTooLarge, pending_orientation, read_image
from esrgan.service.job import Size

PIECE = 64 * 1024  # bytes of a PNG's inflated pixel data held at once while it is counted
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def upload_size(data: bytes, max_pixels: int) -> Size:
    """Width and height of an upload the workers can read (after its EXIF orientation).

    Raises:
        HTTPException: 413 for more pixels than `max_pixels` (or a decompression bomb), 415 for an empty file, a
            file that is not an image we read, or a truncated or broken one.
    """
    if not data:
        raise HTTPException(415, "The uploaded file is empty; send an image (PNG, JPEG or WebP).")
    size = _checked_header(data, max_pixels)
    if size is not None:
        return size
    try:
        picture = read_image(data, max_pixels=max_pixels)
    except ImageTooLarge as exc:
        raise HTTPException(413, f"The image is too large for this server: {exc}") from exc
    except ImageError as exc:
        raise HTTPException(415, f"The upload cannot be used: {exc}") from exc
    return Size(width=picture.width, height=picture.height)


def _checked_header(data: bytes, max_pixels: int) -> Size | None:
    """The size of a whole image in a format we read, within the pixel limit; None when in any doubt."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies just below
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if im.format not in READ_FORMATS or not 0 < width * height <= max_pixels:
                    return None
                if im.format == "PNG":
                    # A PNG's getexif() would decode the whole image to look for metadata after the pixel data; the
                    # orientation of a PNG is read from the chunks before it (where writers put it).
                    orientation = pending_orientation(im) if "exif" in im.info else 1
                    im.verify()  # every chunk's CRC up to IEND: a truncated PNG fails here, nothing is decompressed
                    if not _png_rows_whole(data):
                        return None
                else:
                    im.load()  # JPEG, WebP, BMP and TIFF have no such walk: only decoding finds a truncated file
                    orientation = pending_orientation(im)  # after loading: Pillow turns a TIFF itself
                    width, height = im.size
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError):
        return None
    if orientation in TRANSPOSED:
        width, height = height, width
    return Size(width=width, height=height)


def _png_rows_whole(data: bytes) -> bool:
    """True when a PNG's pixel data inflates to every row it declares, each starting with a valid filter byte.

    The CRCs that `verify()` checks do not cover a deflate stream that was broken before it was checksummed, or rows
    missing from it: the decoder would fail on those in the worker. The stream is inflated `PIECE` bytes at a time and
    each piece dropped once its rows' filter bytes are read, so memory stays bounded whatever the image's size.
    """
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if colour not in CHANNELS:
        return False
    bits = CHANNELS[colour] * depth
    rows = []  # (rows, bytes per row with its filter byte) of each pass that has pixels
    for x0, y0, dx, dy in ADAM7 if interlace else [(0, 0, 1, 1)]:
        cols, count = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if cols > 0 and count > 0:
            rows.append((count, 1 + (cols * bits + 7) // 8))
    starts = _row_starts(rows)
    expected = sum(count * stride for count, stride in rows)
    inflate = zlib.decompressobj()
    seen = 0
    next_row = next(starts, None)
    for body in _idat_bodies(data):
        pending = body
        while pending and seen < expected:
            try:
                piece = inflate.decompress(pending, min(PIECE, expected - seen))
            except zlib.error:
                return False
            pending = inflate.unconsumed_tail
            while next_row is not None and next_row < seen + len(piece):
                if piece[next_row - seen] > 4:  # filter types are 0-4
                    return False
                next_row = next(starts, None)
            seen += len(piece)
            if not piece:
                break
    return seen == expected


def _row_starts(rows: list[tuple[int, int]]) -> Iterator[int]:
    """Offsets of each row's filter byte in the inflated stream, pass after pass."""
    offset = 0
    for count, stride in rows:
        for _ in range(count):
            yield offset
            offset += stride


def _idat_bodies(data: bytes) -> Iterator[bytes]:
    """The IDAT chunks' bodies in file order (the chunk walk itself was checked by `verify()`)."""
    offset = 8
    while offset + 8 <= len(data):
        length, tag = struct.unpack(">I4s", data[offset : offset + 8])
        if tag == b"IDAT":
            yield data[offset + 8 : offset + 8 + length]
        elif tag == b"IEND":
            return
        offset += 12 + length

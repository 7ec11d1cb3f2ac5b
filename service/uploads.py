"""An upload's size and validity, found without turning it into pixels: the route needs only these; the worker decodes.

The route opens the upload with Pillow, takes the size from the header (turned by the EXIF orientation, as the decoder
turns the pixels) and checks that the file is whole: a PNG by walking its chunks' checksums to the end, without
decompressing; other formats only by decoding, which Pillow does once into its own buffer (no float conversion, no
copy). Whatever this doubts goes to `read_image`, the workers' own decoder, so the route refuses exactly what a worker
would refuse, in the decoder's words, and a good upload is never converted to pixels here.
"""

import io
import struct
import warnings

from fastapi import HTTPException
from PIL import Image

from esrgan.models.images import READ_FORMATS, ImageError, ImageTooLarge, read_image
from esrgan.service.job import Size

ORIENTATION = 0x0112  # the EXIF tag
TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


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
                # A PNG's getexif() would decode the whole image to look for metadata after the pixel data; the
                # orientation of a PNG is read from the chunks before it (where writers put it).
                png_without_exif = im.format == "PNG" and "exif" not in im.info
                orientation = 1 if png_without_exif else im.getexif().get(ORIENTATION, 1)
                if im.format == "PNG":
                    im.verify()  # every chunk's CRC up to IEND: a truncated PNG fails here, nothing is decompressed
                else:
                    im.load()  # JPEG, WebP, BMP and TIFF have no such walk: only decoding finds a truncated file
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError):
        return None
    if orientation in TRANSPOSED:
        width, height = height, width
    return Size(width=width, height=height)

"""Pixels in and out: decode any common image into float [0, 1] channels, and encode the result faithfully.

Kept from the input: EXIF orientation (applied to the pixels exactly once), the ICC profile (carried to the output),
grey vs colour, transparency, and 16-bit depth (through to a 16-bit PNG). Pillow decodes everything except 16-bit colour
PNGs, which it truncates to 8 bit: those go through pypng, and 16-bit PNGs are written here with numpy and zlib.
Every failure on input is an `ImageError` whose message can be shown to a person as it is.
"""

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
from PIL import Image, UnidentifiedImageError

FORMATS = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}
READ_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "TIFF"}  # MPO: the JPEG variant many cameras write
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channel count -> mode; alpha is always the last channel
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}  # what a folder of images holds

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# zlib level of the PNGs we write: 1, as OpenCV writes by default (so Real-ESRGAN's and chaiNNer's files). Measured on
# the embedded pair's outputs (AMD EPYC family 25 model 1, 2026-12-03): 512x512 29 ms against Pillow's default 6's
# 123 ms, 1024x1024 116 against 395 ms, files 12% larger; a preview spends that time on every slider move.
PNG_LEVEL = 1
ORIENTATION = 0x0112  # the EXIF tag
TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
# The largest side each encoder can write (libwebp's 16383, JPEG's 16-bit header fields); PNG has no practical limit.
MAX_SIDE = {"webp": 16383, "jpeg": 65535}
# EXIF orientation -> numpy equivalent of what PIL.ImageOps.exif_transpose does (rot90 is counter-clockwise).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a.swapaxes(0, 1), 2),
    8: lambda a: np.rot90(a, 1),
}


class ImageError(ValueError):
    """Input that cannot be turned into pixels (or pixels that cannot be written); the message is for people."""


class ImageTooLarge(ImageError):
    """A readable image with more pixels than allowed (or a decompression bomb): the service answers 413 for it."""


def encoder_limit(fmt: str, width: int, height: int) -> str | None:
    """Why `fmt` cannot hold a `width` x `height` image (a sentence that suggests PNG), or None when it can."""
    limit = MAX_SIDE.get(fmt)
    if limit is None or max(width, height) <= limit:
        return None
    name = "JPEG" if fmt == "jpeg" else "WebP"
    return (
        f"a {width}x{height} result is too large for {name}, whose images are at most {limit:,} pixels on a side; "
        "ask for format=png"
    )


def pending_orientation(im: Image.Image) -> int:
    """The EXIF orientation still to apply to `im`'s pixels, read after `im.load()`.

    Some decoders turn the pixels themselves and then drop the tag (Pillow's TIFF plugin, whose `size` is already
    turned when the file opens); the others (JPEG, PNG's eXIf, WebP) leave both to us. Reading the tag after loading
    gives each orientation exactly one application, whatever the format.
    """
    orientation = im.getexif().get(ORIENTATION, 1)
    return orientation if orientation in _ORIENT else 1


@dataclass
class Picture:
    """A decoded image.

    `pixels` is H x W x C with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA), alpha last and colour straight (not
    premultiplied). Decoded input is float32 in [0, 1]; the engine's output is already in its final integer dtype
    (uint8 for 8 bits, uint16 for 16) so that a large result never exists in float.
    """

    pixels: np.ndarray
    bits: int = 8  # per channel: 8 or 16
    icc: bytes | None = None  # ICC profile of the colour values, carried to the output

    @property
    def mode(self) -> str:
        return MODES[self.pixels.shape[2]]

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] in (2, 4)

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    def as_float(self) -> np.ndarray:
        """The pixels as float32 in [0, 1], whatever their storage."""
        if self.pixels.dtype == np.float32:
            return self.pixels
        return self.pixels.astype(np.float32) / np.iinfo(self.pixels.dtype).max

    def as_int(self) -> np.ndarray:
        """The pixels in the integer dtype of `bits`, clamped and rounded (never wrapped)."""
        dtype = np.uint16 if self.bits == 16 else np.uint8
        if self.pixels.dtype == dtype:
            return self.pixels
        top = np.iinfo(dtype).max
        return (np.clip(np.nan_to_num(self.as_float()), 0, 1) * top + 0.5).astype(dtype)


def _png16_header(data: bytes) -> bool:
    """True for a 16-bit PNG with colour or alpha, which Pillow would truncate to 8 bits."""
    return data[:8] == _PNG_SIGNATURE and len(data) >= 26 and data[24] == 16 and data[25] in (2, 4, 6)


def _decode_png16(data: bytes) -> np.ndarray:
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    planes = info["planes"]
    return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)


def _pil_to_array(im: Image.Image) -> tuple[np.ndarray, int]:
    """Pillow image in any mode -> (H x W x C array, bits); palette and odd modes become L/LA/RGB/RGBA."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I"):
        return np.clip(np.asarray(im, dtype=np.int64), 0, 65535).astype(np.uint16)[..., None], 16
    if im.mode == "F":
        return (np.clip(np.asarray(im, dtype=np.float32), 0, 1) * 65535 + 0.5).astype(np.uint16)[..., None], 16
    transparent = "transparency" in im.info
    if im.mode == "1" or (im.mode == "L" and not transparent):
        im = im.convert("L")
    elif im.mode in ("LA", "La") or im.mode == "L":
        im = im.convert("LA")
    elif im.mode in ("RGBA", "RGBa", "PA") or (im.mode in ("P", "RGB") and transparent):
        im = im.convert("RGBA")
    else:
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.uint8)
    return (arr[..., None] if arr.ndim == 2 else arr), 8


def read_image(source: Path | str | bytes, max_pixels: int = 64_000_000) -> Picture:
    """Decode an image file (PNG, JPEG, WebP, BMP or TIFF) with its orientation applied.

    Raises:
        ImageError: not an image, an unsupported format, a truncated or broken file, zero size, or more than
            `max_pixels` pixels (`ImageTooLarge`, checked from the header, before anything is decompressed).
    """
    if isinstance(source, bytes):
        data, name = source, "image"
    else:
        name = Path(source).name
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImageError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies just below
            im = Image.open(io.BytesIO(data))
            if im.format not in READ_FORMATS:
                raise ImageError(f"{name}: {im.format} images are not supported (use PNG, JPEG, WebP, BMP or TIFF)")
            w, h = im.size
            if w == 0 or h == 0:
                raise ImageError(f"{name}: the image has zero size ({w}x{h})")
            if w * h > max_pixels:
                raise ImageTooLarge(f"{name}: {w}x{h} is {w * h:,} pixels, more than the limit of {max_pixels:,}")
            icc = im.info.get("icc_profile") or None
            if _png16_header(data):
                arr, bits = _decode_png16(data), 16  # Pillow neither loads these pixels nor turns them
            else:
                im.load()
                if im.mode in ("CMYK", "LAB", "HSV"):
                    icc = None  # that profile describes the source space, not the RGB we convert to
                arr, bits = _pil_to_array(im)
            orientation = pending_orientation(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image, or not a format we read (PNG, JPEG, WebP, BMP, TIFF)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, png.Error) as exc:
        raise ImageError(f"{name}: the image is broken or truncated ({exc})") from exc
    if orientation != 1:
        arr = _ORIENT[orientation](arr)
    top = 65535.0 if bits == 16 else 255.0
    return Picture(pixels=np.ascontiguousarray(arr, dtype=np.float32) / np.float32(top), bits=bits, icc=icc)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _encode_png16(arr: np.ndarray, icc: bytes | None) -> bytes:
    """A 16-bit PNG (L, LA, RGB or RGBA) with the Sub filter on every row; Pillow cannot write 16-bit colour."""
    h, w, c = arr.shape
    row = np.ascontiguousarray(arr, dtype=">u2").reshape(h, w * c).view(np.uint8)
    bpp = 2 * c
    filtered = np.empty((h, 1 + w * c * 2), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type Sub: each byte minus the same byte of the pixel to its left, mod 256
    filtered[:, 1 : 1 + bpp] = row[:, :bpp]
    filtered[:, 1 + bpp :] = row[:, bpp:] - row[:, :-bpp]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    out = _PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
    if icc:
        out += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    return out + _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), PNG_LEVEL)) + _png_chunk(b"IEND", b"")


def _flatten_on_white(arr: np.ndarray) -> np.ndarray:
    """Drop alpha for formats without it (JPEG) by compositing over white, so transparent areas do not go black."""
    colour, alpha = arr[..., :-1].astype(np.float32), arr[..., -1:].astype(np.float32) / 255
    return (colour * alpha + 255 * (1 - alpha) + 0.5).astype(np.uint8)


def write_image(picture: Picture, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode as PNG (16 bit when the picture is), WebP or JPEG (8 bit), with the ICC profile attached."""
    fmt = fmt.lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in FORMATS:
        raise ImageError(f"cannot write {fmt!r}: choose one of {', '.join(FORMATS)}")
    if reason := encoder_limit(fmt, picture.width, picture.height):
        raise ImageError(f"cannot encode the result: {reason}")
    arr = picture.as_int()
    if fmt == "png" and arr.dtype == np.uint16:
        return _encode_png16(arr, picture.icc)
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if fmt == "jpeg" and picture.has_alpha:
        arr = _flatten_on_white(arr)
    if fmt == "webp" and arr.shape[2] < 3:
        arr = arr[..., [0, 0, 0, 1] if arr.shape[2] == 2 else [0, 0, 0]]  # WebP has no grey mode
    im = Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 1 else arr))
    buf = io.BytesIO()
    options = {
        "png": {"compress_level": PNG_LEVEL},
        "webp": {"quality": quality, "method": 4},
        "jpeg": {"quality": quality, "subsampling": 0},
    }
    im.save(buf, format=fmt.upper(), icc_profile=picture.icc, **options[fmt])
    return buf.getvalue()


def list_images(folder: Path) -> list[Path]:
    """The image files directly in `folder` (not recursive), sorted: one rule for the CLI, training and evaluation."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of images")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

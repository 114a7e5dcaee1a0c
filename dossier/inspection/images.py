"""Photos and scans: decoded under a pixel limit and re-encoded without any metadata.

Re-encoding is the real defence for images: what is stored is pixels we produced, so nothing
hidden in the original (EXIF with GPS position, XMP, comments, PNG text chunks, data after the
end, malformed chunks aimed at a viewer) reaches the clerk's screen.

The structure of JPEG and PNG files is walked here without decoding: to learn an image's size
before any pixel is decoded, and to find where the image really ends (an EXIF thumbnail holds
its own JPEG start and end markers, so searching for the last end marker would be wrong).
"""

from __future__ import annotations

import io
import logging
import re
import struct
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageCms, ImageOps

from dossier.inspection.errors import ImageTooLarge, ImageUnreadable, InspectionError

__all__ = ["DEFAULT_MAX_PIXELS", "JPEG_QUALITY", "image_end", "sanitize_image"]

log = logging.getLogger(__name__)

#: A 50-megapixel photo (8160 x 6120) still passes; decoding it as RGB takes some 150 MB.
DEFAULT_MAX_PIXELS = 50_000_000
JPEG_QUALITY = 90

_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
# Pillow reads multi-picture JPEGs (several phone cameras write them) as "MPO".
_DECODED_AS = {"image/jpeg": {"JPEG", "MPO"}, "image/png": {"PNG"}}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (they carry the size); C4, C8 and CC share the range but are not frames.
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0-7 carry no length
_JPEG_FILL = re.compile(rb"\xff+")
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Real images have at most a few thousand segments or chunks (a 20 MiB PNG in 8 KiB IDAT
# chunks has 2,560); walking millions of empty ones, here or in Pillow, only costs time.
_MAX_PARTS = 100_000
_MAX_FILL = 256  # encoders write one or two fill bytes before a marker, Pillow skips them slowly


@dataclass(frozen=True, slots=True)
class _Layout:
    """What walking the file's structure showed, before any pixel is decoded."""

    pixels: int | None  # width x height; for JPEG the largest frame declared anywhere
    end: int | None  # offset just past the end marker or chunk; None if it has none
    excessive: bool = False  # more segments or chunks than any real image has


def _jpeg_layout(data: bytes) -> _Layout:
    pixels: int | None = None
    pos, size = 2, len(data)
    for _ in range(_MAX_PARTS):
        fill = _JPEG_FILL.match(data, pos)  # a marker, after any number of fill bytes
        if fill is None:
            return _Layout(pixels, None)  # no marker where one must be: damaged
        if fill.end() - pos > _MAX_FILL:
            return _Layout(pixels, None, excessive=True)
        pos = fill.end()
        if pos >= size:
            return _Layout(pixels, None)
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return _Layout(pixels, pos)
        if marker in _JPEG_STANDALONE:
            continue
        if pos + 2 > size:
            return _Layout(pixels, None)
        length = struct.unpack_from(">H", data, pos)[0]
        if marker in _JPEG_FRAMES and pos + 7 <= size:
            height, width = struct.unpack_from(">HH", data, pos + 3)
            pixels = max(pixels or 0, width * height)
        pos += length
        if marker == 0xDA:
            # Entropy-coded data follows the scan header; in it 0xFF is followed by a stuffed
            # zero or a restart marker, anything else is the next real marker.
            following = _JPEG_NEXT_MARKER.search(data, pos)
            if following is None:
                return _Layout(pixels, None)
            pos = following.start()
    return _Layout(pixels, None, excessive=True)


def _png_layout(data: bytes) -> _Layout:
    pixels: int | None = None
    pos = len(_PNG_SIGNATURE)
    for _ in range(_MAX_PARTS):
        if pos + 12 > len(data):
            return _Layout(pixels, None)
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IHDR" and pixels is None and length >= 8 and pos + 16 <= len(data):
            width, height = struct.unpack_from(">II", data, pos + 8)
            pixels = width * height
        pos += 12 + length
        if kind == b"IEND":
            return _Layout(pixels, pos if pos <= len(data) else None)
    return _Layout(pixels, None, excessive=True)


def _layout(data: bytes, media_type: str) -> _Layout:
    if media_type == "image/jpeg" and data.startswith(b"\xff\xd8"):
        return _jpeg_layout(data)
    if media_type == "image/png" and data.startswith(_PNG_SIGNATURE):
        return _png_layout(data)
    return _Layout(None, None)


def image_end(data: bytes, media_type: str) -> int | None:
    """Offset just past the JPEG end marker or PNG IEND chunk; None if not found.

    Never raises; whatever follows the offset is not part of the image.
    """
    return _layout(data, media_type).end


def _pixel_limit(max_pixels: int) -> int:
    # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that. Staying under its
    # threshold means it never warns for an image we accept, without touching that global.
    if Image.MAX_IMAGE_PIXELS is None:
        return max_pixels
    return min(max_pixels, Image.MAX_IMAGE_PIXELS)


def _refuse_if_too_large(pixels: int, limit: int) -> None:
    if pixels > limit:
        raise ImageTooLarge(f"the image has {pixels:,} pixels; at most {limit:,} are accepted")


def sanitize_image(data: bytes, media_type: str, *, max_pixels: int) -> bytes:
    """The image re-encoded in the same format, upright, in sRGB and without any metadata.

    JPEG is re-encoded at quality JPEG_QUALITY; PNG losslessly, keeping its alpha channel or
    transparent colour. The size is read from the file's structure and checked against
    `max_pixels` before any pixel is decoded. Synchronous and CPU-bound: run it in a thread.

    Raises ImageTooLarge above `max_pixels` (or above Pillow's own bomb limit, if lower),
    ImageUnreadable for truncated or corrupt data, ValueError for a type other than JPEG or PNG.
    """
    if media_type not in _FORMATS:
        raise ValueError(f"not an image type: {media_type}")
    limit = _pixel_limit(max_pixels)
    layout = _layout(data, media_type)
    if layout.excessive:
        raise ImageUnreadable("the image is built in an unusual way (too many parts to read)")
    if layout.pixels is None:
        raise ImageUnreadable("the image cannot be read: its size is missing or damaged")
    _refuse_if_too_large(layout.pixels, limit)
    try:
        with Image.open(io.BytesIO(data), formats=[_FORMATS[media_type]]) as original:
            if original.format not in _DECODED_AS[media_type]:
                raise ImageUnreadable(f"the image cannot be read as {_FORMATS[media_type]}")
            # Pillow's own reading of the size is the one that decides the memory used.
            _refuse_if_too_large(original.width * original.height, limit)
            original.load()
            profile = original.info.get("icc_profile")
            upright = _upright(original)
        transparency = upright.info.get("transparency")
        if transparency is not None or not isinstance(profile, bytes):
            # A transparent colour names exact pixel values, which a conversion would change.
            profile = None
        clean = _in_srgb(upright, profile)
        # Whatever `info` still holds (comment, ICC, DPI, text chunks) would be written back.
        clean.info = {}
        options: dict[str, Any] = {}
        if media_type == "image/jpeg":
            options["quality"] = JPEG_QUALITY
        elif transparency is not None:
            options["transparency"] = transparency
        out = io.BytesIO()
        clean.save(out, format=_FORMATS[media_type], **options)
    except InspectionError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Reached only if Pillow reads a larger size than the structure walk (a warning is an
        # exception here only where warnings are turned into errors, as in the tests).
        raise ImageTooLarge("the image has more pixels than are accepted") from exc
    except Exception as exc:
        # Decoders raise many kinds of errors on hostile input (OSError for truncation,
        # SyntaxError for broken chunks, ValueError, struct.error, ...); all mean the same.
        log.info("image refused as unreadable: %s", type(exc).__name__)
        raise ImageUnreadable(
            "the image cannot be read; the file may be damaged or incomplete"
        ) from exc
    return out.getvalue()


def _upright(image: Image.Image) -> Image.Image:
    """A copy turned the way the camera's orientation tag says, so the photo stays upright."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:
        # A damaged EXIF block must not cost the resident the photo: without it the
        # orientation is unknown, and the pixels are kept as they are.
        log.info("EXIF orientation ignored: %s", type(exc).__name__)
        return image.copy()


def _in_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """Pixels converted to sRGB, so that no colour profile needs to be stored.

    A colour profile is usually generic (sRGB, Display P3), but one made by calibration
    software can name a device or its owner and carries a creation date. Converting to sRGB,
    which viewers assume for an image without a profile, keeps the colours and drops the
    profile. Grey and palette images lose their profile unconverted (at most a small tonal
    shift); CMYK becomes RGB, which every viewer shows.
    """
    if profile and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            target = ImageCms.createProfile("sRGB")
            mode = "RGBA" if image.mode == "RGBA" else "RGB"
            converted = ImageCms.profileToProfile(image, source, target, outputMode=mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            log.info("colour profile ignored: %s", type(exc).__name__)
    return image.convert("RGB") if image.mode == "CMYK" else image

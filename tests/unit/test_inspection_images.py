"""Images are re-encoded upright, without metadata, under a pixel limit checked before any
pixel is decoded. All images are generated here."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from dossier.inspection import (
    JPEG,
    PNG,
    ImageTooLarge,
    ImageUnreadable,
    UnsafeDocument,
    inspect,
    sanitize_image,
)
from dossier.inspection.images import image_end

LIMIT = 50_000_000


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def reopen(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(image: Image.Image, xy: tuple[int, int], colour: tuple[int, ...], slack: int) -> bool:
    """Whether the pixel at `xy`, in the image's own mode, is within `slack` of `colour`."""
    pixel = image.getpixel(xy)
    assert isinstance(pixel, tuple)
    return all(abs(got - want) <= slack for got, want in zip(pixel, colour, strict=True))


def jpeg_segments(data: bytes) -> list[bytes]:
    """The markers of the JPEG's header segments, up to the start of the scan."""
    markers, pos = [], 2
    while data[pos + 1] != 0xDA:
        markers.append(data[pos : pos + 2])
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        kinds.append(kind)
        pos += 12 + length
    return kinds


def photo_with_gps() -> bytes:
    """A 40x20 photo, left half red and right half blue, taken with the phone on its side."""
    image = Image.new("RGB", (40, 20), "red")
    image.paste("blue", (20, 0, 40, 20))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Fairphone"
    exif[ExifTags.Base.Orientation] = 6  # rotate 90 degrees clockwise to display
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 43.2)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 52.8)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>Jan Jansen</dc:creator></x:xmpmeta>'
    return encode(image, "JPEG", exif=exif, xmp=xmp, comment=b"Jan Jansen, Kerkstraat 1")


def test_gps_and_all_other_metadata_leave_a_jpeg() -> None:
    original = photo_with_gps()
    before = reopen(original)
    assert before.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == (
        52.0,
        22.0,
        43.2,
    )
    assert b"Exif\x00\x00" in original
    assert b"Jan Jansen" in original

    stored = inspect(original, JPEG)

    after = reopen(stored)
    assert after.format == "JPEG"
    assert not after.getexif()
    assert not after.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" not in stored
    assert b"Jan Jansen" not in stored
    assert b"http://ns.adobe.com/xap" not in stored
    assert set(jpeg_segments(stored)) <= {b"\xff\xe0", b"\xff\xdb", b"\xff\xc0", b"\xff\xc4"}
    assert "comment" not in after.info
    assert "icc_profile" not in after.info


def test_photo_stays_upright() -> None:
    stored = sanitize_image(photo_with_gps(), JPEG, max_pixels=LIMIT)
    after = reopen(stored).convert("RGB")
    assert after.size == (20, 40)
    # Turned clockwise: what was on the left is now on top.
    assert near(after, (10, 5), (255, 0, 0), 50)
    assert near(after, (10, 35), (0, 0, 255), 50)


def test_png_text_chunks_leave_and_alpha_stays() -> None:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Jan Jansen")
    text.add_itxt("Comment", "BSN 123456782", zip=True)
    image = Image.new("RGBA", (16, 16), (10, 20, 30, 0))
    image.putpixel((3, 3), (200, 100, 50, 128))
    original = encode(image, "PNG", pnginfo=text, dpi=(300, 300))
    assert {b"tEXt", b"iTXt", b"pHYs"} <= set(png_chunks(original))

    stored = inspect(original, PNG)

    assert png_chunks(stored) == [b"IHDR", b"IDAT", b"IEND"]
    assert b"Jan Jansen" not in stored
    after = reopen(stored)
    assert after.mode == "RGBA"
    assert after.getpixel((3, 3)) == (200, 100, 50, 128)
    assert after.getpixel((0, 0)) == (10, 20, 30, 0)


def test_palette_png_keeps_its_transparent_colour() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    image.putpixel((0, 0), 2)
    original = encode(image, "PNG", transparency=1)

    after = reopen(sanitize_image(original, PNG, max_pixels=LIMIT))

    assert after.mode == "P"
    assert after.info["transparency"] == 1
    assert after.convert("RGBA").getpixel((0, 0)) == (0, 255, 0, 255)
    assert near(after.convert("RGBA"), (5, 5), (255, 0, 0, 0), 0)


def test_colour_profile_is_applied_and_dropped() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = encode(Image.new("RGB", (8, 8), (30, 140, 200)), "PNG", icc_profile=profile)
    assert b"iCCP" in png_chunks(original)

    stored = sanitize_image(original, PNG, max_pixels=LIMIT)

    assert b"iCCP" not in png_chunks(stored)
    assert near(reopen(stored), (4, 4), (30, 140, 200), 2)


def test_cmyk_jpeg_becomes_rgb_with_its_colours() -> None:
    original = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG")
    after = reopen(sanitize_image(original, JPEG, max_pixels=LIMIT))
    assert after.mode == "RGB"
    assert near(after, (8, 8), (255, 0, 0), 50)


def png_bomb(width: int, height: int) -> bytes:
    """A real black 1-bit PNG of the given size, compressed row by row (never whole in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    compressor, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = png_bomb(30_000, 30_000)
    assert len(bomb) < 200_000  # 900 million pixels in a small file
    started = time.monotonic()
    with pytest.raises(ImageTooLarge) as caught:
        inspect(bomb, PNG, max_pixels=LIMIT)
    assert time.monotonic() - started < 2
    assert caught.value.code == "image_too_large"
    assert caught.value.status == 422
    assert isinstance(caught.value, UnsafeDocument)
    assert "900,000,000 pixels" in str(caught.value)


def test_pixel_limit_is_exact() -> None:
    image = encode(Image.new("L", (100, 50)), "PNG")
    sanitize_image(image, PNG, max_pixels=5000)
    with pytest.raises(ImageTooLarge, match="at most 4,999"):
        sanitize_image(image, PNG, max_pixels=4999)


def test_a_limit_above_pillows_own_is_capped_without_a_warning() -> None:
    # Pillow would warn above its MAX_IMAGE_PIXELS; warnings are errors in this suite.
    bomb = png_bomb(10_000, 10_000)
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000
    with pytest.raises(ImageTooLarge):
        sanitize_image(bomb, PNG, max_pixels=10**12)


def test_jpeg_claiming_a_huge_size_is_refused_from_its_header() -> None:
    data = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", 60_000, 60_000)
    with pytest.raises(ImageTooLarge, match="3,600,000,000 pixels"):
        sanitize_image(bytes(data), JPEG, max_pixels=LIMIT)


def noise(size: int) -> Image.Image:
    return Image.frombytes(
        "RGB", (size, size), bytes((i * 7919) % 256 for i in range(size**3 * 3 // size))
    )


def test_truncated_jpeg_is_refused() -> None:
    whole = encode(noise(128), "JPEG")
    with pytest.raises(ImageUnreadable) as caught:
        sanitize_image(whole[: len(whole) // 2], JPEG, max_pixels=LIMIT)
    assert caught.value.code == "image_unreadable"
    assert "damaged or incomplete" in str(caught.value)


def test_corrupt_png_is_refused() -> None:
    data = bytearray(encode(noise(64), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 40 : idat + 60] = bytes(20)  # breaks the compressed data and its checksum
    with pytest.raises(ImageUnreadable):
        sanitize_image(bytes(data), PNG, max_pixels=LIMIT)


def test_image_of_a_million_empty_chunks_is_refused_quickly() -> None:
    empty = struct.pack(">I", 0) + b"abCd" + struct.pack(">I", zlib.crc32(b"abCd"))
    valid = encode(Image.new("RGB", (8, 8)), "PNG")
    data = valid[:33] + empty * 1_000_000 + valid[33:]
    started = time.monotonic()
    with pytest.raises(ImageUnreadable, match="too many parts"):
        sanitize_image(data, PNG, max_pixels=LIMIT)
    assert time.monotonic() - started < 2
    sanitize_image(valid[:33] + empty * 1000 + valid[33:], PNG, max_pixels=LIMIT)


def test_header_without_a_size_is_refused() -> None:
    with pytest.raises(ImageUnreadable, match="size is missing"):
        sanitize_image(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9", JPEG, max_pixels=LIMIT)


@pytest.mark.parametrize(
    "options",
    [{}, {"progressive": True}, {"restart_marker_blocks": 4}, {"subsampling": 0, "quality": 100}],
)
def test_the_end_of_every_kind_of_jpeg_is_found(options: dict[str, object]) -> None:
    # Whatever follows this offset is treated as hidden after the image (see check_polyglot).
    data = encode(noise(64), "JPEG", **options)
    assert image_end(data, JPEG) == len(data)
    assert image_end(data + b"PK\x03\x04 and more", JPEG) == len(data)
    assert image_end(data[:-2], JPEG) is None


def test_only_images_are_sanitized() -> None:
    with pytest.raises(ValueError, match="not an image type"):
        sanitize_image(b"%PDF-1.4", "application/pdf", max_pixels=LIMIT)

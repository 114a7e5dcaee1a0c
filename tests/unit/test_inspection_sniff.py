"""Sniffing and the allowlist: content decides, the declared type and the name must agree,
and files that are two formats at once are refused. All files are generated here."""

from __future__ import annotations

import io
import random
import struct
import zipfile

import pytest
from PIL import Image

from dossier.inspection import (
    JPEG,
    KNOWN_TYPES,
    PDF,
    PNG,
    SNIFF_BYTES,
    UnsupportedType,
    check_declared,
    check_polyglot,
    inspect,
    sniff,
)
from dossier.inspection.images import image_end

MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
# A Windows program as far as anyone looking at it can tell: DOS header pointing at "PE\0\0".
WINDOWS_PROGRAM = b"MZ" + b"\x90" * 0x3A + struct.pack("<I", 0x40) + b"PE\x00\x00" + b"\x00" * 200


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "teal").save(out, fmt)
    return out.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def accept(found: str | None, *, declared: str | None = None, name: str = "upload") -> str:
    return check_declared(found, declared_type=declared, filename=name, allowed=KNOWN_TYPES)


# -- sniff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (MINIMAL_PDF, PDF),
        (image_bytes("JPEG"), JPEG),
        (image_bytes("PNG"), PNG),
        (image_bytes("GIF", mode="P"), "image/gif"),
        (image_bytes("WEBP"), "image/webp"),
        (image_bytes("TIFF"), "image/tiff"),
        (image_bytes("BMP"), "image/bmp"),
        (WINDOWS_PROGRAM, "application/vnd.microsoft.portable-executable"),
        (b"\x7fELF\x02\x01\x01" + bytes(100), "application/x-elf"),
        (b"#!/bin/sh\nrm -rf ~\n", "text/x-shellscript"),
        (zip_bytes({"a.txt": b"hello"}), "application/zip"),
        (
            zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            zip_bytes({"mimetype": b"application/vnd.oasis.opendocument.text", "c.xml": b""}),
            "application/vnd.oasis.opendocument.text",
        ),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "application/x-ole-storage"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video/mp4"),
        (b"\xef\xbb\xbf  <!DOCTYPE html><html><script>x()</script>", "text/html"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"),
        (b"Geachte heer, mevrouw,\n\nHierbij mijn aanvraag.\n", "text/plain"),
        ("één".encode() * 3000, "text/plain"),
        (bytes(range(256)) * 4, None),
        (b"", None),
    ],
)
def test_sniff_names_what_the_bytes_are(content: bytes, expected: str | None) -> None:
    assert sniff(content[:SNIFF_BYTES]) == expected


def test_sniff_tolerates_a_head_cut_in_the_middle_of_a_character() -> None:
    head = ("a" * 8191 + "é").encode()[:SNIFF_BYTES]
    assert head.endswith(b"\xc3")
    assert sniff(head) == "text/plain"


# -- check_declared --------------------------------------------------------------------------


def test_windows_program_named_pdf_is_refused_as_a_program() -> None:
    found = sniff(WINDOWS_PROGRAM)
    with pytest.raises(UnsupportedType) as caught:
        accept(found, declared="application/pdf", name="factuur.pdf")
    assert caught.value.code == "unsupported_type"
    assert caught.value.status == 415
    assert str(caught.value) == (
        "the file's content is not PDF, JPEG or PNG (it starts like a Windows program)"
    )


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (zip_bytes({"word/document.xml": b"<w/>"}), "a Word document"),
        (image_bytes("GIF", mode="P"), "a GIF image"),
        (b"<html><body>hi</body></html>", "a web page (HTML)"),
        (b"just some text\n", "plain text"),
        (bytes(range(256)), "its format is not recognised"),
    ],
)
def test_refusal_names_what_was_sent(content: bytes, phrase: str) -> None:
    with pytest.raises(UnsupportedType, match=r"not PDF, JPEG or PNG \(") as caught:
        accept(sniff(content))
    assert phrase in str(caught.value)


def test_type_off_the_allowlist_is_refused() -> None:
    with pytest.raises(UnsupportedType, match=r"not PDF \(it starts like a PNG image\)"):
        check_declared(PNG, declared_type=None, filename="scan.png", allowed={PDF})


def test_allowlist_may_hold_types_that_are_not_inspected() -> None:
    gif = sniff(image_bytes("GIF", mode="P"))
    allowed = {PDF, "image/gif"}
    assert check_declared(gif, declared_type="image/gif", filename="a.gif", allowed=allowed) == (
        "image/gif"
    )
    with pytest.raises(UnsupportedType, match=r"not PDF or image/gif \(it starts like a PNG"):
        check_declared(PNG, declared_type=None, filename="x.png", allowed=allowed)
    with pytest.raises(ValueError, match="no media type"):
        check_declared(PNG, declared_type=None, filename="x.png", allowed=set())


def test_png_declared_as_pdf_is_refused_naming_both() -> None:
    with pytest.raises(UnsupportedType) as caught:
        accept(sniff(image_bytes("PNG")), declared="application/pdf", name="scan")
    assert "sent as application/pdf" in str(caught.value)
    assert "a PNG image" in str(caught.value)


def test_png_named_pdf_is_refused_naming_both() -> None:
    with pytest.raises(UnsupportedType) as caught:
        accept(sniff(image_bytes("PNG")), declared="image/png", name="photo.pdf")
    assert str(caught.value) == "the file's name ends in .pdf, but its content is a PNG image"


@pytest.mark.parametrize("name", ["photo.exe", "photo.HTML", "photo.docx", "photo.png"])
def test_jpeg_with_a_foreign_extension_is_refused(name: str) -> None:
    with pytest.raises(UnsupportedType, match="name ends in"):
        accept(JPEG, name=name)


@pytest.mark.parametrize(
    ("found", "declared", "name"),
    [
        (JPEG, "image/jpeg", "IMG_0001.JPG"),
        (JPEG, "image/jpg", "foto.jpeg"),
        (JPEG, "image/pjpeg", "foto.jfif"),
        (JPEG, "application/octet-stream", "foto"),
        (JPEG, "", "C:\\fakepath\\vakantie.jpg"),
        (JPEG, None, "foto.jpg. "),
        (JPEG, "image/*", "foto.jpg"),
        (PNG, "image/png; charset=binary", "schermafbeelding.png"),
        (PDF, "Application/PDF", "Brief J.Smit"),
        (PDF, "application/pdf", "scan 12.03.2024"),
        (PDF, "application/x-pdf", "factuur bol.com"),
        (PDF, None, "verklaring.v2"),
    ],
)
def test_agreeing_or_silent_declarations_are_accepted(
    found: str, declared: str | None, name: str
) -> None:
    assert accept(found, declared=declared, name=name) == found


# -- polyglots -------------------------------------------------------------------------------


def test_jpeg_with_a_zip_appended_is_refused() -> None:
    data = image_bytes("JPEG") + zip_bytes({"payload.js": b"alert(1)"})
    assert zipfile.ZipFile(io.BytesIO(data)).read("payload.js") == b"alert(1)"
    assert accept(sniff(data[:SNIFF_BYTES]), name="foto.jpg") == JPEG  # looks fine at first
    with pytest.raises(UnsupportedType) as caught:
        inspect(data, JPEG)
    assert caught.value.status == 415
    assert str(caught.value).startswith("the file is a JPEG image but also contains a ZIP archive")


def test_pdf_header_after_jpeg_magic_is_refused() -> None:
    data = b"\xff\xd8\xff\xe0" + b"j" * 96 + MINIMAL_PDF
    assert data.index(b"%PDF-") == 100
    assert sniff(data) == JPEG
    with pytest.raises(UnsupportedType, match="a JPEG image but also contains a PDF"):
        inspect(data, JPEG)


@pytest.mark.parametrize(
    ("trailer", "phrase"),
    [
        (WINDOWS_PROGRAM, "a Windows program"),
        (b"\n<SCRIPT>fetch('//evil')</SCRIPT>", "a web page (HTML)"),
        (MINIMAL_PDF, "a PDF"),
        (b"\x00\x00Rar!\x1a\x07\x00" + bytes(50), "a RAR archive"),
    ],
)
def test_png_with_something_after_iend_is_refused(trailer: bytes, phrase: str) -> None:
    with pytest.raises(UnsupportedType, match="a PNG image but also contains") as caught:
        check_polyglot(image_bytes("PNG") + trailer, PNG)
    assert phrase in str(caught.value)


def test_pdf_with_a_zip_appended_is_refused() -> None:
    with pytest.raises(UnsupportedType, match="a PDF but also contains a ZIP archive"):
        check_polyglot(MINIMAL_PDF + zip_bytes({"a.exe": WINDOWS_PROGRAM}), PDF)


def test_a_zip_hidden_inside_an_image_segment_is_refused_by_its_directory() -> None:
    # ZIP readers find the archive from the end; a JPEG comment may hold it all.
    archive = zip_bytes({"a.txt": b"x"})
    jpeg = image_bytes("JPEG")
    data = jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(archive) + 2) + archive + jpeg[2:]
    assert zipfile.ZipFile(io.BytesIO(data)).read("a.txt") == b"x"
    with pytest.raises(UnsupportedType, match="ZIP archive"):
        check_polyglot(data, JPEG)


def jpeg_with_thumbnail_and_comment(comment: bytes) -> bytes:
    """A JPEG whose APP1 holds a whole thumbnail JPEG (its own FFD8..FFD9), then a comment."""
    main, thumbnail = image_bytes("JPEG", (64, 48)), image_bytes("JPEG", (8, 6))
    app1 = b"Exif\x00\x00" + thumbnail
    return (
        main[:2]
        + b"\xff\xe1"
        + struct.pack(">H", len(app1) + 2)
        + app1
        + b"\xff\xfe"
        + struct.pack(">H", len(comment) + 2)
        + comment
        + main[2:]
    )


def test_the_real_end_of_a_jpeg_is_found_past_its_thumbnail() -> None:
    data = jpeg_with_thumbnail_and_comment(b"see <html> for the manual")
    assert image_end(data, JPEG) == len(data)
    assert image_end(data + b"trailing", JPEG) == len(data)
    check_polyglot(data, JPEG)  # markup inside the image is not after its end


def test_harmless_data_after_a_photo_is_accepted_and_dropped() -> None:
    # Phones append second images (MPF) and videos; re-encoding drops them.
    video = b"\x00\x00\x00\x18ftypmp42" + random.Random(7).randbytes(3_000_000)
    for trailer in (image_bytes("JPEG", (8, 8)), video, b"\x00" * 4096):
        data = image_bytes("JPEG") + trailer
        stored = inspect(data, JPEG)
        assert image_end(stored, JPEG) == len(stored)
        assert trailer not in stored


def test_content_other_than_the_named_type_is_refused_by_inspect() -> None:
    with pytest.raises(UnsupportedType, match="content is a PNG image, not a PDF"):
        inspect(image_bytes("PNG"), PDF)
    with pytest.raises(ValueError, match="no inspection"):
        inspect(b"hello", "text/plain")

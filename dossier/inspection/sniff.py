"""What an upload is, judged by its bytes: the declared type and the file name are not trusted.

`sniff` names the format of the first bytes (and knows many formats it will never accept, so
that a refusal can say what the user actually sent). `check_declared` decides whether that
format may enter a dossier and whether the declared Content-Type and the name agree with it.
`check_polyglot` refuses files that are valid as an accepted format and, at the same time,
carry another format that some reader would honour (a JPEG that is also a ZIP, say).
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Collection, Iterable

from dossier.inspection.errors import UnsupportedType
from dossier.inspection.images import image_end

__all__ = [
    "JPEG",
    "KNOWN_TYPES",
    "PDF",
    "PNG",
    "SNIFF_BYTES",
    "check_declared",
    "check_polyglot",
    "describe",
    "sniff",
]

PDF, JPEG, PNG = "application/pdf", "image/jpeg", "image/png"
#: The media types this package can inspect; an allowlist is a subset of these.
KNOWN_TYPES = frozenset({PDF, JPEG, PNG})
#: How much of the upload `sniff` wants to see (less is fine when the file is shorter).
SNIFF_BYTES = 8192

_SHORT_NAMES = {PDF: "PDF", JPEG: "JPEG", PNG: "PNG"}
_EXE = "application/vnd.microsoft.portable-executable"
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_DESCRIPTIONS = {
    PDF: "a PDF",
    JPEG: "a JPEG image",
    PNG: "a PNG image",
    _EXE: "a Windows program",
    "application/x-elf": "a Linux program",
    "application/x-mach-binary": "a macOS program",
    "application/java-vm": "a program",
    "text/x-shellscript": "a script",
    "application/zip": "a ZIP archive",
    _DOCX: "a Word document",
    _XLSX: "an Excel workbook",
    _PPTX: "a PowerPoint presentation",
    "application/epub+zip": "an e-book",
    "application/x-ole-storage": "an older Microsoft Office document",
    "application/vnd.rar": "a RAR archive",
    "application/x-7z-compressed": "a 7-Zip archive",
    "application/gzip": "a compressed archive",
    "application/x-xz": "a compressed archive",
    "application/x-bzip2": "a compressed archive",
    "image/gif": "a GIF image",
    "image/webp": "a WebP image",
    "image/heic": "a HEIC photo (the iPhone format)",
    "image/avif": "an AVIF image",
    "image/tiff": "a TIFF image",
    "image/bmp": "a BMP image",
    "image/svg+xml": "an SVG image",
    "video/mp4": "a video",
    "video/quicktime": "a video",
    "audio/mpeg": "an audio file",
    "audio/ogg": "an audio file",
    "text/html": "a web page (HTML)",
    "application/xml": "an XML file",
    "application/rtf": "an RTF document",
    "application/postscript": "a PostScript file",
    "text/plain": "plain text",
}

# Prefixes at offset 0, most specific first.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", PDF),
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"MZ", _EXE),
    (b"\x7fELF", "application/x-elf"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", "application/java-vm"),  # also a universal macOS binary
    (b"#!", "text/x-shellscript"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"{\\rtf", "application/rtf"),
    (b"%!PS", "application/postscript"),
)
_MARKUP = (
    (b"<!doctype html", "text/html"),
    (b"<html", "text/html"),
    (b"<head", "text/html"),
    (b"<body", "text/html"),
    (b"<script", "text/html"),
    (b"<iframe", "text/html"),
    (b"<svg", "image/svg+xml"),
    (b"<?xml", "application/xml"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")

# Extensions a name may carry for each accepted type. A name is refused only when it ends in
# an extension that belongs to another format: a name without one is fine, and so is a dot
# that only looks like one ("Brief J.Smit", "scan 12.03.2024", "verklaring.v2").
_EXTENSIONS = {PDF: {"pdf"}, JPEG: {"jpg", "jpeg", "jfif", "jpe"}, PNG: {"png"}}
_OTHER_EXTENSION_NAMES = (
    "exe dll msi scr bat cmd ps1 vbs vbe wsf js mjs jar apk sh php lnk"
    " html htm xhtml mht svg xml zip rar 7z gz tgz xz bz2 tar iso dmg"
    " doc docx docm dotx xls xlsx xlsm ppt pptx pptm odt ods odp odg rtf txt csv eml"
    " gif webp heic heif avif tif tiff bmp ico psd dng cr2 nef arw"
    " mp4 mov m4v avi mkv webm mp3 m4a wav ogg flac eps"
)
# Words that are also extensions (com, app, md, msg) are left out: "Factuur bol.com".
_OTHER_EXTENSIONS = frozenset(_OTHER_EXTENSION_NAMES.split())
_FOREIGN_EXTENSIONS = {
    media_type: _OTHER_EXTENSIONS.union(*_EXTENSIONS.values()) - own
    for media_type, own in _EXTENSIONS.items()
}
# Types a client may declare without claiming anything about the content.
_GENERIC_DECLARATION_NAMES = (
    "application/octet-stream binary/octet-stream application/binary application/unknown"
    " application/x-download application/force-download"
)
_GENERIC_DECLARATIONS = frozenset(["", *_GENERIC_DECLARATION_NAMES.split()])
_DECLARED_ALIASES = {
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "image/x-png": PNG,
    "application/x-pdf": PDF,
    "application/acrobat": PDF,
}


def sniff(head: bytes) -> str | None:
    """The media type that the first bytes of a file show, or None when not recognised.

    `head` is the start of the file, ideally `SNIFF_BYTES` long. Recognises far more than
    `KNOWN_TYPES` (programs, archives, Office files, other images, HTML, text) so that a
    refusal can name what was sent. Never raises.
    """
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    if head.startswith(b"PK\x03\x04"):
        return _zip_flavour(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "image/heic"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00" and len(head) >= 26:
        return "image/bmp"
    return _sniff_text(head)


def _zip_flavour(head: bytes) -> str:
    names = list(_zip_entry_names(head))
    if names and names[0] == b"mimetype":
        # ODF and EPUB store their media type uncompressed as the first entry.
        name_length, extra_length = struct.unpack_from("<HH", head, 26)
        start = 30 + name_length + extra_length
        declared = head[start : start + 80].split(b"PK\x03\x04", 1)[0].decode("ascii", "replace")
        if declared.startswith(("application/vnd.oasis.opendocument.", "application/epub+zip")):
            return declared.strip()
    for prefix, media_type in ((b"word/", _DOCX), (b"xl/", _XLSX), (b"ppt/", _PPTX)):
        if any(name.startswith(prefix) for name in names):
            return media_type
    return "application/zip"


def _zip_entry_names(head: bytes) -> Iterable[bytes]:
    """Names of the local file headers that lie wholly within `head`."""
    pos = 0
    while head.startswith(b"PK\x03\x04", pos) and pos + 30 <= len(head):
        compressed, _, name_length, extra_length = struct.unpack_from("<IIHH", head, pos + 18)
        yield head[pos + 30 : pos + 30 + name_length]
        if compressed == 0:  # sizes follow the data (a data descriptor): cannot skip ahead
            return
        pos += 30 + name_length + extra_length + compressed


def _sniff_text(head: bytes) -> str | None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "text/plain"  # UTF-16 with a byte-order mark
    text = head.removeprefix(b"\xef\xbb\xbf")
    start = text[:512].lstrip().lower()
    for prefix, media_type in _MARKUP:
        if start.startswith(prefix):
            if media_type == "application/xml" and b"<svg" in text.lower():
                return "image/svg+xml"
            return media_type
    try:
        # Not final: `head` may end in the middle of a multi-byte character.
        decoded = codecs.getincrementaldecoder("utf-8")().decode(text, final=False)
    except UnicodeDecodeError:
        return None
    if decoded and not _TEXT_CONTROLS.search(decoded):
        return "text/plain"
    return None


def describe(media_type: str | None) -> str:
    """A phrase for users naming a sniffed format, such as "a Windows program"."""
    if media_type is None:
        return "a format that is not recognised"
    if media_type in _DESCRIPTIONS:
        return _DESCRIPTIONS[media_type]
    if media_type.startswith("application/vnd.oasis.opendocument."):
        return "an OpenDocument file"
    return f"a file of type {media_type}"


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_declared(
    found: str | None, *, declared_type: str | None, filename: str, allowed: Collection[str]
) -> str:
    """The media type to store for an upload whose content `sniff` found to be `found`.

    Raises UnsupportedType when the content is not on the `allowed` list (naming what it is),
    when `declared_type` names another type (a generic one such as application/octet-stream,
    or none, is fine), or when `filename` ends in an extension of another type (a name without
    an extension is fine; for allowed types outside KNOWN_TYPES the name is not judged).
    Raises ValueError for an empty `allowed`.
    """
    if not allowed:
        raise ValueError("no media type is allowed")
    if found is None or found not in allowed:
        known = [_SHORT_NAMES[t] for t in (PDF, JPEG, PNG) if t in allowed]
        accepted = _either(known + sorted(set(allowed) - KNOWN_TYPES))
        detail = f"it starts like {describe(found)}" if found else "its format is not recognised"
        raise UnsupportedType(f"the file's content is not {accepted} ({detail})")
    declared = (declared_type or "").split(";", 1)[0].strip().lower()
    declared = _DECLARED_ALIASES.get(declared, declared)
    # A wildcard ("image/*", sent by some phone apps) claims nothing either.
    if declared not in _GENERIC_DECLARATIONS and "*" not in declared and declared != found:
        raise UnsupportedType(
            f"the file was sent as {declared}, but its content is {describe(found)} ({found})"
        )
    # Browsers send the base name, old ones the whole path; Windows ignores trailing dots.
    name = re.split(r"[/\\]", filename)[-1].strip().rstrip(". ")
    stem, _, extension = name.rpartition(".")
    extension = extension.lower()
    if stem and found in _EXTENSIONS and extension in _FOREIGN_EXTENSIONS[found]:
        raise UnsupportedType(
            f"the file's name ends in .{extension}, but its content is {describe(found)}"
        )
    return found


# Another format that a reader finds after an image's end; each pattern is long or checked
# enough that ordinary image data (phone cameras append second images and videos) never
# matches by chance.
_MARKUP_IN_TRAILER = re.compile(
    rb"<(?:script|iframe|object|embed)[\s>/]|<html[\s>]|<!doctype\s+html|<svg\s[^>]{0,500}xmlns"
    rb"|<\?php\s",
    re.I,
)
_ZIP_METHODS = {0, 8, 9, 12, 14, 93, 95, 98, 99}
# Random data holds a 2-byte "MZ" once per 64 KiB, so even 20 MiB has a few hundred; a
# trailer with more candidates than this was built to make us search, and is refused.
_MAX_CANDIDATES = 10_000


def check_polyglot(data: bytes, media_type: str) -> None:
    """Refuse a file that is `media_type` and also another format some reader would honour.

    Catches a PDF header in the first 1024 bytes of an image (PDF readers skip what precedes
    it), a ZIP directory at the end of any file (ZIP readers read from the end), and programs,
    archives, PDFs or HTML hidden after an image's last chunk or marker. Raises UnsupportedType
    naming both formats.
    """
    others: list[str] = []
    if media_type != PDF and b"%PDF-" in data[:1024]:
        others.append(describe(PDF))
    if media_type in (JPEG, PNG):
        end = image_end(data, media_type)
        if end is not None:
            others.extend(_hidden_after_end(data[end:]))
    if _zip_directory_at_end(data):
        others.append(describe("application/zip"))
    if others:
        unique = " and ".join(dict.fromkeys(others))
        raise UnsupportedType(
            f"the file is {describe(media_type)} but also contains {unique}; "
            "a file that is two formats at once is not accepted"
        )


def _hidden_after_end(trailer: bytes) -> list[str]:
    found: list[str] = []
    if _has_zip_entry(trailer):
        found.append(describe("application/zip"))
    if b"%PDF-" in trailer:
        found.append(describe(PDF))
    if _has_windows_program(trailer):
        found.append(describe(_EXE))
    if b"\x7fELF\x01" in trailer or b"\x7fELF\x02" in trailer:
        found.append(describe("application/x-elf"))
    if _MARKUP_IN_TRAILER.search(trailer):
        found.append(describe("text/html"))
    start = sniff(trailer[:SNIFF_BYTES].lstrip(b"\x00"))
    if start is not None and not _is_inert(start):
        found.append(describe(start))
    return found


def _is_inert(media_type: str) -> bool:
    """Formats that may trail a photo (second images, motion-photo videos, maker notes)."""
    if media_type == "image/svg+xml":
        return False
    return media_type == "text/plain" or media_type.startswith(("image/", "video/", "audio/"))


def _offsets(data: bytes, signature: bytes) -> list[int] | None:
    """Where `signature` occurs in `data`, or None when it occurs suspiciously often."""
    offsets: list[int] = []
    pos = data.find(signature)
    while pos != -1:
        if len(offsets) == _MAX_CANDIDATES:
            return None
        offsets.append(pos)
        pos = data.find(signature, pos + 1)
    return offsets


def _has_zip_entry(data: bytes) -> bool:
    offsets = _offsets(data, b"PK\x03\x04")
    if offsets is None:
        return True
    for pos in offsets:
        if pos + 30 > len(data):
            break
        version, _, method = struct.unpack_from("<HHH", data, pos + 4)
        name_length = struct.unpack_from("<H", data, pos + 26)[0]
        name = data[pos + 30 : pos + 30 + name_length]
        if (
            version & 0xFF <= 63
            and method in _ZIP_METHODS
            and 0 < name_length == len(name)
            and all(byte >= 0x20 and byte != 0x7F for byte in name)
        ):
            return True
    return False


def _has_windows_program(data: bytes) -> bool:
    offsets = _offsets(data, b"MZ")
    if offsets is None:
        return True
    for pos in offsets:
        if pos + 0x40 > len(data):
            break
        pe_offset = struct.unpack_from("<I", data, pos + 0x3C)[0]
        if data.startswith(b"PE\x00\x00", pos + pe_offset):
            return True
    return False


def _zip_directory_at_end(data: bytes) -> bool:
    """True when ZIP readers, which search the last 64 KiB for an end record, find one."""
    floor = max(0, len(data) - (22 + 0xFFFF))
    pos = data.rfind(b"PK\x05\x06", floor)
    while pos != -1:
        if pos + 22 <= len(data):
            directory_size, directory_offset = struct.unpack_from("<II", data, pos + 12)
            if 0xFFFFFFFF in (directory_size, directory_offset):
                if pos >= 20 and data.startswith(b"PK\x06\x07", pos - 20):  # ZIP64 locator
                    return True
            elif directory_size <= pos and data.startswith(b"PK\x01\x02", pos - directory_size):
                return True
        pos = data.rfind(b"PK\x05\x06", floor, pos)
    return False

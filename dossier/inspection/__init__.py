"""Whether an uploaded document may enter a dossier, and the bytes to store if it may.

The HTTP layer uses it in three steps:

    found = sniff(first_bytes)                        # at most SNIFF_BYTES, before buffering
    media_type = check_declared(found, declared_type=..., filename=..., allowed=...)
    if media_type in INSPECTED_TYPES:                 # the whole file is now in memory
        content = inspect(data, media_type, max_pixels=DEFAULT_MAX_PIXELS)   # in a thread

and, when a virus scanner is configured, scans with `ClamdScanner` (see `clamd`).
Everything here except the scanner is synchronous; `inspect`, `sanitize_image` and
`check_pdf` are CPU-bound and belong in a thread executor. All refusals are InspectionError
subclasses carrying `code` and `status`.
"""

from __future__ import annotations

from dossier.inspection.clamd import ClamdScanner, StreamingScan
from dossier.inspection.errors import (
    ImageTooLarge,
    ImageUnreadable,
    InspectionError,
    PdfEncrypted,
    PdfUnreadable,
    ScanFailed,
    UnsafeDocument,
    UnsupportedType,
    VirusFound,
)
from dossier.inspection.images import DEFAULT_MAX_PIXELS, sanitize_image
from dossier.inspection.pdf import check_pdf
from dossier.inspection.sniff import (
    JPEG,
    KNOWN_TYPES,
    PDF,
    PNG,
    SNIFF_BYTES,
    check_declared,
    check_polyglot,
    describe,
    sniff,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "INSPECTED_TYPES",
    "JPEG",
    "KNOWN_TYPES",
    "PDF",
    "PNG",
    "SNIFF_BYTES",
    "ClamdScanner",
    "ImageTooLarge",
    "ImageUnreadable",
    "InspectionError",
    "PdfEncrypted",
    "PdfUnreadable",
    "ScanFailed",
    "StreamingScan",
    "UnsafeDocument",
    "UnsupportedType",
    "VirusFound",
    "check_declared",
    "check_pdf",
    "check_polyglot",
    "describe",
    "inspect",
    "sanitize_image",
    "sniff",
]

#: Types whose whole content `inspect` must see before they may be stored.
INSPECTED_TYPES = frozenset({PDF, JPEG, PNG})


def inspect(data: bytes, media_type: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The bytes to store for a whole upload that `check_declared` accepted as `media_type`.

    Images come back re-encoded without metadata (see `sanitize_image`), PDFs unchanged
    once `check_pdf` found nothing active in them. Raises UnsupportedType when the content is
    not `media_type` after all or is also another format (see `check_polyglot`), and the
    errors of `sanitize_image` and `check_pdf`. Raises ValueError for a type outside
    INSPECTED_TYPES. Synchronous and CPU-bound: run it in a thread executor.
    """
    if media_type not in INSPECTED_TYPES:
        raise ValueError(f"no inspection for {media_type}")
    found = sniff(data[:SNIFF_BYTES])
    if found != media_type:
        raise UnsupportedType(
            f"the file's content is {describe(found)}, not {describe(media_type)}"
        )
    check_polyglot(data, media_type)
    if media_type == PDF:
        check_pdf(data)
        return data
    return sanitize_image(data, media_type, max_pixels=max_pixels)

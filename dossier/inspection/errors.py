"""Errors of the inspection package: why an upload may not enter a dossier.

    InspectionError               base; `code` is stable, `status` is the HTTP status to answer
    ├── UnsupportedType      415  unsupported_type  not on the allowlist, or not what it claims
    │                                               to be, or two formats in one file
    ├── UnsafeDocument       422  unsafe_document   well-formed, but refused by policy
    │   ├── ImageTooLarge    422  image_too_large   more pixels than we are willing to decode
    │   ├── ImageUnreadable  422  image_unreadable  truncated or corrupt image data
    │   ├── PdfUnreadable    422  pdf_unreadable    the PDF cannot be parsed, so not vouched for
    │   └── PdfEncrypted     422  pdf_encrypted     a password is needed to read the PDF
    ├── VirusFound           422  virus_found       the virus scanner recognised a signature
    └── ScanFailed           503  scan_failed       no verdict: scanner down, slow, or confused

415 says "this kind of content is not accepted here": the format is the problem, and the
user fixes it by sending another kind of file. 422 says "we understood the content and refuse
it": a PDF with JavaScript is a perfectly valid PDF of an accepted type, so 415 would be a lie;
the user fixes it by sending a cleaner file (print to PDF, take the photo again). ScanFailed is
503 because the fault is ours and retrying later may succeed; it never lets a file through.

Messages are written for the person who uploaded the file; they name what was found (a format,
a PDF feature, a signature) but never contain the file's name or content.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ImageTooLarge",
    "ImageUnreadable",
    "InspectionError",
    "PdfEncrypted",
    "PdfUnreadable",
    "ScanFailed",
    "UnsafeDocument",
    "UnsupportedType",
    "VirusFound",
]


class InspectionError(Exception):
    """Base class of every error the inspection package raises on purpose."""

    code: ClassVar[str] = "inspection_error"
    status: ClassVar[int] = 422


class UnsupportedType(InspectionError):
    code = "unsupported_type"
    status = 415


class UnsafeDocument(InspectionError):
    code = "unsafe_document"
    status = 422


class ImageTooLarge(UnsafeDocument):
    code = "image_too_large"


class ImageUnreadable(UnsafeDocument):
    code = "image_unreadable"


class PdfUnreadable(UnsafeDocument):
    code = "pdf_unreadable"


class PdfEncrypted(UnsafeDocument):
    code = "pdf_encrypted"


class VirusFound(InspectionError):
    code = "virus_found"
    status = 422


class ScanFailed(InspectionError):
    code = "scan_failed"
    status = 503

"""Errors of the dossier package.

    DossierError                 base; `code` is stable and machine-readable
    ├── DossierNotFound          no dossier (or appointment) with that id, ever
    │   └── DocumentNotFound     no complete document with that id in that dossier
    ├── DossierDestroyed         it existed, it is gone for good; only a tombstone remains
    ├── InvalidState             the dossier's state does not allow this (e.g. cancel after a call)
    ├── InvalidInput             a value given to a service function is not acceptable
    │   └── DocumentTooLarge     the document passed the size limit while it was streamed in
    ├── IntegrityError           ciphertext, header or wrapped key failed to authenticate
    └── KeyUnavailable           a key-encryption key is missing or was destroyed

Messages name the offending value but never contain personal data or plaintext.
"""

from __future__ import annotations

__all__ = [
    "DocumentNotFound",
    "DocumentTooLarge",
    "DossierDestroyed",
    "DossierError",
    "DossierNotFound",
    "IntegrityError",
    "InvalidInput",
    "InvalidState",
    "KeyUnavailable",
]


class DossierError(Exception):
    """Base class of every error the dossier package raises on purpose."""

    code = "dossier_error"


class DossierNotFound(DossierError):
    code = "dossier_not_found"


class DocumentNotFound(DossierNotFound):
    code = "document_not_found"


class DossierDestroyed(DossierError):
    code = "dossier_destroyed"


class InvalidState(DossierError):
    code = "invalid_state"


class InvalidInput(DossierError):
    code = "invalid_input"


class DocumentTooLarge(InvalidInput):
    code = "document_too_large"


class IntegrityError(DossierError):
    """Authentication of stored data failed: tampered, truncated, reordered or misplaced."""

    code = "integrity_error"


class KeyUnavailable(DossierError):
    code = "key_unavailable"

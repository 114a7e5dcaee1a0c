"""PDFs: stored unchanged, so refused when they carry anything a viewer would act on.

A PDF is checked by parsing it and looking at every object in it: each object the
cross-reference tables list (including those packed in compressed object streams), every
member of every object stream (stale versions too), and objects in the file that no table
lists (a viewer that repairs a damaged table would find them). A PDF is refused when a name
anywhere in those objects marks JavaScript, a launch action, an embedded file, a form that
sends or imports data, an XFA form or RichMedia. The parser decodes name escapes, so
/J#61vaScript is seen as /JavaScript.

There is deliberately no search of the raw bytes for these names: text in an uncompressed
page could contain "/JavaScript" and refuse an ordinary document, while compressed object
streams hide the names from such a search anyway.

Work is bounded by counting objects and visited values; recursion is never used, and objects
are not followed through references (each is visited once, as itself).
"""

from __future__ import annotations

import io
import logging
import re

from pypdf import PasswordType, PdfReader
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    StreamObject,
    read_object,
)

from dossier.inspection.errors import (
    InspectionError,
    PdfEncrypted,
    PdfUnreadable,
    UnsafeDocument,
)

__all__ = ["MAX_OBJECTS", "MAX_VALUES", "check_pdf"]

log = logging.getLogger(__name__)

#: Objects walked, listed or not. A 20 MiB PDF of ordinary pages has a few thousand; one
#: stuffed with tiny objects is refused rather than walked.
MAX_OBJECTS = 200_000
#: Dictionary entries, array items and names visited, over all objects.
MAX_VALUES = 5_000_000

# A name, as key or value anywhere, that marks active content, and what users are told.
_ACTIVE = {
    "/JavaScript": "JavaScript",
    "/JS": "JavaScript",
    "/Launch": "an action that starts a program",
    "/EmbeddedFiles": "an embedded file",
    "/EmbeddedFile": "an embedded file",
    "/FileAttachment": "an embedded file",
    "/GoToE": "an embedded file",
    "/SubmitForm": "a form that sends data",
    "/ImportData": "a form that imports data",
    "/XFA": "an XFA form",
    "/RichMedia": "embedded media (RichMedia)",
    "/RichMediaContent": "embedded media (RichMedia)",
}
_WHITESPACE = b" \t\r\n\f\x00"
# An object header at the start of a line, as a repairing reader searches for it.
_OBJECT_HEADER = re.compile(
    rb"[\r\n][ \t\f\x00]*(\d{1,10})[ \t\r\n\f\x00]+(\d{1,5})[ \t\r\n\f\x00]+obj\b"
)


def check_pdf(data: bytes) -> None:
    """Return if the PDF may be stored as it is; raise if it may not.

    Raises UnsafeDocument naming the active content found (JavaScript, launch actions,
    embedded files, submitting or importing forms, XFA, RichMedia), PdfEncrypted when a
    password is needed to read it (a PDF that only restricts printing or copying opens without
    one and is checked like any other), PdfUnreadable when it cannot be parsed or is too large
    to check. Synchronous and CPU-bound: run it in a thread.
    """
    try:
        walk = _Walk(_open(data))
        walk.document(data)
    except InspectionError:
        raise
    except Exception as exc:
        # pypdf raises many kinds of errors on hostile input (PdfReadError, but also KeyError,
        # ValueError, RecursionError, ...). What cannot be parsed cannot be vouched for.
        log.info("PDF refused as unreadable: %s", type(exc).__name__)
        raise PdfUnreadable("the PDF cannot be read; the file may be damaged") from exc
    if walk.found:
        *others, last = walk.found
        found = f"{', '.join(others)} and {last}" if others else last
        raise UnsafeDocument(
            f"the PDF contains {found}, which is not accepted; "
            "printing it to a new PDF usually removes it"
        )


def _open(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception:
        if b"/Encrypt" in data:  # only to choose the message; the refusal stands either way
            raise PdfEncrypted("the PDF is encrypted in a way that cannot be checked") from None
        raise
    # pypdf already tried the empty password, which opens PDFs that only restrict use.
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise PdfEncrypted("encrypted PDFs cannot be checked; please send it without a password")
    root = reader.trailer.get("/Root")
    if not isinstance(root.get_object() if root is not None else None, DictionaryObject):
        raise PdfUnreadable("the PDF cannot be read: it has no document catalog")
    return reader


class _Walk:
    """Visits objects one at a time and records the active content found, in order."""

    def __init__(self, reader: PdfReader) -> None:
        self.reader = reader
        self.found: dict[str, None] = {}  # an ordered set of phrases
        self.objects = 0
        self.values = 0

    def document(self, data: bytes) -> None:
        reader = self.reader
        # Objects packed in object streams are visited by unpacking their streams (all of
        # them, so each is counted once and stale members are seen too).
        listed = [(number, gen) for gen, entries in reader.xref.items() for number in entries]
        self._count(len(listed))
        self.value(reader.trailer)
        for number, gen in listed:
            self.indirect(reader.get_object(IndirectObject(number, gen, reader)))
        visited = {number for number, gen in listed if gen == 0}
        containers = {int(stream) for stream, _ in reader.xref_objStm.values()} - visited
        for number in sorted(containers):  # object streams that no table lists themselves
            self._count(1)
            self.indirect(reader.get_object(IndirectObject(number, 0, reader)))
        for match in _OBJECT_HEADER.finditer(data):
            number, gen, offset = int(match[1]), int(match[2]), match.start(1)
            if reader.xref.get(gen, {}).get(number) == offset:
                continue  # listed, already visited
            self._unlisted(data, match.end(), number)

    def _read_at(self, content: bytes, pos: int) -> PdfObject:
        while pos < len(content) and content[pos] in _WHITESPACE:
            pos += 1
        stream = io.BytesIO(content)
        stream.seek(pos)
        return read_object(stream, self.reader)

    def _unlisted(self, data: bytes, start: int, number: int) -> None:
        try:
            obj = self._read_at(data, start)
        except Exception as exc:
            # Also matches "1 0 obj" as text in an uncompressed page; a reader repairing the
            # file could not parse it either.
            log.debug("unlisted object %d not parsed: %s", number, type(exc).__name__)
            return
        if self.reader.is_encrypted and _is_object_stream(obj):
            raise PdfUnreadable("the PDF holds encrypted parts that cannot be checked")
        self._count(1)
        self.indirect(obj)

    def indirect(self, obj: PdfObject | None) -> None:
        self.value(obj)
        if isinstance(obj, StreamObject) and _is_object_stream(obj):
            self._members(obj)

    def _members(self, stream: StreamObject) -> None:
        """Every object packed in an object stream, whether or not a table still lists it."""
        count, first = stream.get("/N"), stream.get("/First")
        if not isinstance(count, NumberObject) or not isinstance(first, NumberObject):
            raise PdfUnreadable("the PDF cannot be read: an object stream is damaged")
        content = stream.get_data()
        numbers = re.findall(rb"\d+", content[: int(first)])[: 2 * int(count)]
        self._count(len(numbers) // 2)
        for offset in numbers[1::2]:
            self.value(self._read_at(content, int(first) + int(offset)))

    def value(self, root: PdfObject | None) -> None:
        """Visit a value and everything nested in it, without following references."""
        pending: list[PdfObject | None] = [root]
        while pending:
            item = pending.pop()
            self.values += 1
            if self.values > MAX_VALUES:
                raise PdfUnreadable("the PDF is too complex to be checked")
            if isinstance(item, DictionaryObject):
                for key, nested in item.items():  # items() leaves references unresolved
                    self._name(key)
                    pending.append(nested)
            elif isinstance(item, ArrayObject):
                pending.extend(item)
            elif isinstance(item, NameObject):
                self._name(item)

    def _name(self, name: str) -> None:
        phrase = _ACTIVE.get(name)
        if phrase is not None:
            self.found[phrase] = None

    def _count(self, objects: int) -> None:
        self.objects += objects
        if self.objects > MAX_OBJECTS:
            raise PdfUnreadable(
                f"the PDF has more than {MAX_OBJECTS:,} objects, too many to be checked"
            )


def _is_object_stream(obj: PdfObject | None) -> bool:
    return isinstance(obj, StreamObject) and obj.get("/Type") == "/ObjStm"

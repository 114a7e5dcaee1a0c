"""PDFs with active content are refused wherever it hides; ordinary PDFs pass unchanged.

PDFs come from pypdf's writer, or are built by hand where the writer cannot hide things
(object streams, escaped names, objects no cross-reference table lists)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Collection

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.actions import JavaScript
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject

from dossier.inspection import (
    PDF,
    PdfEncrypted,
    PdfUnreadable,
    UnsafeDocument,
    check_pdf,
    inspect,
)
from dossier.inspection import pdf as pdf_module

CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"


def written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def one_page() -> PdfWriter:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    return writer


def refusal(data: bytes) -> UnsafeDocument:
    with pytest.raises(UnsafeDocument) as caught:
        check_pdf(data)
    return caught.value


def build_pdf(objects: dict[int, bytes], *, unlisted: bytes = b"") -> bytes:
    """A PDF with a classic cross-reference table listing `objects`; `unlisted` sits in the
    body where no table points to it."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number, body in sorted(objects.items()):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    out += unlisted
    table, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number] if number in offsets else bytes(20)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, table)
    return bytes(out)


def build_pdf_with_object_stream(
    plain: dict[int, bytes], packed: dict[int, bytes], *, unlisted: Collection[int] = ()
) -> bytes:
    """A PDF 1.5 file whose `packed` objects sit compressed in an object stream, listed by a
    compressed cross-reference stream (what Acrobat and most office suites write), except
    those `unlisted`, which the table marks free."""
    numbers, bodies = [], b""
    for number, body in packed.items():
        numbers.append(b"%d %d" % (number, len(bodies)))
        bodies += body + b"\n"
    header = b" ".join(numbers) + b"\n"
    content = zlib.compress(header + bodies)
    stream_number = max([*plain, *packed]) + 1
    plain = {
        **plain,
        stream_number: b"<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\n"
        b"stream\n%s\nendstream" % (len(packed), len(header), len(content), content),
    }
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number, body in sorted(plain.items()):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_number = stream_number + 1
    offsets[xref_number] = len(out)
    rows = b"\x00" + struct.pack(">IH", 0, 65535)
    packed_index = {number: index for index, number in enumerate(packed)}
    for number in range(1, xref_number + 1):
        if number in offsets:
            rows += b"\x01" + struct.pack(">IH", offsets[number], 0)
        elif number in unlisted:
            rows += b"\x00" + struct.pack(">IH", 0, 1)
        else:
            rows += b"\x02" + struct.pack(">IH", stream_number, packed_index[number])
    table = zlib.compress(rows)
    out += (
        b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode "
        b"/Length %d >>\nstream\n%s\nendstream\nendobj\n"
        % (xref_number, xref_number + 1, len(table), table)
    )
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[xref_number]
    return bytes(out)


def test_plain_pdf_passes_unchanged() -> None:
    data = written(one_page())
    check_pdf(data)
    assert inspect(data, PDF) is data


def test_hand_built_pdfs_are_readable_by_pypdf() -> None:
    # The builders themselves must produce real PDFs, or the tests below prove nothing.
    plain = build_pdf({1: CATALOG, 2: PAGES, 3: PAGE})
    packed = build_pdf_with_object_stream({3: PAGE}, {1: CATALOG, 2: PAGES})
    for data in (plain, packed):
        assert len(PdfReader(io.BytesIO(data), strict=True).pages) == 1
        check_pdf(data)


def test_document_javascript_is_refused() -> None:
    writer = one_page()
    writer.add_open_action(JavaScript("app.alert('hallo')"))
    error = refusal(written(writer))
    assert error.code == "unsafe_document"
    assert error.status == 422
    assert str(error).startswith("the PDF contains JavaScript, which is not accepted")


def test_launch_action_on_open_is_refused() -> None:
    writer = one_page()
    writer.root_object[NameObject("/OpenAction")] = DictionaryObject(
        {
            NameObject("/S"): NameObject("/Launch"),
            NameObject("/F"): TextStringObject("C:\\Windows\\System32\\calc.exe"),
        }
    )
    assert "an action that starts a program" in str(refusal(written(writer)))


def test_page_open_javascript_in_additional_actions_is_refused() -> None:
    action = b"<< /S /JavaScript /JS (app.launchURL\\('https://example.org'\\)) >>"
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /AA << /O 4 0 R >> >>"
    assert "JavaScript" in str(refusal(build_pdf({1: CATALOG, 2: PAGES, 3: page, 4: action})))


def test_embedded_file_is_refused() -> None:
    writer = one_page()
    writer.add_attachment("factuur.exe", b"MZ...")
    assert "an embedded file" in str(refusal(written(writer)))


def test_file_attachment_annotation_is_refused() -> None:
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Annots [4 0 R] >>"
    note = b"<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 10 10] >>"
    assert "an embedded file" in str(refusal(build_pdf({1: CATALOG, 2: PAGES, 3: page, 4: note})))


def test_form_that_submits_is_refused() -> None:
    writer = one_page()
    button = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Btn"),
            NameObject("/Rect"): ArrayObject(),
            NameObject("/A"): DictionaryObject(
                {
                    NameObject("/S"): NameObject("/SubmitForm"),
                    NameObject("/F"): TextStringObject("https://example.org/collect"),
                }
            ),
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(button)])
    assert "a form that sends data" in str(refusal(written(writer)))


def test_xfa_form_and_rich_media_are_refused_together() -> None:
    catalog = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [] /XFA 4 0 R >> >>"
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 9 9] /Annots [<< /Subtype /RichMedia >>] >>"
    )
    data = build_pdf({1: catalog, 2: PAGES, 3: page, 4: b"<< /Length 0 >>\nstream\n\nendstream"})
    assert "contains an XFA form and embedded media (RichMedia)," in str(refusal(data))


def test_javascript_inside_a_compressed_object_stream_is_refused() -> None:
    catalog = (
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (this.print\\(\\)) >> >>"
    )
    data = build_pdf_with_object_stream({3: PAGE}, {1: catalog, 2: PAGES})
    assert b"JavaScript" not in data  # a search of the raw bytes finds nothing
    assert "JavaScript" in str(refusal(data))


def test_stale_object_left_in_an_object_stream_is_refused() -> None:
    # Object 4 is in the stream but no table lists it; a repairing reader may still use it.
    data = build_pdf_with_object_stream(
        {3: PAGE}, {1: CATALOG, 2: PAGES, 4: b"<< /S /Launch /F (cmd.exe) >>"}, unlisted={4}
    )
    reader = PdfReader(io.BytesIO(data))
    assert 4 not in reader.xref_objStm
    assert reader.get_object(4) is None
    assert "starts a program" in str(refusal(data))


def test_escaped_name_is_refused() -> None:
    action = b"<< /S /J#61vaScript /J#53 (app.alert\\(1\\)) >>"
    data = build_pdf(
        {1: b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>", 2: PAGES, 3: PAGE, 4: action}
    )
    assert b"/JavaScript" not in data
    assert b"/JS" not in data
    assert "JavaScript" in str(refusal(data))


def test_object_no_table_lists_is_still_checked() -> None:
    # A viewer that rebuilds a damaged table would find this object and use it.
    hidden = b"\n9 0 obj\n<< /Type /Catalog /OpenAction << /S /Launch /F (calc.exe) >> >>\nendobj\n"
    data = build_pdf({1: CATALOG, 2: PAGES, 3: PAGE}, unlisted=hidden)
    assert "starts a program" in str(refusal(data))


def test_text_about_pdf_syntax_in_a_page_is_not_active_content() -> None:
    writer = one_page()
    writer.add_metadata({"/Title": "Over /JavaScript en /Launch in PDF"})
    check_pdf(written(writer))


def test_password_protected_pdf_is_refused() -> None:
    writer = one_page()
    writer.encrypt(user_password="geheim", algorithm="AES-256")
    with pytest.raises(PdfEncrypted) as caught:
        check_pdf(written(writer))
    assert caught.value.code == "pdf_encrypted"
    assert "encrypted PDFs cannot be checked" in str(caught.value)


def test_pdf_that_only_restricts_use_is_checked_like_any_other() -> None:
    clean = one_page()
    clean.encrypt(user_password="", owner_password="eigenaar", algorithm="AES-256")
    check_pdf(written(clean))

    active = one_page()
    active.add_open_action(JavaScript("app.alert(1)"))
    active.encrypt(user_password="", owner_password="eigenaar", algorithm="AES-256")
    assert "JavaScript" in str(refusal(written(active)))


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + bytes(range(256)) * 40,
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog",
        b"%PDF-",
    ],
)
def test_unreadable_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(PdfUnreadable) as caught:
        check_pdf(data)
    assert caught.value.code == "pdf_unreadable"
    assert "the PDF cannot be read" in str(caught.value)


def test_deeply_nested_arrays_are_refused_quickly() -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    data = build_pdf({1: CATALOG, 2: PAGES, 3: PAGE, 4: nested})
    started = time.monotonic()
    with pytest.raises(PdfUnreadable):
        check_pdf(data)
    assert time.monotonic() - started < 5


def test_too_many_objects_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_module, "MAX_OBJECTS", 10)
    objects = {1: CATALOG, 2: PAGES, 3: PAGE} | {n: b"null" for n in range(4, 12)}
    with pytest.raises(PdfUnreadable, match="more than 10 objects"):
        check_pdf(build_pdf(objects))
    check_pdf(build_pdf({1: CATALOG, 2: PAGES, 3: PAGE}))


def test_too_many_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_module, "MAX_VALUES", 1000)
    big = b"[" + b"0 " * 2000 + b"]"
    with pytest.raises(PdfUnreadable, match="too complex"):
        check_pdf(build_pdf({1: CATALOG, 2: PAGES, 3: PAGE, 4: big}))

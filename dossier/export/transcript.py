"""The chat of a conversation as a record people can read: accessible HTML and a PDF.

The HTML is the accessible rendition (language, title, one heading, a table with column
headers and a caption, no scripts, print styles); the PDF is the same text for those who file
paper-like records. Times are shown in Dutch local time, with the exact UTC instant in the
HTML's `<time datetime>`.

The PDF embeds DejaVu Sans when the system has it (Debian: fonts-dejavu-core), so that every
character a resident can type in the chat (ĳ, €, Greek, Cyrillic, Arabic letters) survives;
without text shaping (uharfbuzz is not installed) Arabic is shown unjoined, left to right, and
emoji DejaVu lacks are left out. Without DejaVu, fpdf2's built-in Helvetica is used, which
knows Latin-1 only: other characters become "?", and the PDF says so on its first page. The
PDF is not tagged (PDF/UA); the HTML, with `dir="auto"` per message, is the rendition for
assistive technology and the one that is exact for every script.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from dossier.export.content import ExportContent

__all__ = [
    "LOCAL_TIME",
    "ROLE_LABELS",
    "PdfFont",
    "dutch_date",
    "embed_unicode_font",
    "role_label",
    "transcript_html",
    "transcript_pdf",
]

LOCAL_TIME = ZoneInfo("Europe/Amsterdam")  # residents and clerks saw Dutch time in the call
ROLE_LABELS = {
    "clerk": "Medewerker",
    "resident": "Inwoner",
    "guest": "Tolk",
    "operator": "Beheerder",
}
_MONTHS = (
    "januari", "februari", "maart", "april", "mei", "juni",
    "juli", "augustus", "september", "oktober", "november", "december",
)  # fmt: skip
# Where distributions put DejaVu Sans: Debian/Ubuntu, Fedora, Arch, Alpine.
_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts/dejavu"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; line-height: 1.5; margin: 2rem; color: #111; }
h1 { font-size: 1.5rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .25rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: bold; padding: .5rem 0; }
th, td { border: 1px solid #777; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.text { white-space: pre-wrap; overflow-wrap: anywhere; }
@media print { body { margin: 0; } tr { break-inside: avoid; } }
""".strip()


def role_label(role: str) -> str:
    """The Dutch word for a participant's role, as the transcript shows it."""
    return ROLE_LABELS.get(role, role)


def _local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(LOCAL_TIME)


def dutch_date(moment: dt.datetime) -> str:
    """The Dutch calendar day of `moment`, written out: "2 maart 2026"."""
    local = _local(moment)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"


def _stamp(moment: dt.datetime) -> str:
    return _local(moment).strftime("%d-%m-%Y %H:%M:%S")


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _title(content: ExportContent) -> str:
    return f"Gespreksverslag {content.service_label}, {dutch_date(content.appointment_start)}"


def _facts(content: ExportContent) -> list[tuple[str, str]]:
    """The lines above the chat: what, where, when, who (roles and references, no names)."""
    facts = [
        ("Dienst", content.service_label),
        ("Afdeling", content.department_name),
        ("Gesprek", f"{_stamp(content.appointment_start)} (Nederlandse tijd)"),
        ("Dossier", str(content.dossier_id)),
    ]
    facts += [(role_label(p.role), p.ref) for p in content.participants]
    facts.append(("Geëxporteerd", f"{_stamp(content.exported_at)} door {content.exported_by}"))
    return facts


def transcript_html(content: ExportContent) -> str:
    """The chat as a standalone, accessible HTML page (UTF-8, no scripts, every text escaped)."""
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="nl">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(_title(content))}</title>",
        f"<style>\n{_STYLE}\n</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{e(_title(content))}</h1>",
        "<dl>",
    ]
    out += [f"<dt>{e(term)}</dt><dd>{e(value)}</dd>" for term, value in _facts(content)]
    out.append("</dl>")
    if not content.chat:
        out.append("<p>In dit gesprek zijn geen chatberichten gewisseld.</p>")
    else:
        out += [
            "<table>",
            "<caption>Chatberichten (tijden in Nederlandse tijd)</caption>",
            '<thead><tr><th scope="col">Tijd</th><th scope="col">Rol</th>'
            '<th scope="col">Bericht</th></tr></thead>',
            "<tbody>",
        ]
        out += [
            f'<tr><td><time datetime="{_utc(line.sent_at)}">{e(_stamp(line.sent_at))}</time>'
            f"</td><td>{e(role_label(line.role))}</td>"
            f'<td class="text" dir="auto">{e(line.text)}</td></tr>'
            for line in content.chat
        ]
        out += ["</tbody>", "</table>"]
    out += ["</main>", "</body>", "</html>", ""]
    return "\n".join(out)


def _unicode_font() -> Path | None:
    """DejaVu Sans, if this system has it. One face only: parsing a TrueType font costs about
    50 ms per export, so emphasis comes from size and layout, not from a bold face."""
    for directory in _FONT_DIRS:
        regular = directory / "DejaVuSans.ttf"
        if regular.is_file():
            return regular
    return None


@dataclass(frozen=True, slots=True)
class PdfFont:
    """The font family a PDF writes in, and whether it covers Unicode or Latin-1 only."""

    family: str
    unicode: bool

    def clean(self, text: str) -> str:
        """`text` as this font can print it: unchanged, or Latin-1 with "?" for the rest."""
        if self.unicode:
            return text
        return text.encode("latin-1", "replace").decode("latin-1")


def embed_unicode_font(pdf: FPDF) -> PdfFont:
    """Embed DejaVu Sans in `pdf` when this system has it, else fall back to Helvetica."""
    font = _unicode_font()
    if font is None:
        return PdfFont("Helvetica", unicode=False)
    pdf.add_font("DejaVu", "", str(font))
    return PdfFont("DejaVu", unicode=True)


class _TranscriptPDF(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(size=8)
        self.cell(0, 8, f"Pagina {self.page_no()} van {{nb}}", align="C")


def transcript_pdf(content: ExportContent) -> bytes:
    """The same transcript as a PDF (A4). Deterministic: the same content gives the same bytes,
    so a rebuilt package has the checksums of the first build."""
    pdf = _TranscriptPDF(format="A4")
    # Dates from the content, not the wall clock: a rebuild must give identical bytes.
    pdf.set_creation_date(content.exported_at)
    pdf.set_title(_title(content))
    pdf.set_author(content.archiefvormer)
    pdf.set_creator("Balie")
    pdf.set_lang("nl")
    pdf.set_auto_page_break(auto=True, margin=15)
    font = embed_unicode_font(pdf)
    family, clean = font.family, font.clean
    pdf.set_font(family, size=10)
    pdf.add_page()
    pdf.set_font(family, size=15)
    pdf.multi_cell(0, 8, clean(_title(content)), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    _facts_block(pdf, family, ((clean(t), clean(v)) for t, v in _facts(content)))
    if not font.unicode:
        pdf.set_font(family, size=8)
        pdf.multi_cell(
            0,
            4,
            "Let op: dit systeem had geen Unicode-lettertype; tekens buiten Latin-1 zijn als ? "
            "weergegeven. Het HTML-verslag in hetzelfde pakket bevat de volledige tekst.",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    pdf.ln(4)
    pdf.set_font(family, size=9)
    if not content.chat:
        pdf.multi_cell(0, 5, "In dit gesprek zijn geen chatberichten gewisseld.")
    else:
        with pdf.table(col_widths=(30, 20, 80), headings_style=FontFace(fill_color=230)) as table:
            heading = table.row()
            for label in ("Tijd", "Rol", "Bericht"):
                heading.cell(label)
            for line in content.chat:
                row = table.row()
                row.cell(_stamp(line.sent_at))
                row.cell(clean(role_label(line.role)))
                row.cell(clean(line.text))
    return bytes(pdf.output())


def _facts_block(pdf: FPDF, family: str, facts: Iterable[tuple[str, str]]) -> None:
    for term, value in facts:
        pdf.set_font(family, size=10)
        pdf.set_text_color(80)  # the term in grey, the value in black
        pdf.cell(35, 6, term)
        pdf.set_text_color(0)
        pdf.set_font(family, size=10)
        pdf.multi_cell(0, 6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

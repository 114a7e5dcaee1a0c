"""The destruction statement ("verklaring van vernietiging") as a PDF (A4 landscape).

The same facts as the printable page: who the records creator is, which batch or month, one
line per destroyed dossier (ids, dates, rules, approvers; never content or a name), the count,
and a closing declaration with room for the information manager's signature. The statement is
a Dutch document, so the PDF is in Dutch whatever language the reader's pages are in. Fonts
as in the chat transcript: DejaVu Sans when the system has it, else Helvetica.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from dossier.export.transcript import LOCAL_TIME, embed_unicode_font
from retention.statements import Statement

__all__ = ["OUTCOME_LABELS", "StatementHeader", "statement_pdf"]

OUTCOME_LABELS = {
    "destroyed_at_deadline": "na termijn",
    "destroyed_on_cancel": "na annulering",
    "destroyed_by_operator": "door beheerder",
}
_COLUMNS = (
    ("Dossier", 62),
    ("Dienst", 34),
    ("Selectielijst", 20),
    ("Aangemaakt", 20),
    ("Bewaren tot", 20),
    ("Vernietigd op", 24),
    ("Reden", 22),
    ("Beleid", 18),
    ("Goedgekeurd door", 57),
)


@dataclass(frozen=True, slots=True)
class StatementHeader:
    """What stands above the lines: from the policy in force and the request."""

    municipality: str
    archiefvormer: str
    policy_version: str
    scope: str  # "vernietigingsbatch <id>" or "de maand 2026-03"
    made_at: dt.datetime


def _day(moment: dt.datetime) -> str:
    return moment.astimezone(LOCAL_TIME).strftime("%d-%m-%Y")


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(LOCAL_TIME).strftime("%d-%m-%Y %H:%M")


class _StatementPDF(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(size=8)
        self.cell(0, 8, f"Verklaring van vernietiging, pagina {self.page_no()} van {{nb}}",
                  align="C")  # fmt: skip


def statement_pdf(header: StatementHeader, statement: Statement) -> bytes:
    """The statement as PDF bytes; the same input gives the same bytes."""
    pdf = _StatementPDF(orientation="L", format="A4")
    pdf.set_creation_date(header.made_at)
    pdf.set_title(f"Verklaring van vernietiging, {header.scope}")
    pdf.set_author(header.archiefvormer or header.municipality)
    pdf.set_creator("Balie")
    pdf.set_lang("nl")
    pdf.set_auto_page_break(auto=True, margin=15)
    font = embed_unicode_font(pdf)
    clean = font.clean
    pdf.add_page()
    pdf.set_font(font.family, size=15)
    pdf.cell(0, 9, "Verklaring van vernietiging", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    facts: list[tuple[str, str]] = [
        ("Gemeente", header.municipality),
        ("Archiefvormer", header.archiefvormer),
        ("Bewaarbeleid in werking", header.policy_version),
        ("Betreft", header.scope),
        ("Opgemaakt op", f"{_stamp(header.made_at)} (Nederlandse tijd)"),
    ]
    if statement.batch is not None:
        facts += [
            ("Batch begonnen", _stamp(statement.batch.started_at)),
            ("Batch uitgevoerd door", statement.batch.actor),
        ]
    for term, value in facts:
        pdf.set_font(font.family, size=10)
        pdf.set_text_color(80)
        pdf.cell(50, 6, term)
        pdf.set_text_color(0)
        pdf.multi_cell(0, 6, clean(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)
    count = len(statement.lines)
    pdf.set_font(font.family, size=7)
    if statement.lines:
        widths = tuple(width for _, width in _COLUMNS)
        with pdf.table(col_widths=widths, headings_style=FontFace(fill_color=230)) as table:
            heading = table.row()
            for label, _ in _COLUMNS:
                heading.cell(label)
            for line in statement.lines:
                row = table.row()
                row.cell(str(line.dossier_id))
                row.cell(clean(f"{line.label} ({line.service_type})"))
                row.cell(clean(line.selectielijst))
                row.cell(_day(line.created_at))
                row.cell(_day(line.deadline))
                row.cell(_stamp(line.removed_at))
                row.cell(OUTCOME_LABELS.get(line.outcome, line.outcome))
                row.cell(clean(line.policy_version))
                row.cell(clean(line.approved_by))
    else:
        pdf.set_font(font.family, size=10)
        pdf.multi_cell(0, 6, "Er is in deze periode geen dossier vernietigd.",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.ln(4)
    pdf.set_font(font.family, size=10)
    pdf.multi_cell(0, 6, f"Aantal vernietigde dossiers: {count}.",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.ln(2)
    pdf.multi_cell(
        0,
        6,
        f"Ondergetekende verklaart dat de hierboven genoemde {count} gespreksdossiers zijn "
        "vernietigd volgens het bewaarbeleid van de gemeente, de Archiefwet 1995 en de "
        "Selectielijst gemeenten en intergemeentelijke organen 2020. De inhoud is door "
        "vernietiging van de sleutels onleesbaar gemaakt en daarna verwijderd.",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(6)
    for label in ("Naam", "Functie: informatiebeheerder", "Plaats", "Datum", "Handtekening"):
        if label.startswith("Functie"):
            pdf.cell(0, 9, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            continue
        pdf.cell(35, 9, label)
        pdf.cell(90, 9, "", border="B", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())

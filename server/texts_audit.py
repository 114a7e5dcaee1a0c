"""Words of the audit page, in Dutch and English (merged into `server.texts.CATALOGUE`)."""

from __future__ import annotations

__all__ = ["AUDIT_TEXTS"]

AUDIT_TEXTS: dict[str, tuple[str, str]] = {
    # /beheer/audit, for information managers and the privacy officer
    "audit.title": ("Auditlog", "Audit log"),
    "audit.intro": (
        "Het auditlog legt elke handeling vast. Elke regel bevat een vingerafdruk van de regel "
        "ervoor. Geregeld zet Balie er een digitale handtekening onder en bewaart een kopie "
        "buiten de database. Zo valt op als iemand regels wijzigt, weghaalt of toevoegt.",
        "The audit log records every action. Each entry holds a fingerprint of the one before "
        "it. Every so often Balie signs the log and keeps a copy outside the database. That way "
        "it shows when someone changes, removes or adds entries.",
    ),
    "audit.verify.heading": ("Nu controleren", "Verify now"),
    "audit.verify.intro": (
        "De controle leest het hele log en vergelijkt het met de handtekeningen en de kopieën. "
        "De uitkomst wordt zelf ook vastgelegd.",
        "The check reads the whole log and compares it with the signatures and the copies. The "
        "outcome is recorded as well.",
    ),
    "audit.verify.button": ("Controleer het auditlog", "Verify the audit log"),
    "audit.verify.only_im": (
        "Alleen een informatiebeheerder kan de controle starten.",
        "Only an information manager can start the check.",
    ),
    "audit.verify_forbidden": (
        "Alleen een informatiebeheerder kan het auditlog controleren.",
        "Only an information manager can verify the audit log.",
    ),
    "audit.result.heading": ("Uitkomst van deze controle", "Outcome of this check"),
    "audit.result.ok": (
        "In orde: {events} regels, {checkpoints} handtekeningen en {witnesses} kopieën kloppen.",
        "Intact: {events} entries, {checkpoints} signatures and {witnesses} copies agree.",
    ),
    "audit.result.broken": (
        "Niet in orde. Eerste fout bij volgnummer {seq}: {kind}.",
        "Broken. First fault at sequence number {seq}: {kind}.",
    ),
    "audit.faults.caption": ("Gevonden fouten", "Faults found"),
    "audit.seq": ("Volgnummer", "Sequence number"),
    "audit.kind": ("Wat er gebeurde", "What happened"),
    "audit.detail": ("Toelichting", "Details"),
    "audit.kind.modified": ("gewijzigd", "modified"),
    "audit.kind.deleted": ("verwijderd", "deleted"),
    "audit.kind.inserted": ("toegevoegd", "inserted"),
    "audit.kind.truncated": ("afgekapt", "truncated"),
    "audit.kind.re-signed": ("opnieuw ondertekend", "re-signed"),
    "audit.history.heading": ("Laatste controles", "Latest checks"),
    "audit.history.caption": (
        "De laatste controles van het auditlog, nieuwste eerst",
        "The latest checks of the audit log, newest first",
    ),
    "audit.history.none": ("Het auditlog is nog niet gecontroleerd.", "Not verified yet."),
    "audit.when": ("Tijdstip", "Time"),
    "audit.by": ("Door", "By"),
    "audit.outcome": ("Uitkomst", "Outcome"),
    "audit.events": ("Regels", "Entries"),
    "audit.first_bad": ("Eerste fout", "First fault"),
    "audit.outcome.ok": ("in orde", "intact"),
    "audit.outcome.broken": ("niet in orde", "broken"),
    "audit.signing.heading": ("Handtekening", "Signature"),
    "audit.checkpoint.seq": ("Laatst ondertekend t/m volgnummer", "Last signed up to number"),
    "audit.checkpoint.at": ("Ondertekend op", "Signed at"),
    "audit.checkpoint.key": ("Met sleutel", "With key"),
    "audit.checkpoint.none": ("Nog niet ondertekend.", "Not signed yet."),
    "audit.key.fingerprint": (
        "Vingerafdruk van de sleutel (SHA-256)",
        "Key fingerprint (SHA-256)",
    ),
    "audit.key.missing": (
        "De ondertekensleutel ontbreekt of is onbruikbaar. Vraag de beheerder om hem te "
        "installeren.",
        "The signing key is missing or unusable. Ask the operator to install it.",
    ),
}

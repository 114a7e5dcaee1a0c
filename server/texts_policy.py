"""Words of the policy pages and the resident's "what we keep" section, in Dutch and English
(merged into `server.texts.CATALOGUE`).

The `keep.*` texts are read by residents: plain Dutch (B1), short sentences, every law named
in words a resident knows. `{name}` marks a value the page fills in.
"""

from __future__ import annotations

__all__ = ["MONTHS", "POLICY_TEXTS"]

# Dates for residents are written out: "3 april 2026", not "03-04-2026".
MONTHS: dict[str, tuple[str, ...]] = {
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}  # fmt: skip

_RESIDENT: dict[str, tuple[str, str]] = {
    "keep.heading": (
        "Wat bewaren we over dit gesprek?",
        "What do we keep about this conversation?",
    ),
    "keep.what.heading": ("Wat bewaren we?", "What do we keep?"),
    "keep.what.intro": ("Over dit gesprek bewaren we:", "About this conversation we keep:"),
    "keep.what.chat": ("de berichten in de chat", "the chat messages"),
    "keep.what.documents": (
        "de documenten die u of de medewerker stuurt",
        "the documents that you or the clerk send",
    ),
    "keep.what.payments": ("de betalingen", "the payments"),
    "keep.what.times": (
        "de tijden: wanneer de afspraak was, en wanneer het gesprek begon en stopte",
        "the times: when the appointment was, and when the conversation started and ended",
    ),
    "keep.what.bsn": (
        "uw burgerservicenummer (BSN), omdat de gemeente dat nodig heeft voor deze dienst",
        "your citizen service number (BSN), because the municipality needs it for this service",
    ),
    "keep.no_bsn": (
        "Uw burgerservicenummer (BSN) bewaren we niet bij dit gesprek.",
        "We do not keep your citizen service number (BSN) with this conversation.",
    ),
    "keep.safe": (
        "Alles staat versleuteld opgeslagen. Alleen u en de medewerkers van de afdeling die u "
        "helpt, kunnen het zien.",
        "Everything is stored encrypted. Only you and the staff of the department that helps "
        "you can see it.",
    ),
    "keep.why.heading": ("Waarom bewaren we dit?", "Why do we keep this?"),
    "keep.why.purpose": (
        "We gebruiken deze gegevens alleen om u te helpen met: {service}.",
        "We use this information only to help you with: {service}.",
    ),
    "keep.why.law": (
        "De wet staat dat toe. In de taal van juristen: {basis}.",
        "The law allows this. In legal terms: {basis}.",
    ),
    "keep.why.avg": (
        "AVG betekent Algemene verordening gegevensbescherming. Dat is de wet die uw privacy "
        "beschermt. Volgens de AVG mogen we uw gegevens niet langer bewaren dan nodig is.",
        "AVG is the Dutch name of the GDPR, the General Data Protection Regulation: the law "
        "that protects your privacy. Under the GDPR we may not keep your information longer "
        "than needed.",
    ),
    "keep.archive.export_required": (
        "De gemeente moet een verslag van dit gesprek bewaren in haar archief. Dat staat in de "
        "Archiefwet. Daarom stuurt de medewerker het gesprek naar het archief van de gemeente.",
        "The municipality must keep a record of this conversation in its archive: the Archives "
        "Act (Archiefwet) says so. That is why the clerk sends the conversation to the "
        "municipality's archive.",
    ),
    "keep.archive.export_optional": (
        "Als het nodig is, stuurt de medewerker het gesprek naar het archief van de gemeente. "
        "Dat staat in de Archiefwet.",
        "If needed, the clerk sends the conversation to the municipality's archive, as the "
        "Archives Act (Archiefwet) says.",
    ),
    "keep.archive.none": (
        "De gemeente hoeft dit gesprek niet te bewaren in haar archief.",
        "The municipality does not have to keep this conversation in its archive.",
    ),
    "keep.archive.period": (
        "In het archief blijft het {period}.",
        "It stays in the archive {period}.",
    ),
    "keep.period.permanent": ("voor altijd", "permanently"),
    "keep.period.years": ("{n} jaar", "{n} years"),
    "keep.period.year": ("1 jaar", "1 year"),
    "keep.period.months": ("{n} maanden", "{n} months"),
    "keep.period.month": ("1 maand", "1 month"),
    "keep.period.days": ("{n} dagen", "{n} days"),
    "keep.period.day": ("1 dag", "1 day"),
    "keep.period.and": ("en", "and"),
    "keep.period.for": ("", "for "),
    "keep.until.heading": ("Tot wanneer bewaren we het?", "Until when do we keep it?"),
    "keep.until": (
        "Op {date} wissen we alles wat we hier over dit gesprek bewaren.",
        "On {date} we delete everything we keep here about this conversation.",
    ),
    "keep.until.archive": (
        "Stuurt de medewerker het gesprek eerder naar het archief? Dan wissen we het hier "
        "meteen daarna.",
        "If the clerk sends the conversation to the archive earlier, we delete it here "
        "straight after that.",
    ),
    "keep.until.hold": (
        "Alleen als er een klacht, een bezwaar of een rechtszaak over dit gesprek is, mag de "
        "gemeente het langer bewaren.",
        "Only if there is a complaint, an objection or a court case about this conversation may "
        "the municipality keep it longer.",
    ),
}

_OVERSIGHT: dict[str, tuple[str, str]] = {
    "policy.title": ("Bewaarbeleid", "Retention policy"),
    "policy.intro": (
        "Het bewaarbeleid zegt per dienst hoe lang een gesprek bewaard mag worden en of het "
        "naar het archief moet. Een nieuwe versie geldt pas als een informatiebeheerder én de "
        "functionaris gegevensbescherming haar goedkeuren.",
        "The retention policy says per service how long a conversation may be kept and whether "
        "it must go to the archive. A new version takes effect only when an information "
        "manager and the data protection officer both approve it.",
    ),
    "policy.in_force.heading": ("Versie die nu geldt", "Version in force"),
    "policy.none": ("Er geldt nog geen versie.", "No version is in force yet."),
    "policy.version": ("Versie", "Version"),
    "policy.digest": ("Controlegetal (SHA-256)", "Digest (SHA-256)"),
    "policy.in_force_from": ("Geldt sinds", "In force since"),
    "policy.proposed_by": ("Voorgesteld door", "Proposed by"),
    "policy.proposed_at": ("Voorgesteld op", "Proposed on"),
    "policy.justification": ("Toelichting", "Justification"),
    "policy.im_approval": (
        "Goedgekeurd door informatiebeheerder",
        "Approved by information manager",
    ),
    "policy.po_approval": (
        "Goedgekeurd door functionaris gegevensbescherming",
        "Approved by data protection officer",
    ),
    "policy.not_yet": ("nog niet", "not yet"),
    "policy.approval_at": ("{who} op {at}", "{who} on {at}"),
    "policy.services": ("Diensten", "Services"),
    "policy.services.caption": (
        "Diensten in de versie die nu geldt",
        "Services in the version in force",
    ),
    "policy.service.code": ("Code", "Code"),
    "policy.service.label": ("Dienst", "Service"),
    "policy.service.days": ("Bewaren (dagen)", "Keep (days)"),
    "policy.service.archive": ("Archief", "Archive"),
    "policy.service.selectielijst": ("Selectielijst", "Selection list"),
    "policy.service.on_deadline": ("Bij de termijn", "At the deadline"),
    "policy.open.heading": ("Voorstellen die wachten", "Proposals waiting"),
    "policy.open.none": ("Er wachten geen voorstellen.", "No proposals are waiting."),
    "policy.proposal": ("Voorstel versie {version}", "Proposal version {version}"),
    "policy.diff": ("Verschil met de versie die nu geldt", "Difference from the version in force"),
    "policy.diff.none": (
        "Er geldt nog geen versie om mee te vergelijken.",
        "No version in force to compare with.",
    ),
    "policy.approve": ("Goedkeuren als {role}", "Approve as {role}"),
    "policy.role.information_manager": ("informatiebeheerder", "information manager"),
    "policy.role.privacy_officer": ("functionaris gegevensbescherming", "data protection officer"),
    "policy.approved_by_you": (
        "U heeft dit voorstel al goedgekeurd; de andere rol moet nog.",
        "You approved this proposal already; the other role still has to.",
    ),
    "policy.role_done": (
        "Uw rol heeft dit voorstel al goedgekeurd.",
        "Your role approved this proposal already.",
    ),
    "policy.reject": ("Afwijzen", "Reject"),
    "policy.reject.reason": ("Reden van afwijzen", "Reason for rejecting"),
    "policy.propose.heading": ("Nieuwe versie voorstellen", "Propose a new version"),
    "policy.propose.intro": (
        "Plak de volledige tekst van het nieuwe beleid (TOML). Geef het een eigen versie.",
        "Paste the complete text of the new policy (TOML). Give it a version of its own.",
    ),
    "policy.propose.text": ("Tekst van het beleid (TOML)", "Policy text (TOML)"),
    "policy.propose.justification": (
        "Toelichting: waarom is deze wijziging nodig? (minstens 20 tekens)",
        "Justification: why is this change needed? (at least 20 characters)",
    ),
    "policy.propose.submit": ("Voorstel indienen", "Submit proposal"),
    "policy.problems": (
        "Het voorstel is niet opgeslagen. Verbeter deze punten:",
        "The proposal was not stored. Fix these points:",
    ),
    "policy.refused": ("Dat kan niet:", "That is not possible:"),
    "policy.done.proposed": (
        "Het voorstel is opgeslagen. Het geldt pas na beide goedkeuringen.",
        "The proposal is stored. It takes effect only after both approvals.",
    ),
    "policy.done.approved": (
        "Uw goedkeuring is vastgelegd. Het voorstel wacht nog op de andere rol.",
        "Your approval is recorded. The proposal still waits for the other role.",
    ),
    "policy.done.in_force": (
        "Uw goedkeuring is vastgelegd. De nieuwe versie geldt nu voor nieuwe afspraken.",
        "Your approval is recorded. The new version is now in force for new appointments.",
    ),
    "policy.done.rejected": ("Het voorstel is afgewezen.", "The proposal is rejected."),
    "policy.not_found": ("Dit voorstel bestaat niet.", "This proposal does not exist."),
    "policy.wrong_role": (
        "U kunt alleen goedkeuren in uw eigen rol.",
        "You can only approve in your own role.",
    ),
}

POLICY_TEXTS: dict[str, tuple[str, str]] = {**_RESIDENT, **_OVERSIGHT}

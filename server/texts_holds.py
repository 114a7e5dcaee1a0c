"""Words of holds (the clerk's request, the information manager's decision) and the retention
notices, in Dutch and English (merged into `server.texts.CATALOGUE`)."""

from __future__ import annotations

__all__ = ["HOLD_TEXTS"]

HOLD_TEXTS: dict[str, tuple[str, str]] = {
    # The request form (/balie/bewaring/{dossier_id}), for a clerk or an information manager
    "hold.request.title": ("Langer bewaren aanvragen", "Request a hold"),
    "hold.request.intro": (
        "Moet dit gespreksdossier langer blijven bestaan dan de bewaartermijn, bijvoorbeeld "
        "door een klacht, bezwaar, Woo-verzoek of rechtszaak? Vraag het hier aan. Een "
        "informatiebeheerder beslist. Tot dat besluit geldt de gewone termijn.",
        "Must this session dossier be kept past its retention period, for example because of "
        "a complaint, objection, Woo request or court case? Ask for it here. An information "
        "manager decides. Until then the usual period applies.",
    ),
    "hold.back": ("Terug naar de afspraken", "Back to the appointments"),
    "hold.dossier": ("Dossier", "Dossier"),
    "hold.service": ("Onderwerp", "Subject"),
    "hold.deadline": ("Wordt vernietigd op", "Will be destroyed on"),
    "hold.ground": ("Reden", "Ground"),
    "hold.ground.complaint": ("Klacht", "Complaint"),
    "hold.ground.objection": ("Bezwaar", "Objection"),
    "hold.ground.woo": ("Woo-verzoek", "Woo request"),
    "hold.ground.court": ("Rechtszaak", "Court case"),
    "hold.ground.other": ("Anders", "Other"),
    "hold.reason": ("Toelichting", "Explanation"),
    "hold.reason.hint": (
        "10 tot 500 tekens. Schrijf geen persoonsgegevens op: geen namen, BSN, adressen of "
        "e-mailadressen. Noem bijvoorbeeld het zaaknummer.",
        "10 to 500 characters. Do not write personal data: no names, BSN, addresses or e-mail "
        "addresses. Give the case number, for example.",
    ),
    "hold.ends": ("Bewaren tot en met", "Keep until (inclusive)"),
    "hold.ends.hint": ("Uiterlijk twee jaar vanaf vandaag.", "At most two years from today."),
    "hold.submit": ("Aanvragen", "Request"),
    "hold.requested": (
        "Uw aanvraag is opgeslagen. Een informatiebeheerder beslist.",
        "Your request was saved. An information manager decides.",
    ),
    "hold.history": ("Aanvragen voor dit dossier", "Requests for this dossier"),
    "hold.history.none": ("Nog geen aanvragen.", "No requests yet."),
    "hold.open_exists": (
        "Er loopt al een aanvraag of een besluit voor dit dossier.",
        "There is already an open request or hold for this dossier.",
    ),
    # States
    "hold.state": ("Status", "State"),
    "hold.state.requested": ("Aangevraagd", "Requested"),
    "hold.state.active": ("Van kracht", "Active"),
    "hold.state.rejected": ("Afgewezen", "Rejected"),
    "hold.state.released": ("Eerder beëindigd", "Released"),
    "hold.state.expired": ("Verlopen", "Expired"),
    # Refusals on the forms
    "hold.error.ground": ("Kies een reden uit de lijst.", "Choose a ground from the list."),
    "hold.error.reason": (
        "De toelichting klopt niet: 10 tot 500 tekens, zonder persoonsgegevens.",
        "The explanation is not right: 10 to 500 characters, without personal data.",
    ),
    "hold.error.ends_at": (
        "De einddatum klopt niet: een datum na vandaag en uiterlijk over twee jaar.",
        "The end date is not right: a date after today and at most two years ahead.",
    ),
    "hold.error.note": (
        "De notitie is te lang of bevat vreemde tekens.",
        "The note is too long or has odd characters.",
    ),
    "hold.error.conflict": (
        "Dat kan niet in de huidige stand van zaken.",
        "That is not possible as things stand.",
    ),
    "hold.error.gone": (
        "Dit dossier is er niet meer: het is geëxporteerd of vernietigd.",
        "This dossier is gone: it was exported or destroyed.",
    ),
    "hold.error.not_found": ("Dit bestaat niet.", "This does not exist."),
    "hold.error.forbidden": (
        "U mag dit niet. Een medewerker vraagt alleen aan voor de eigen afdeling; alleen een "
        "informatiebeheerder beslist, en nooit over de eigen aanvraag.",
        "You may not do this. A clerk asks only for their own department; only an information "
        "manager decides, and never on their own request.",
    ),
    # The information manager's page (/beheer/bewaring)
    "hold.list.title": ("Bewaren na de termijn", "Holds"),
    "hold.list.intro": (
        "Aanvragen om een gespreksdossier langer te bewaren. Een aanvraag geldt pas als een "
        "informatiebeheerder hem goedkeurt; dat moet een ander zijn dan de aanvrager.",
        "Requests to keep a session dossier longer. A request takes effect only when an "
        "information manager approves it; that must be someone other than the requester.",
    ),
    "hold.section.requested": ("Wachten op een besluit", "Awaiting a decision"),
    "hold.section.active": ("Van kracht", "Active"),
    "hold.section.ended": ("Afgelopen", "Ended"),
    "hold.none": ("Geen.", "None."),
    "hold.department": ("Afdeling", "Department"),
    "hold.requested_by": ("Aangevraagd door", "Requested by"),
    "hold.decided_by": ("Besluit door", "Decided by"),
    "hold.action": ("Actie", "Action"),
    "hold.note": ("Notitie bij het besluit (mag leeg)", "Note on the decision (optional)"),
    "hold.approve": ("Goedkeuren", "Approve"),
    "hold.reject": ("Afwijzen", "Reject"),
    "hold.release": ("Nu beëindigen", "End now"),
    "hold.own_request": (
        "Uw eigen aanvraag: een andere informatiebeheerder beslist.",
        "Your own request: another information manager decides.",
    ),
    "hold.done.approved": ("De aanvraag is goedgekeurd.", "The request was approved."),
    "hold.done.rejected": ("De aanvraag is afgewezen.", "The request was rejected."),
    "hold.done.released": ("Het bewaren is beëindigd.", "The hold was ended."),
    # Notices (/beheer/meldingen and the clerk's console)
    "notice.title": ("Meldingen over bewaartermijnen", "Retention notices"),
    "notice.intro": (
        "Afdelingen krijgen 14, 7 en 1 dag voor de vernietiging een waarschuwing. Dossiers "
        "die naar het archief moeten en 7 dagen voor de vernietiging nog niet zijn "
        "geëxporteerd, komen hier als escalatie.",
        "Departments are warned 14, 7 and 1 day before destruction. Dossiers that must be "
        "archived and are not exported 7 days before destruction are escalated here.",
    ),
    "notice.escalations": ("Escalaties", "Escalations"),
    "notice.warnings": ("Waarschuwingen aan afdelingen", "Warnings to departments"),
    "notice.kind": ("Soort", "Kind"),
    "notice.kind.warning_14": ("Nog 14 dagen", "14 days left"),
    "notice.kind.warning_7": ("Nog 7 dagen", "7 days left"),
    "notice.kind.warning_1": ("Nog 1 dag", "1 day left"),
    "notice.kind.escalation": ("Escalatie", "Escalation"),
    "notice.created": ("Gemeld op", "Issued on"),
    "notice.mail": ("E-mail", "E-mail"),
    "notice.mail.sent": ("verstuurd", "sent"),
    "notice.mail.failed": ("mislukt, wordt opnieuw geprobeerd", "failed, will be retried"),
    "notice.mail.none": ("niet verstuurd", "not sent"),
    "notice.dossier_state": ("Dossier", "Dossier"),
    "notice.live": ("bestaat nog", "still exists"),
    "notice.gone": ("weg (geëxporteerd of vernietigd)", "gone (exported or destroyed)"),
    "notice.acknowledge": ("Gezien", "Seen"),
    "notice.acknowledged": ("Gezien door", "Seen by"),
    "notice.acknowledged_ok": (
        "De melding is als gezien gemarkeerd.",
        "The notice is marked seen.",
    ),
    "notice.none": ("Geen meldingen.", "No notices."),
    "notice.request_hold": ("Langer bewaren aanvragen", "Request a hold"),
    "notice.console.heading": (
        "Dossiers die binnenkort worden vernietigd",
        "Dossiers that will soon be destroyed",
    ),
    "notice.console.intro": (
        "Moet een van deze dossiers bewaard blijven? Exporteer het naar het archief, of vraag "
        "aan om het langer te bewaren.",
        "Must one of these dossiers be kept? Export it to the archive, or request a hold.",
    ),
    "notice.console.caption": ("Waarschuwingen van uw afdeling", "Your department's warnings"),
}

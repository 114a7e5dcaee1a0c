"""The words on Balie's pages, in plain Dutch (B1) and in English.

One catalogue for templates and scripts alike: a page gets `t` (the texts in its language) and
the call page hands the `js.*` texts to its ES modules as a JSON data block, so a script never
holds words of its own. Keep the Dutch short and plain: this is what residents read.
"""

from __future__ import annotations

from typing import Literal

from server.texts_audit import AUDIT_TEXTS
from server.texts_holds import HOLD_TEXTS
from server.texts_policy import POLICY_TEXTS
from server.texts_reports import REPORT_TEXTS

__all__ = ["CATALOGUE", "Language", "script_texts", "texts"]

Language = Literal["nl", "en"]

_CALL_TEXTS: dict[str, tuple[str, str]] = {
    # Every page
    "site": ("Digitale Balie van de gemeente", "The municipality's digital counter"),
    "skip": ("Naar de inhoud", "Skip to content"),
    "switch": ("English", "Nederlands"),
    # The resident's appointment
    "appointment.title": ("Uw afspraak", "Your appointment"),
    "appointment.intro": (
        "U bent ingelogd met DigiD. Dit is uw afspraak:",
        "You are signed in with DigiD. This is your appointment:",
    ),
    "appointment.subject": ("Onderwerp", "Subject"),
    "appointment.when": ("Datum en tijd", "Date and time"),
    "guest.title": ("Gesprek als tolk", "Conversation as interpreter"),
    "guest.intro": (
        "U bent tolk in dit gesprek. U ziet en hoort de anderen en u kunt chatten.",
        "You are the interpreter in this conversation. You can see, hear and chat with the others.",
    ),
    # Step 1: camera and microphone
    "devices.heading": ("Stap 1: camera en microfoon", "Step 1: camera and microphone"),
    "devices.intro": (
        "Zet uw camera en microfoon aan. Uw browser vraagt of dat mag: kies Toestaan.",
        "Turn on your camera and microphone. Your browser asks for permission: choose Allow.",
    ),
    "devices.start": ("Camera en microfoon aanzetten", "Turn on camera and microphone"),
    "devices.camera": ("Camera", "Camera"),
    "devices.microphone": ("Microfoon", "Microphone"),
    "devices.preview": ("Uw eigen beeld", "Your own picture"),
    "devices.echo.heading": ("Verbinding testen (als u wilt)", "Test the connection (optional)"),
    "devices.echo.intro": (
        "U ziet en hoort uzelf terug via de server, zoals de medewerker u straks ziet. De test stopt na een minuut.",
        "You see and hear yourself back through the server, the way the clerk will. The test stops after a minute.",
    ),
    "devices.echo.start": ("Test starten", "Start the test"),
    "devices.echo.stop": ("Test stoppen", "Stop the test"),
    "devices.echo.video": ("Uw beeld, terug van de server", "Your picture, back from the server"),
    "devices.next": ("Naar de wachtkamer", "Go to the waiting room"),
    "devices.next.staff": ("Naar het gesprek", "Go to the conversation"),
    # Step 2: waiting room
    "waiting.heading": ("Stap 2: wachtkamer", "Step 2: waiting room"),
    "waiting.intro": (
        "De medewerker laat u zo binnen. Houd deze pagina open.",
        "The clerk will let you in soon. Keep this page open.",
    ),
    # Step 3: the call
    "call.heading": ("Het gesprek", "The conversation"),
    "call.videos": ("Beelden", "Pictures"),
    "call.own": ("Uzelf", "You"),
    "call.controls": ("Bediening", "Controls"),
    "call.mute": ("Microfoon uit", "Microphone off"),
    "call.camera": ("Camera uit", "Camera off"),
    "call.audio_only": ("Alleen geluid", "Sound only"),
    "call.leave": ("Gesprek verlaten", "Leave the conversation"),
    "call.end": ("Gesprek beëindigen", "End the conversation"),
    "chat.heading": ("Chat", "Chat"),
    "chat.label": ("Uw bericht", "Your message"),
    "chat.send": ("Versturen", "Send"),
    "chat.empty": ("Nog geen berichten.", "No messages yet."),
    # Documents and payments in the call
    "docs.heading": ("Documenten", "Documents"),
    "docs.intro": (
        "Deel een PDF, JPG of PNG van hoogstens 20 MB. Sleep het bestand hierheen of kies het.",
        "Share a PDF, JPG or PNG of at most 20 MB. Drag the file here or choose it.",
    ),
    "docs.none": ("Nog geen documenten.", "No documents yet."),
    "docs.choose": ("Bestand kiezen", "Choose a file"),
    "docs.send": ("Bestand versturen", "Send the file"),
    "docs.progress": ("Voortgang van het versturen", "Upload progress"),
    "pay.heading": ("Betalen", "Payment"),
    "pay.none": ("Er is nog niets te betalen.", "Nothing to pay yet."),
    "pay.request": ("Betaling vragen", "Ask for a payment"),
    "pay.fee": ("Leges", "Fee"),
    "pay.other": ("Ander bedrag", "Another amount"),
    "pay.amount": ("Bedrag in euro (bij ander bedrag)", "Amount in euros (for another amount)"),
    "pay.description": ("Omschrijving (bij ander bedrag)", "Description (for another amount)"),
    "pay.send": ("Betaling vragen", "Ask for the payment"),
    # The clerk
    "staff.title": ("Afspraken van vandaag", "Today's appointments"),
    "staff.caption": ("Afspraken van uw afdeling vandaag", "Your department's appointments today"),
    "staff.time": ("Tijd", "Time"),
    "staff.subject": ("Onderwerp", "Subject"),
    "staff.state": ("Status", "Status"),
    "staff.action": ("Actie", "Action"),
    "staff.open": ("Gesprek openen", "Open the conversation"),
    "staff.none": ("Vandaag geen afspraken.", "No appointments today."),
    "staff.logout": ("Uitloggen", "Sign out"),
    "staff.call.title": ("Gesprek", "Conversation"),
    "staff.back": ("Terug naar de afspraken", "Back to the appointments"),
    "staff.waiting.heading": ("Wachtkamer", "Waiting room"),
    "staff.waiting.none": ("Er wacht niemand.", "Nobody is waiting."),
    "staff.interpreter.heading": ("Tolk uitnodigen", "Invite an interpreter"),
    "staff.interpreter.intro": (
        "Maak een link die één keer werkt. De tolk ziet en hoort het gesprek en kan chatten, maar ziet geen documenten.",
        "Make a link that works once. The interpreter sees, hears and chats, but sees no documents.",
    ),
    "staff.interpreter.make": ("Tolklink maken", "Make an interpreter link"),
    "staff.interpreter.link": ("Tolklink", "Interpreter link"),
    "state.scheduled": ("Gepland", "Scheduled"),
    "state.waiting": ("Wacht", "Waiting"),
    "state.in_call": ("In gesprek", "In conversation"),
    "state.ended": ("Afgelopen", "Ended"),
    "state.cancelled": ("Geannuleerd", "Cancelled"),
    "state.destroying": ("Wordt vernietigd", "Being destroyed"),
    "login.title": ("Inloggen voor medewerkers", "Sign in for staff"),
    "login.username": ("Gebruikersnaam", "User name"),
    "login.password": ("Wachtwoord", "Password"),
    "login.code": ("Code uit uw authenticator-app", "Code from your authenticator app"),
    "login.submit": ("Inloggen", "Sign in"),
    "login.failed": (
        "Gebruikersnaam, wachtwoord of code klopt niet.",
        "Wrong user name, password or code.",
    ),
    "login.oidc": (
        "Inloggen met het account van de gemeente",
        "Sign in with the municipality's account",
    ),
    "login.limited": ("Te vaak geprobeerd. Wacht een minuut.", "Too many attempts. Wait a minute."),
    # Export (clerk)
    "export.title": ("Dossier exporteren", "Export the dossier"),
    "export.job.title": ("Export", "Export"),
    "export.intro": (
        "Na het exporteren staat het dossier in het zaaksysteem of archief. Balie vernietigt dan meteen zijn eigen kopie.",
        "After the export the dossier is in the records system or archive, and Balie destroys its own copy at once.",
    ),
    "export.target": ("Waarheen?", "Where to?"),
    "export.target.package": (
        "Pakket om te downloaden (ZIP met MDTO, ondertekend)",
        "Package to download (ZIP with MDTO, signed)",
    ),
    "export.target.zgw": ("Zaaksysteem (ZGW API's)", "Case system (ZGW APIs)"),
    "export.zaak": (
        "Zaak (identificatie of URL, alleen voor het zaaksysteem)",
        "Case (identification or URL, case system only)",
    ),
    "export.start": ("Exporteren", "Export"),
    "export.not_ended": (
        "Dit gesprek is nog niet afgelopen. Exporteren kan pas na het gesprek.",
        "This conversation has not ended. You can export after it.",
    ),
    "export.progress": ("Voortgang", "Progress"),
    "export.download": ("Pakket downloaden", "Download the package"),
    "export.retry": ("Opnieuw proberen", "Try again"),
    "export.back": ("Terug naar de afspraken", "Back to the appointments"),
    "export.state.queued": ("Wacht op zijn beurt", "Waiting"),
    "export.state.running": ("Bezig", "Running"),
    "export.state.failed": (
        "Mislukt: er is niets vernietigd. U kunt het opnieuw proberen.",
        "Failed: nothing was destroyed. You can try again.",
    ),
    "export.state.done": (
        "Klaar: het dossier is overgedragen en de kopie in Balie is vernietigd.",
        "Done: the dossier was handed over and Balie's copy destroyed.",
    ),
    "staff.export": ("Exporteren", "Export"),
    "call.after": (
        "Het gesprek is afgelopen. Exporteer nu het dossier.",
        "The conversation has ended. Export the dossier now.",
    ),
    # What the call page's scripts say (handed over as JSON)
    "js.docs.sent": ("Het bestand is verstuurd.", "The file has been sent."),
    "js.docs.new": ("Nieuw document:", "New document:"),
    "js.docs.failed": ("Het bestand is niet verstuurd:", "The file was not sent:"),
    "js.docs.too_large": (
        "het bestand is te groot. Het mag hoogstens zijn:",
        "the file is too large. The most it may be is",
    ),
    "js.docs.download": ("Downloaden", "Download"),
    "js.docs.by": ("van", "from"),
    "js.pay.status.created": ("wordt klaargezet", "being prepared"),
    "js.pay.status.open": ("nog niet betaald", "not paid yet"),
    "js.pay.status.pending": ("betaling wordt verwerkt", "payment being processed"),
    "js.pay.status.paid": ("betaald", "paid"),
    "js.pay.status.failed": ("mislukt", "failed"),
    "js.pay.status.canceled": ("geannuleerd", "cancelled"),
    "js.pay.status.expired": ("verlopen", "expired"),
    "js.pay.pay": ("Nu betalen (opent een nieuw venster)", "Pay now (opens a new window)"),
    "js.pay.requested": ("Er is een betaling gevraagd:", "A payment was requested:"),
    "js.pay.changed": ("Betaling:", "Payment:"),
    "js.pay.failed": (
        "De betaling kon niet worden klaargezet:",
        "The payment could not be prepared:",
    ),
    "js.pay.amount_needed": (
        "Vul een bedrag en een omschrijving in.",
        "Fill in an amount and a description.",
    ),
    "js.role.clerk": ("De medewerker", "The clerk"),
    "js.role.resident": ("De inwoner", "The resident"),
    "js.role.guest": ("De tolk", "The interpreter"),
    "js.you": ("U", "You"),
    "js.video_of": ("Beeld van", "Picture of"),
    "js.devices.denied": (
        "Wij kunnen uw camera of microfoon niet gebruiken. Kies Toestaan in uw browser, of kies een ander apparaat.",
        "We cannot use your camera or microphone. Choose Allow in your browser, or choose another device.",
    ),
    "js.devices.ready": ("Camera en microfoon staan aan.", "Camera and microphone are on."),
    "js.echo.busy": (
        "De test is nu bezet. Probeer het over een paar seconden opnieuw.",
        "The test is busy. Try again in a few seconds.",
    ),
    "js.echo.failed": (
        "De test is niet gelukt. U kunt toch verder.",
        "The test did not work. You can still go on.",
    ),
    "js.echo.stop": ("Test stoppen", "Stop the test"),
    "js.echo.running": (
        "U ziet en hoort uzelf nu terug via de server.",
        "You now see and hear yourself back through the server.",
    ),
    "js.echo.stopped": ("De test is gestopt.", "The test has stopped."),
    "js.knocked": (
        "U staat in de wachtkamer. De medewerker laat u zo binnen.",
        "You are in the waiting room. The clerk will let you in soon.",
    ),
    "js.admitted": ("U bent binnen. Het gesprek begint.", "You are in. The conversation starts."),
    "js.denied": (
        "De medewerker kan u nu niet binnenlaten. Probeer het later opnieuw of bel de gemeente.",
        "The clerk cannot let you in now. Try again later or call the municipality.",
    ),
    "js.ended": (
        "Het gesprek is afgelopen. U kunt deze pagina sluiten.",
        "The conversation has ended. You can close this page.",
    ),
    "js.left": ("U heeft het gesprek verlaten.", "You left the conversation."),
    "js.reconnecting": (
        "De verbinding is weg. Wij proberen opnieuw te verbinden…",
        "The connection dropped. Reconnecting…",
    ),
    "js.reconnected": ("De verbinding is terug.", "The connection is back."),
    "js.peer_joined": ("is in het gesprek.", "is in the conversation."),
    "js.peer_left": ("is weg (verbinding verbroken?).", "has gone (connection lost?)."),
    "js.peer_waiting": ("wacht in de wachtkamer.", "is waiting in the waiting room."),
    "js.admit": ("Binnenlaten", "Let in"),
    "js.deny": ("Weigeren", "Refuse"),
    "js.error": ("Er ging iets mis:", "Something went wrong:"),
    "js.unmute": ("Microfoon aan", "Microphone on"),
    "js.camera_on": ("Camera aan", "Camera on"),
    "js.video_back": ("Beeld weer aan", "Picture back on"),
    "js.no_camera": (
        "Er is geen camera gevonden. U kunt het gesprek met alleen geluid voeren.",
        "No camera found. You can have the conversation with sound only.",
    ),
    "js.interpreter_made": (
        "De tolklink is gemaakt. Stuur hem naar de tolk; hij werkt één keer.",
        "The interpreter link is ready. Send it to the interpreter; it works once.",
    ),
    "js.someone_waiting": (
        "Er wacht iemand in de wachtkamer.",
        "Someone is waiting in the waiting room.",
    ),
}


_OVERSIGHT_TEXTS: dict[str, tuple[str, str]] = {
    # The information manager's and privacy officer's pages (/beheer): navigation
    "oversight.nav": ("Beheer", "Oversight"),
    "oversight.nav.overview": ("Overzicht", "Overview"),
    "oversight.nav.report": ("Verantwoording", "Reconciliation"),
    "oversight.nav.destruction": ("Vernietiging", "Destruction"),
    "oversight.nav.holds": ("Bewaren na termijn", "Holds"),
    "oversight.nav.notices": ("Meldingen", "Notices"),
    "oversight.nav.policy": ("Bewaarbeleid", "Retention policy"),
    "oversight.nav.audit": ("Auditlog", "Audit log"),
    "oversight.forbidden": (
        "Deze pagina is voor informatiebeheerders en de functionaris gegevensbescherming.",
        "This page is for information managers and the data protection officer.",
    ),
}


def _merged(*parts: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """One catalogue from parts kept in separate modules; a key defined twice is a bug."""
    merged: dict[str, tuple[str, str]] = {}
    for part in parts:
        clash = merged.keys() & part.keys()
        if clash:
            raise ValueError(f"text keys defined twice: {sorted(clash)}")
        merged.update(part)
    return merged


CATALOGUE = _merged(
    _CALL_TEXTS, _OVERSIGHT_TEXTS, HOLD_TEXTS, POLICY_TEXTS, REPORT_TEXTS, AUDIT_TEXTS
)


def texts(lang: Language) -> dict[str, str]:
    """Every text in `lang`."""
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in CATALOGUE.items()}


def script_texts(lang: Language) -> dict[str, str]:
    """The texts the page scripts use, without their `js.` prefix."""
    return {key[3:]: value for key, value in texts(lang).items() if key.startswith("js.")}

"""The call in real Chromium with fake camera and microphone.

The resident signs in at the DigiD test IdP and knocks (by keyboard alone), the clerk signs in
and lets them in, both pages decode the other's video (getStats framesDecoded grows), a chat
message reaches the clerk and the dossier (encrypted), and the clerk ends the call. Also: an
interpreter invited by the clerk joins as a third participant; and a server restart in the
middle of a call, after which the pages reconnect, restart ICE and carry on. Every page on
the way passes axe-core, and no page needs inline script (the CSP is not bypassed).
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import pyotp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from PIL import Image
from pypdf import PdfWriter
from sqlalchemy import select

from dossier.chat import list_chat_messages
from dossier.export.verify import verify_package
from dossier.models import ChatMessage, Dossier, DossierState, Payment, Tombstone
from identity.accounts import add_local_account
from server.app import create_app

from browser_axe import assert_accessible
from support import BSN, CLERK, free_port, invitation

CHAT = "Goedemorgen, ik kom voor de geboorteaangifte"


@pytest.fixture
async def clerk_login(settings, store, clock):
    """A clerk of burgerzaken: (user name, password, TOTP for the code)."""
    async with store.sessions() as session, session.begin():
        creds = await add_local_account(
            session, secret_key=settings.secret_key.get_secret_value().encode(),
            username="anna", display_name="Anna de Vries", employee_id="emp-2001",
            role="clerk", department="burgerzaken", now=clock.current,
        )  # fmt: skip
    return "anna", creds.password, pyotp.parse_uri(creds.totp_uri)


@pytest.fixture
def problems() -> list[str]:
    """Script errors and CSP refusals seen on any page; a test ends by asserting none."""
    return []


def watch_for_trouble(page, problems: list[str]) -> None:
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"{page.url}: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )


async def press(page, name: str, tries: int = 40) -> None:
    """Reach the control called `name` with the Tab key alone and press Enter on it."""
    for _ in range(tries):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "() => document.activeElement && document.activeElement.textContent.trim()"
        )
        if focused is not None and focused.startswith(name):
            await page.keyboard.press("Enter")
            return
    raise AssertionError(f"{name!r} cannot be reached with the keyboard")


async def stats(page) -> dict[str, dict]:
    return await page.evaluate("async () => await window.balieCall.stats()")


async def frames(page) -> int:
    return sum(peer["framesDecoded"] for peer in (await stats(page)).values())


async def wait_for_frames(page, more_than: int, *, peers: int = 1, timeout: float = 20.0) -> int:
    """Wait until `peers` participants' video decodes and the total passes `more_than`."""
    async with asyncio.timeout(timeout):
        while True:
            seen = await stats(page)
            decoding = [p for p in seen.values() if p["framesDecoded"] > 0]
            total = sum(p["framesDecoded"] for p in seen.values())
            if len(decoding) >= peers and total > more_than:
                return total
            await asyncio.sleep(0.2)


PHONE = {"width": 375, "height": 740}


async def new_page(browser, problems: list[str], **context_options):
    page = await (await browser.new_context(**context_options)).new_page()
    # A busy machine (CI running two databases' suites) can be slow to start fake devices.
    page.set_default_timeout(60_000)
    watch_for_trouble(page, problems)
    return page


async def resident_knocks(browser, origin: str, token: str, appointment_id, problems):
    """The resident's way from the invitation link to the waiting room, by keyboard alone."""
    resident = await new_page(browser, problems, viewport=PHONE, is_mobile=True, has_touch=True)
    await resident.goto(f"{origin}/i/{token}")
    await resident.get_by_label("Burgerservicenummer").fill(BSN)
    await resident.get_by_label("Substantieel", exact=False).check()
    await resident.get_by_role("button", name="Inloggen").click()
    await resident.wait_for_url(f"**/afspraak/{appointment_id}")
    await assert_accessible(resident)
    await fits_the_screen(resident)
    await resident.get_by_role("button", name="Camera en microfoon aanzetten").wait_for()
    await resident.wait_for_function("!document.getElementById('apparaten-aan').disabled")
    await press(resident, "Camera en microfoon aanzetten")
    await devices_on(resident)
    assert await resident.get_by_label("Camera", exact=True).input_value() != ""
    await press(resident, "Naar de wachtkamer")
    await resident.get_by_role("heading", name="Stap 2: wachtkamer").wait_for()
    await resident.get_by_text("U staat in de wachtkamer", exact=False).wait_for(state="attached")
    await assert_accessible(resident)
    return resident


async def clerk_opens_call(browser, origin: str, login, clock, problems):
    """The clerk signs in, sees the resident waiting in the list, and opens the call."""
    username, password, totp = login
    clerk = await new_page(browser, problems)
    await clerk.goto(f"{origin}/balie")
    await clerk.wait_for_url("**/balie/inloggen")
    await assert_accessible(clerk)
    await clerk.get_by_label("Gebruikersnaam").fill(username)
    await clerk.get_by_label("Wachtwoord").fill(password)
    await clerk.get_by_label("Code uit uw authenticator-app").fill(totp.at(clock.current))
    await clerk.get_by_role("button", name="Inloggen").click()
    await clerk.wait_for_url(f"{origin}/balie")
    row = clerk.get_by_role("row").filter(has_text="geboorteaangifte")
    await row.get_by_text("Wacht", exact=True).wait_for(timeout=15000)
    await assert_accessible(clerk)
    await row.get_by_role("link", name="Gesprek openen").click()
    await start_devices_and_go(clerk, "Naar het gesprek")
    return clerk


async def devices_on(page) -> None:
    """Camera and microphone are on; otherwise fail with what the page said instead."""
    status = page.locator("#status")
    async with asyncio.timeout(30):
        while not (said := (await status.inner_text()).strip()):
            await asyncio.sleep(0.1)
    assert said == "Camera en microfoon staan aan.", f"the page said: {said!r}"


async def start_devices_and_go(page, next_step: str) -> None:
    await page.get_by_role("button", name="Camera en microfoon aanzetten").click()
    await devices_on(page)
    await page.get_by_role("button", name=next_step).click()


async def admit(clerk, who: str) -> None:
    await clerk.get_by_text(f"{who} wacht in de wachtkamer.").wait_for()
    await assert_accessible(clerk)
    await press(clerk, "Binnenlaten")


async def fits_the_screen(page) -> None:
    """Nothing sticks out sideways: no horizontal scrolling on a phone."""
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"page is {width}px wide on a {PHONE['width']}px screen"


async def in_call(store, clock, media_browser, origin, clerk_login, problems):
    token, booked = await invitation(store, clock)
    resident = await resident_knocks(media_browser, origin, token, booked.appointment.id, problems)
    clerk = await clerk_opens_call(media_browser, origin, clerk_login, clock, problems)
    await admit(clerk, "De inwoner")
    await resident.get_by_role("heading", name="Het gesprek").wait_for()
    return booked, resident, clerk


async def test_resident_and_clerk_call_with_video_and_chat(
    media_browser, served, store, clock, clerk_login, problems
):
    booked, resident, clerk = await in_call(
        store, clock, media_browser, served, clerk_login, problems
    )
    # Both decode the other's video, and keep decoding.
    first = {
        "resident": await wait_for_frames(resident, 0),
        "clerk": await wait_for_frames(clerk, 0),
    }
    assert await wait_for_frames(resident, first["resident"] + 10) > first["resident"]
    assert await wait_for_frames(clerk, first["clerk"] + 10) > first["clerk"]
    await assert_accessible(resident)
    await assert_accessible(clerk)
    await fits_the_screen(resident)
    await resident.get_by_role("button", name="Gesprek verlaten").scroll_into_view_if_needed()
    assert await resident.get_by_role("button", name="Gesprek verlaten").is_visible()

    # Chat: typed by the resident, shown to the clerk, stored encrypted in the dossier.
    await resident.get_by_label("Uw bericht").fill(CHAT)
    await resident.keyboard.press("Enter")
    await clerk.locator("#chat-log").get_by_text(CHAT).wait_for()
    await resident.locator("#chat-log").get_by_text(CHAT).wait_for()
    stored = await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
    assert [(m.sender_role, m.text) for m in stored] == [("resident", CHAT)]
    async with store.sessions() as session:
        sealed = (await session.execute(select(ChatMessage.sealed))).scalar_one()
    assert b"geboorteaangifte" not in sealed

    # Sound only: the resident's page stops receiving video (the clerk is asked to stop).
    await resident.get_by_role("button", name="Alleen geluid").click()
    await asyncio.sleep(1.5)
    still = await frames(resident)
    await asyncio.sleep(1.5)
    assert await frames(resident) - still <= 2
    await resident.get_by_role("button", name="Beeld weer aan").click()
    assert await wait_for_frames(resident, still + 10) > still

    # A reload keeps the chat history (from the dossier) and the call comes back.
    await clerk.reload()
    await start_devices_and_go(clerk, "Naar het gesprek")
    await clerk.locator("#chat-log").get_by_text(CHAT).wait_for()
    assert await wait_for_frames(clerk, 0) > 0

    # The clerk ends the call; the resident's page says so.
    await clerk.get_by_role("button", name="Gesprek beëindigen").click()
    await resident.get_by_text("Het gesprek is afgelopen", exact=False).wait_for()
    async with store.sessions() as session:
        assert (await session.get(Dossier, booked.dossier.id)).state == DossierState.ENDED
    assert problems == []


async def test_interpreter_joins_as_third_participant(
    media_browser, served, store, clock, clerk_login, problems
):
    _, resident, clerk = await in_call(store, clock, media_browser, served, clerk_login, problems)
    await clerk.get_by_role("button", name="Tolklink maken").click()
    await clerk.get_by_text("De tolklink is gemaakt", exact=False).wait_for()
    link = await clerk.get_by_label("Tolklink").input_value()
    assert "/g/" in link

    interpreter = await new_page(media_browser, problems)
    await interpreter.goto(link)
    await interpreter.get_by_role("heading", name="Gesprek als tolk").wait_for()
    await assert_accessible(interpreter)
    assert await interpreter.locator("#chat-log li").count() == 0  # no dossier content
    await start_devices_and_go(interpreter, "Naar de wachtkamer")
    await admit(clerk, "De tolk")
    await interpreter.get_by_role("heading", name="Het gesprek").wait_for()
    # A mesh of three: everyone decodes both others.
    for page in (interpreter, clerk, resident):
        await wait_for_frames(page, 0, peers=2)
    await interpreter.get_by_label("Uw bericht").fill("Ik vertaal naar het Arabisch")
    await interpreter.get_by_role("button", name="Versturen").click()
    await resident.locator("#chat-log").get_by_text("Ik vertaal naar het Arabisch").wait_for()
    await assert_accessible(interpreter)
    # The link worked once.
    again = await new_page(media_browser, problems)
    response = await again.goto(link)
    assert response.status == 404
    assert problems == []


async def test_call_survives_a_server_restart(
    media_browser, settings, store, clock, clerk_login, problems
):
    configured = settings.model_copy(update={"port": free_port()})
    origin = configured.public_origin

    async def start() -> web.AppRunner:
        runner = web.AppRunner(create_app(configured, clock=clock), shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", configured.port).start()
        return runner

    runner = await start()
    try:
        booked, resident, clerk = await in_call(
            store, clock, media_browser, origin, clerk_login, problems
        )
        await wait_for_frames(resident, 0)
        ufrags = {peer["iceUfrag"] for peer in (await stats(resident)).values()}

        await runner.cleanup()  # every call socket is closed with 1001
        await resident.get_by_text("De verbinding is weg", exact=False).wait_for()
        during = await frames(resident)
        runner = await start()

        # Back: the socket is open again and the clerk is in the call again.
        await resident.get_by_text("De medewerker is in het gesprek.").wait_for(timeout=20000)
        # Media never went through the server; it carried on, and ICE was restarted.
        assert await wait_for_frames(resident, during + 10) > during
        async with asyncio.timeout(15):
            while {p["iceUfrag"] for p in (await stats(resident)).values()} & ufrags:
                await asyncio.sleep(0.2)
        await wait_for_frames(clerk, await frames(clerk) + 10)
        await resident.get_by_label("Uw bericht").fill("Bent u er nog?")
        await resident.keyboard.press("Enter")
        await clerk.locator("#chat-log").get_by_text("Bent u er nog?").wait_for()
        stored = await list_chat_messages(store, actor=CLERK, dossier_id=booked.dossier.id)
        assert [m.text for m in stored] == ["Bent u er nog?"]
        assert problems == []
    finally:
        await runner.cleanup()


def a_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def a_photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 120, 200)).save(out, "JPEG")
    return out.getvalue()


async def share(page, name: str, mime: str, data: bytes) -> None:
    await page.locator("#bestand").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}]
    )
    await page.get_by_role("button", name="Bestand versturen").click()


async def test_documents_and_a_payment_during_the_call(
    media_browser, served, store, clock, clerk_login, problems
):
    _, resident, clerk = await in_call(store, clock, media_browser, served, clerk_login, problems)
    pdf = a_pdf()
    # The clerk shares a PDF; the resident sends a photo. Both lists show both.
    await share(clerk, "Formulier geboorteaangifte.pdf", "application/pdf", pdf)
    await share(resident, "foto.jpg", "image/jpeg", a_photo())
    for page in (resident, clerk):
        documents = page.locator("#documenten")
        await documents.get_by_role("link", name="Formulier geboorteaangifte.pdf").wait_for()
        await documents.get_by_role("link", name="foto.jpg").wait_for()
    await assert_accessible(resident)
    async with resident.expect_download() as download_info:
        await (
            resident.locator("#documenten")
            .get_by_role("link", name="Formulier geboorteaangifte.pdf")
            .click()
        )
    download = await download_info.value
    assert download.suggested_filename == "Formulier geboorteaangifte.pdf"
    assert Path(await download.path()).read_bytes() == pdf

    # The clerk asks for a payment; the resident pays in a new window at the demo provider.
    await clerk.get_by_label("Leges").select_option(label="Ander bedrag")
    await clerk.get_by_label("Bedrag in euro", exact=False).fill("12,50")
    await clerk.get_by_label("Omschrijving", exact=False).fill("Uittreksel BRP")
    await clerk.get_by_role("button", name="Betaling vragen").click()
    await assert_accessible(clerk)
    pay_link = resident.get_by_role("link", name="Nu betalen", exact=False)
    async with resident.context.expect_page() as checkout_info:
        await pay_link.click()
    checkout = await checkout_info.value
    watch_for_trouble(checkout, problems)
    await checkout.get_by_role("heading", name="Demo-betaling").wait_for()
    await assert_accessible(checkout)
    assert "€ 12,50" in await checkout.locator("main").inner_text()
    await checkout.get_by_role("button", name="Betalen", exact=True).click()
    await checkout.wait_for_url("**/betaling/klaar")

    # Both pages update live: paid.
    for page in (resident, clerk):
        await page.locator("#betalingen").get_by_text("Uittreksel BRP", exact=False).wait_for()
        await page.locator("#betalingen li[data-status=paid]").wait_for(timeout=15000)
    assert await resident.get_by_role("link", name="Nu betalen", exact=False).count() == 0
    async with store.sessions() as session:
        payment = (await session.execute(select(Payment))).scalar_one()
    assert (payment.status, payment.amount_cents) == ("paid", 1250)
    assert problems == []


async def test_clerk_ends_the_call_and_exports_a_package(
    media_browser, served, store, clock, clerk_login, problems
):
    booked, resident, clerk = await in_call(
        store, clock, media_browser, served, clerk_login, problems
    )
    await resident.get_by_label("Uw bericht").fill(CHAT)
    await resident.keyboard.press("Enter")
    await clerk.locator("#chat-log").get_by_text(CHAT).wait_for()
    await share(clerk, "Formulier.pdf", "application/pdf", a_pdf())
    await resident.locator("#documenten").get_by_role("link", name="Formulier.pdf").wait_for()

    await clerk.get_by_role("button", name="Gesprek beëindigen").click()
    await clerk.get_by_role("link", name="Exporteer nu het dossier", exact=False).click()
    await clerk.wait_for_url("**/balie/export/nieuw/**")
    await assert_accessible(clerk)
    await clerk.get_by_label("Pakket om te downloaden", exact=False).check()
    await clerk.get_by_role("button", name="Exporteren").click()
    download_link = clerk.get_by_role("link", name="Pakket downloaden")
    await download_link.wait_for(timeout=30000)
    await clerk.get_by_text("Klaar: het dossier is overgedragen", exact=False).wait_for()
    await assert_accessible(clerk)
    async with clerk.expect_download() as download_info:
        await download_link.click()
    package = Path(await (await download_info.value).path())
    key = await (await clerk.request.get(f"{served}/api/export-key")).text()
    verify_package(package, load_pem_public_key(key.encode()))
    with zipfile.ZipFile(package) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["dossier"]["id"] == str(booked.dossier.id)

    # The dossier's content is gone from Balie: read by the clerk, it answers 410.
    gone = await clerk.request.get(f"{served}/api/dossiers/{booked.dossier.id}")
    assert gone.status == 410
    async with store.sessions() as session:
        tombstone = await session.get(Tombstone, booked.dossier.id)
    assert tombstone.outcome == "exported"
    assert problems == []

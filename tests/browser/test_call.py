"""The call in real Chromium with fake camera and microphone: the resident signs in at the
DigiD test IdP and knocks, the clerk signs in and lets them in, both pages decode the other's
video (getStats framesDecoded grows), a chat message reaches the clerk and the dossier
(encrypted), and the clerk ends the call. Every page on the way passes axe-core."""

from __future__ import annotations

import asyncio

import pyotp
import pytest
from sqlalchemy import select

from dossier.chat import list_chat_messages
from dossier.models import ChatMessage, Dossier, DossierState
from identity.accounts import add_local_account

from browser_axe import assert_accessible
from support import BSN, CLERK, invitation

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


def watch_for_trouble(page, problems: list[str]) -> None:
    """Collect script errors and CSP refusals: the pages run without inline script."""
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
        if focused == name:
            await page.keyboard.press("Enter")
            return
    raise AssertionError(f"{name!r} cannot be reached with the keyboard")


async def frames(page) -> int:
    decoded = await page.evaluate("async () => await window.balieCall.framesDecoded()")
    return sum(decoded.values())


async def wait_for_frames(page, more_than: int, timeout: float = 20.0) -> int:
    async with asyncio.timeout(timeout):
        while (count := await frames(page)) <= more_than:
            await asyncio.sleep(0.2)
    return count


async def test_resident_and_clerk_call_with_video_and_chat(
    media_browser, served, store, clock, clerk_login
):
    token, booked = await invitation(store, clock)
    problems: list[str] = []

    # The resident: DigiD test IdP, then the appointment page, all by keyboard.
    resident_context = await media_browser.new_context(bypass_csp=False)
    resident = await resident_context.new_page()
    watch_for_trouble(resident, problems)
    await resident.goto(f"{served}/i/{token}")
    await resident.get_by_label("Burgerservicenummer").fill(BSN)
    await resident.get_by_label("Substantieel", exact=False).check()
    await resident.get_by_role("button", name="Inloggen").click()
    await resident.wait_for_url(f"**/afspraak/{booked.appointment.id}")
    await assert_accessible(resident)
    await press(resident, "Camera en microfoon aanzetten")
    await resident.get_by_text("Camera en microfoon staan aan.").wait_for()
    assert await resident.get_by_label("Camera", exact=True).input_value() != ""
    await press(resident, "Naar de wachtkamer")
    await resident.get_by_role("heading", name="Stap 2: wachtkamer").wait_for()
    await resident.get_by_text("U staat in de wachtkamer", exact=False).wait_for(state="attached")
    await assert_accessible(resident)

    # The clerk signs in and sees the resident waiting.
    username, password, totp = clerk_login
    clerk_context = await media_browser.new_context()
    clerk = await clerk_context.new_page()
    watch_for_trouble(clerk, problems)
    await clerk.goto(f"{served}/balie")
    await clerk.wait_for_url("**/balie/inloggen")
    await assert_accessible(clerk)
    await clerk.get_by_label("Gebruikersnaam").fill(username)
    await clerk.get_by_label("Wachtwoord").fill(password)
    await clerk.get_by_label("Code uit uw authenticator-app").fill(totp.at(clock.current))
    await clerk.get_by_role("button", name="Inloggen").click()
    await clerk.wait_for_url(f"{served}/balie")
    row = clerk.get_by_role("row").filter(has_text="geboorteaangifte")
    await row.get_by_text("Wacht", exact=True).wait_for(timeout=15000)
    await assert_accessible(clerk)
    await row.get_by_role("link", name="Gesprek openen").click()
    await clerk.get_by_role("button", name="Camera en microfoon aanzetten").click()
    await clerk.get_by_text("Camera en microfoon staan aan.").wait_for()
    await clerk.get_by_role("button", name="Naar het gesprek").click()
    await clerk.get_by_text("De inwoner wacht in de wachtkamer.").wait_for()
    await assert_accessible(clerk)
    await clerk.get_by_role("button", name="Binnenlaten").click()

    # Both decode the other's video, and keep decoding.
    await resident.get_by_role("heading", name="Het gesprek").wait_for()
    first = {
        "resident": await wait_for_frames(resident, 0),
        "clerk": await wait_for_frames(clerk, 0),
    }
    assert await wait_for_frames(resident, first["resident"] + 10) > first["resident"]
    assert await wait_for_frames(clerk, first["clerk"] + 10) > first["clerk"]
    await assert_accessible(resident)
    await assert_accessible(clerk)

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

    # A reload keeps the chat history (from the dossier).
    await clerk.reload()
    await clerk.get_by_role("button", name="Camera en microfoon aanzetten").click()
    await clerk.get_by_role("button", name="Naar het gesprek").click()
    await clerk.locator("#chat-log").get_by_text(CHAT).wait_for()
    # ... and the call comes back: the resident's page offers anew to the reloaded one.
    assert await wait_for_frames(clerk, 0) > 0

    # The clerk ends the call; the resident's page says so.
    await clerk.get_by_role("button", name="Gesprek beëindigen").click()
    await resident.get_by_text("Het gesprek is afgelopen", exact=False).wait_for()
    async with store.sessions() as session:
        assert (await session.get(Dossier, booked.dossier.id)).state == DossierState.ENDED
    assert problems == []
    await resident_context.close()
    await clerk_context.close()

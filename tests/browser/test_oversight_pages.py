"""The information manager's report pages in real Chromium: sign in at /balie/inloggen with a
local account and TOTP, land on /beheer, and every report page passes axe-core (WCAG 2.1 AA)
without a script error or a CSP refusal."""

from __future__ import annotations

import pyotp
import pytest
from integration.test_reports import BATCH, SECRETS, prepare

from identity.accounts import add_local_account

from browser_axe import assert_accessible


@pytest.fixture
async def manager_login(settings, store, clock):
    """An information manager: (user name, password, TOTP for the code)."""
    async with store.sessions() as session, session.begin():
        creds = await add_local_account(
            session, secret_key=settings.secret_key.get_secret_value().encode(),
            username="ilse", display_name="Ilse Informatie", employee_id="emp-im-7",
            role="information_manager", department=None, now=clock.current,
        )  # fmt: skip
    return "ilse", creds.password, pyotp.parse_uri(creds.totp_uri)


async def test_information_manager_pages_pass_axe(browser, served, store, clock, manager_login):
    prepared = await prepare(store, clock)
    username, password, totp = manager_login
    problems: list[str] = []
    page = await (await browser.new_context()).new_page()
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"{page.url}: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    await page.goto(f"{served}/beheer")
    await page.wait_for_url("**/balie/inloggen")
    await page.get_by_label("Gebruikersnaam").fill(username)
    await page.get_by_label("Wachtwoord").fill(password)
    await page.get_by_label("Code uit uw authenticator-app").fill(totp.at(clock.current))
    await page.get_by_role("button", name="Inloggen").click()
    await page.wait_for_url(f"{served}/beheer")
    await page.get_by_role("heading", name="Overzicht bewaren en vernietigen").wait_for()
    await assert_accessible(page)

    # The menu leads to the reconciliation report; another period by the form.
    await page.get_by_role("link", name="Verantwoording", exact=True).click()
    await page.wait_for_url("**/beheer/verantwoording")
    await page.get_by_label("Van (jjjj-mm-dd)").fill("2026-03-01")
    await page.get_by_label("Tot en met (jjjj-mm-dd)").fill("2026-03-31")
    await page.get_by_role("button", name="Tonen").click()
    await page.wait_for_url("**/beheer/verantwoording?van=2026-03-01&tot=2026-03-31")
    violations = page.locator("#overtredingen-tabel tbody tr")
    assert await violations.count() == 4
    await assert_accessible(page)

    # From a violation to the dossier's trail.
    await page.locator(f'a[href="/beheer/dossier/{prepared.unarchived}"]').click()
    await page.wait_for_url(f"**/beheer/dossier/{prepared.unarchived}")
    await page.locator('[data-action="dossier.destroyed"]').wait_for()
    await assert_accessible(page)

    for path in (
        f"/beheer/dossier/{prepared.on_hold}",
        "/beheer/vernietiging",
        f"/beheer/vernietiging/batch/{BATCH}",
        "/beheer/vernietiging/maand/2026-03",
        "/beheer/vernietiging/maand/2026-04",
        "/beheer?lang=en",
        # The other pages of the menu: holds, notices, the policy and the audit log.
        "/beheer/bewaring",
        "/beheer/meldingen",
        "/beheer/beleid",
        "/beheer/beleid?lang=en",
        "/beheer/audit",
    ):
        response = await page.goto(f"{served}{path}")
        assert response is not None
        assert response.status == 200, path
        await assert_accessible(page)
        text = await page.content()
        assert not any(secret in text for secret in SECRETS), path

    # The printable statement: printing hides the menu and the download links.
    await page.goto(f"{served}/beheer/vernietiging/maand/2026-03?lang=nl")
    await page.emulate_media(media="print")
    assert not await page.locator(".balie-header").is_visible()
    assert not await page.locator("#csv").is_visible()
    assert await page.locator("#verklaring").is_visible()
    assert problems == []

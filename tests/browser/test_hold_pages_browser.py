"""Hold and notice pages in real Chromium: axe-core (WCAG 2.1 AA) finds nothing, no CSP error."""

from __future__ import annotations

import datetime as dt

import pyotp

from identity.accounts import add_local_account
from retention.audit import Actor
from retention.holds import approve_hold, request_hold
from retention.notices import issue_notices

from browser_axe import assert_accessible
from support import CLERK, book

REASON = "Bezwaar ontvangen, zaaknummer Z-2026-0042."


async def login(page, served, store, settings, clock, username, role, department):
    async with store.sessions() as session, session.begin():
        creds = await add_local_account(
            session, secret_key=settings.secret_key.get_secret_value().encode(),
            username=username, display_name=username, employee_id=f"emp-{username}",
            role=role, department=department, now=clock.current,
        )  # fmt: skip
    totp = pyotp.parse_uri(creds.totp_uri)
    await page.goto(f"{served}/balie/inloggen")
    await page.get_by_label("Gebruikersnaam").fill(username)
    await page.get_by_label("Wachtwoord").fill(creds.password)
    await page.get_by_label("Code uit uw authenticator-app").fill(totp.at(clock.current))
    await page.get_by_role("button", name="Inloggen").click()
    await page.wait_for_load_state()


async def test_hold_pages_pass_axe(browser, served, store, clock, settings):
    first = await book(store, clock)
    second = await book(store, clock)
    third = await book(store, clock)
    clock.current = first.dossier.deadline - dt.timedelta(days=7)
    await issue_notices(store, now=clock.current)
    until = clock.current + dt.timedelta(days=60)
    held = await request_hold(store, dossier_id=second.dossier.id, ground="woo", reason=REASON,
                              ends_at=until, actor=CLERK)  # fmt: skip
    await request_hold(store, dossier_id=third.dossier.id, ground="court", reason=REASON,
                       ends_at=until, actor=CLERK)  # fmt: skip
    await approve_hold(store, hold_id=held.id, actor=Actor("information_manager", "emp-x"))
    problems: list[str] = []
    context = await browser.new_context()
    page = await context.new_page()
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on(
        "console",
        lambda m: problems.append(f"{page.url}: {m.text}") if m.type == "error" else None,
    )
    await login(page, served, store, settings, clock, "anna", "clerk", "burgerzaken")
    await page.goto(f"{served}/balie")
    await page.locator("#bewaarwaarschuwingen").wait_for()
    await assert_accessible(page)
    await page.goto(f"{served}/balie/bewaring/{first.dossier.id}")
    await assert_accessible(page)
    await page.get_by_label("Klacht").check()
    await page.get_by_label("Toelichting").fill("te kort")
    await page.get_by_label("Bewaren tot en met").fill("2026-06-30")
    await page.get_by_role("button", name="Aanvragen").click()
    await page.wait_for_load_state()
    await assert_accessible(page)
    await page.get_by_label("Toelichting").fill(REASON)
    await page.get_by_role("button", name="Aanvragen").click()
    await page.wait_for_url("**aangevraagd=1")
    await assert_accessible(page)

    im_page = await (await browser.new_context()).new_page()
    im_page.on("pageerror", lambda error: problems.append(f"{im_page.url}: {error}"))
    await login(im_page, served, store, settings, clock, "ilse", "information_manager", None)
    for path in ("/beheer/bewaring", "/beheer/meldingen",
                 "/beheer/bewaring?lang=en", "/beheer/meldingen?lang=en"):  # fmt: skip
        response = await im_page.goto(f"{served}{path}")
        assert response is not None
        assert response.status == 200, path
        await assert_accessible(im_page)
    await im_page.goto(f"{served}/beheer/bewaring?lang=nl")
    await im_page.get_by_role("button", name="Goedkeuren").first.click()
    await im_page.wait_for_url("**gedaan=approved")
    await assert_accessible(im_page)
    assert problems == []

"""The resident's way in, in real Chromium: invitation link -> DigiD test IdP -> appointment
page; and every page on the way passes axe-core with zero violations (WCAG 2.1 AA)."""

from __future__ import annotations

from browser_axe import assert_accessible, violations
from support import BSN, invitation


async def test_invitation_to_appointment_page(browser, served, store, clock):
    token, booked = await invitation(store, clock)
    context = await browser.new_context(bypass_csp=True)  # only so that axe can be injected
    page = await context.new_page()
    await page.goto(f"{served}/i/{token}")
    assert "/test-idp/sso" in page.url
    await assert_accessible(page)
    await page.get_by_label("Burgerservicenummer").fill(BSN)
    await page.get_by_label("Substantieel", exact=False).check()
    await page.get_by_role("button", name="Inloggen").click()
    await page.wait_for_url(f"**/afspraak/{booked.appointment.id}")
    assert await page.get_by_role("heading", level=1).inner_text() == "Uw afspraak"
    await assert_accessible(page)
    await context.close()


async def test_refusal_pages_are_accessible(browser, served, store, clock):
    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    response = await page.goto(f"{served}/i/bestaat-niet")
    assert response.status == 404
    await assert_accessible(page)
    token, _ = await invitation(store, clock)
    await page.goto(f"{served}/i/{token}")
    await page.get_by_label("Burgerservicenummer").fill(BSN)
    await page.get_by_label("Midden", exact=False).check()
    await page.get_by_role("button", name="Inloggen").click()
    await page.wait_for_load_state()
    assert "hoger niveau" in await page.get_by_role("heading", level=1).inner_text()
    await assert_accessible(page)
    await context.close()


async def test_the_accessibility_check_can_fail(browser):
    """A page with known faults must produce violations, or the checks above prove nothing."""
    page = await (await browser.new_context(bypass_csp=True)).new_page()
    await page.set_content("<html><body><img src='x.png'><input type='text'></body></html>")
    found = {v["id"] for v in await violations(page)}
    assert {"image-alt", "label", "html-has-lang"} <= found

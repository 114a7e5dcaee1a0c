"""Running axe-core in a Playwright page: WCAG 2.0/2.1 A and AA rules, zero violations wanted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"


async def violations(page: Any) -> list[dict[str, Any]]:
    """The axe violations of the page as it is now (WCAG 2.1 AA tags)."""
    await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag',"
        " values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    return list(result["violations"])


async def assert_accessible(page: Any) -> None:
    """Fail with every violation's rule, help text and first offending element."""
    found = await violations(page)
    assert found == [], [f"{v['id']}: {v['help']} {v['nodes'][0]['target']}" for v in found]

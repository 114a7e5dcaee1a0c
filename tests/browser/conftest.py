"""Browser tests: the real app on a loopback port, driven by Debian's Chromium via Playwright.

Chromium must be installed (`.ci/run` installs it); a missing browser fails these tests
instead of skipping them, so CI cannot pass without having run them.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from support import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# Flags for a headless browser as root in a sandbox with no outside network.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# A fake camera (a moving test pattern) and microphone (a beep), allowed without asking; and
# host candidates as plain addresses, since there is no mDNS responder in a sandbox.
MEDIA_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


async def _launched(flags: list[str]) -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium package")
    if not AXE.exists():
        pytest.fail(f"axe-core not found at {AXE}: run `npm install`")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield launched
        await launched.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async for launched in _launched(FLAGS):
        yield launched


@pytest.fixture
async def media_browser() -> AsyncIterator[Browser]:
    """Chromium with a fake camera and microphone, for the call pages."""
    async for launched in _launched(FLAGS + MEDIA_FLAGS):
        yield launched


@pytest.fixture
async def served(settings, clock, store) -> AsyncIterator[str]:
    """The app on a loopback port; yields the public origin the browser uses."""
    async with serving(settings, clock) as (_, origin):
        yield origin

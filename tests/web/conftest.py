"""Browser tests: a real server (uvicorn on a free port, the app's lifespan and embedded bus)
and Debian's Chromium driven by Playwright (``executable_path``, never a downloaded browser).

``web`` gives a test its server URL, a fresh browser page (390 px wide by default, a phone)
and the checks every visited page must pass (``await web.check()``): axe-core finds no
serious or critical violation, the page does not scroll sideways at 390 px, and no
JavaScript error (console or uncaught) happened. ``await web.screenshot("home")`` writes
docs/screenshots/home.png at desktop width (the class ``Web``: ``browser.py``). ``http`` is a
client of the same server, for the API calls a journey checks with.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from mercato.app.runtime import Runtime
from tests.support.live_server import serve
from tests.web.browser import CHROMIUM, PHONE, Web


def _chromium_missing() -> bool:
    return not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if _chromium_missing():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def web(runtime: Runtime, browser: Browser) -> AsyncIterator[Web]:
    async with serve(runtime) as url:
        context = await browser.new_context(viewport=PHONE, base_url=url)
        page = await context.new_page()
        page.set_default_timeout(10_000)
        found = Web(url=url, runtime=runtime, page=page)
        page.on("console", found.on_console)
        page.on("pageerror", lambda error: found.errors.append(f"uncaught: {error}"))
        try:
            yield found
        finally:
            await context.close()


@pytest.fixture
async def http(web: Web) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the served store (for the API calls a browser journey checks with)."""
    async with httpx.AsyncClient(base_url=web.url, timeout=30) as client:
        yield client

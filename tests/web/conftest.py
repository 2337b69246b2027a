"""Browser tests: a real server (uvicorn on a free port, the app's lifespan and embedded bus)
and Debian's Chromium driven by Playwright (``executable_path``, never a downloaded browser).

``web`` gives a test its server URL, a fresh browser page (390 px wide by default, a phone)
and the checks every visited page must pass (``await web.check()``): axe-core finds no
serious or critical violation, the page does not scroll sideways at 390 px, and no
JavaScript error (console or uncaught) happened. ``await web.screenshot("home")`` writes
docs/screenshots/home.png at desktop width.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from playwright.async_api import Response as PageResponse

from mercato.app.runtime import Runtime
from tests.support.live_server import serve

CHROMIUM = os.environ.get("MERCATO_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
BLOCKING_IMPACTS = ("serious", "critical")
_axe = Axe()


@dataclass
class Web:
    url: str
    runtime: Runtime
    page: Page
    errors: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # An error page (403, 404) is itself a "failed" load of the document: expected, not a
        # JavaScript error. A failed load of anything the page uses (script, style, image) counts.
        source = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and source == self.page.url:
            return
        self.errors.append(f"console: {message.text} ({source})")

    async def goto(self, path: str) -> PageResponse | None:
        return await self.page.goto(self.url + path)

    async def axe_violations(self) -> list[str]:
        results = await _axe.run(self.page)
        return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
                for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]

    async def sideways_overflow(self) -> int:
        """How many pixels the page is wider than a 390 px viewport (0: no sideways scrolling)."""
        viewport = self.page.viewport_size
        await self.page.set_viewport_size(PHONE)
        try:
            return int(await self.page.evaluate(
                "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
                " - document.documentElement.clientWidth"))
        finally:
            if viewport:
                await self.page.set_viewport_size(viewport)

    async def check(self) -> None:
        """The checks every page the journeys visit must pass."""
        where = self.page.url
        violations = await self.axe_violations()
        assert violations == [], f"axe on {where}: {violations}"
        overflow = await self.sideways_overflow()
        assert overflow <= 0, f"{where} scrolls sideways by {overflow}px at 390 px wide"
        assert self.errors == [], f"JavaScript errors on {where}: {self.errors}"
        self.checked.append(where)

    async def screenshot(self, name: str, *, viewport: dict[str, int] = DESKTOP) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        before = self.page.viewport_size
        await self.page.set_viewport_size(viewport)  # type: ignore[arg-type]
        try:
            await self.page.screenshot(path=str(path), full_page=True)
        finally:
            if before:
                await self.page.set_viewport_size(before)
        return path


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

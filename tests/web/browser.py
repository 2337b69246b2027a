"""The browser tests' page (``Web``: a Playwright page on the served store, with the checks
every visited page must pass) and the people they sign in. The fixtures that make them are in
``conftest.py``."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import ConsoleMessage, Page
from playwright.async_api import Response as PageResponse

from mercato.accounts import service as accounts
from mercato.app.runtime import Runtime
from tests.support.actors import DEFAULT_PASSWORD

V1 = "/api/v1"
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


@dataclass
class Person:
    email: str
    headers: dict[str, str]


async def person(web: Web, http: httpx.AsyncClient, *roles: str) -> Person:
    email = f"{'-'.join(roles) or 'user'}-{uuid.uuid4().hex[:8]}@example.org"
    async with web.runtime.db.transaction() as session:
        await accounts.create_user(session, web.runtime, email=email, password=DEFAULT_PASSWORD,
                                   roles=["user", *roles])
    login = await http.post(f"{V1}/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert login.status_code == 200, login.text
    return Person(email, {"Authorization": f"Bearer {login.json()['access_token']}"})


async def publisher_of(http: httpx.AsyncClient, admin: Person, owner: Person) -> str:
    slug = f"pub-{uuid.uuid4().hex[:8]}"
    created = await http.post(f"{V1}/publishers", headers=admin.headers,
                              json={"slug": slug, "name": f"Studio {slug[-4:]}", "owner_email": owner.email})
    assert created.status_code == 201, created.text
    return slug


async def sign_in(web: Web, who: Person) -> None:
    await web.page.context.clear_cookies()
    await web.goto("/login")
    await web.page.get_by_label("Email").fill(who.email)
    await web.page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    async with web.page.expect_navigation():
        await web.page.get_by_role("button", name="Sign in").click()

"""The foundation in a real browser: the layout passes axe at phone width with no sideways
scrolling and no JavaScript error (CSP violations are console errors), error pages render
in the layout, /api/docs draws the API offline, and a CSRF-less post is refused."""

from __future__ import annotations

from tests.web.browser import Web


async def test_the_layout_passes_the_page_checks(web: Web) -> None:
    await web.goto("/")
    assert await web.page.locator("header.site-header").is_visible()
    await web.check()
    await web.goto("/login")
    await web.check()
    await web.goto("/register")
    await web.check()


async def test_the_check_catches_a_page_that_scrolls_sideways(web: Web) -> None:
    """The guard itself works: a too-wide element is found."""
    await web.goto("/")
    await web.page.evaluate("document.querySelector('main').style.minWidth = '900px'")
    assert await web.sideways_overflow() > 0


async def test_the_404_page_is_in_the_layout(web: Web) -> None:
    response = await web.goto("/there-is-nothing-here")
    assert response is not None and response.status == 404
    assert await web.page.get_by_role("heading", name="Page not found").is_visible()
    assert await web.page.get_by_role("search").count() >= 1
    await web.check()


async def test_api_docs_render_from_vendored_assets(web: Web) -> None:
    outside: list[str] = []
    web.page.on("request", lambda request: outside.append(request.url)
                if not request.url.startswith(web.url) and not request.url.startswith("data:") else None)
    await web.goto("/api/docs")
    await web.page.wait_for_selector(".swagger-ui .info .title", state="attached", timeout=30_000)
    assert "Mercato" in await web.page.locator(".swagger-ui .info .title").inner_text()
    assert outside == []
    assert web.errors == []


async def test_a_form_posted_without_its_csrf_token_is_refused(web: Web) -> None:
    await web.goto("/login")
    await web.page.evaluate("document.querySelector('main input[name=csrf_token]').remove()")
    await web.page.get_by_label("Email").fill("someone@example.org")
    await web.page.get_by_label("Password").fill("whatever it is")
    async with web.page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as info:
        await web.page.get_by_role("button", name="Sign in").click()
    assert (await info.value).status == 403
    assert await web.page.get_by_role("heading", name="Not allowed").is_visible()
    await web.check()

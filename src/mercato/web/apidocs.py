"""``/api/docs``: Swagger UI from the vendored assets (static/vendor/swagger-ui), so it works offline."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from mercato.web.pages import page_router, templates

router = page_router()

# Swagger UI sets style attributes as it draws; scripts stay 'self' only.
DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")


@router.get("/api/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    """The interactive API reference (the OpenAPI document at /api/v1/openapi.json)."""
    html = templates.get_template("apidocs.html").render(openapi_url=request.app.openapi_url)
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP})

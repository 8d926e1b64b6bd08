"""``/docs``: Swagger UI from files installed with the package, so it works on offline hosts.

FastAPI's default page loads Swagger UI from a CDN and is blank without internet; the
``fastapi-offline`` distribution ships the same assets, served here under ``/docs/static``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_STATIC = "/docs/static"


def install_docs(app: FastAPI) -> None:
    """Mount the assets and the two pages (``/docs`` and its OAuth2 redirect)."""
    import fastapi_offline

    assets = os.path.join(os.path.dirname(fastapi_offline.__file__), "static")
    app.mount(DOCS_STATIC, StaticFiles(directory=assets), name="swagger-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

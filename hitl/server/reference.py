"""The API's reference for signed-in readers: `/openapi.json`, and Swagger UI at `/docs`.

Swagger UI's script and style sheet are served from here (the `fastapi-offline` package's
copies), not from a CDN, so the page works on a machine without internet. Its page runs an
inline script, so it goes without the inbox pages' Content-Security-Policy.
"""

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from hitl.checkpoints.stores import Token
from hitl.server.auth import signed_in
from hitl.server.ui import viewer

ASSETS = "/docs-assets"
"""Where Swagger UI's files are served (open, like the inbox's `/static`: no data in them)."""
SWAGGER_FILES = Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Add `/openapi.json`, `/docs` and Swagger UI's files to `app` (made with neither)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    def openapi(request: Request, who: Token = viewer) -> JSONResponse:
        schema: dict[str, Any] = request.app.openapi()
        return JSONResponse(schema)

    @router.get("/docs")
    def swagger_ui(request: Request) -> Response:
        if signed_in(request) is None:  # a browser: sign in, then come back here
            return RedirectResponse("/login?next=%2Fdocs", status_code=303)
        page: HTMLResponse = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title}: API reference",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )
        page.headers["Cache-Control"] = "no-store"
        return page

    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=SWAGGER_FILES), name="docs-assets")

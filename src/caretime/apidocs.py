"""`/docs` (Swagger UI) and `/redoc` served from installed files, so they work offline.

FastAPI's own pages load their scripts from a CDN; a caretime on a closed network showed
blank pages. The scripts come from the `fastapi-offline` package (Swagger UI and ReDoc
bundles shipped inside its wheel): nothing is fetched at install or run time.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, Response

from caretime.errors import NotFound

ASSET_PREFIX = "/docs/assets/"
FAVICON_PATH = "/favicon.ico"
_BUNDLED = Path(str(files("fastapi_offline") / "static"))
# A fixed list: a request can never name another file. Versioned by the installed package,
# so a cached copy lives a day rather than forever.
ASSETS = {
    name: _BUNDLED / name
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
}
CACHE_A_DAY = "public, max-age=86400"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    return get_swagger_ui_html(
        openapi_url=_rooted(request, app.openapi_url or "/openapi.json"),
        title=f"{app.title} - Swagger UI",
        swagger_js_url=_rooted(request, ASSET_PREFIX + "swagger-ui-bundle.js"),
        swagger_css_url=_rooted(request, ASSET_PREFIX + "swagger-ui.css"),
        swagger_favicon_url=_rooted(request, FAVICON_PATH),
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    return get_redoc_html(
        openapi_url=_rooted(request, app.openapi_url or "/openapi.json"),
        title=f"{app.title} - ReDoc",
        redoc_js_url=_rooted(request, ASSET_PREFIX + "redoc.standalone.js"),
        redoc_favicon_url=_rooted(request, FAVICON_PATH),
        with_google_fonts=False,
    )


@router.get(ASSET_PREFIX + "{name}")
async def docs_asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(path, headers={"Cache-Control": CACHE_A_DAY})


def _rooted(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '')}{path}"

"""Static assets served by the app itself (no CDN: caretime may run offline)."""

from __future__ import annotations

from starlette.responses import FileResponse, Response

from caretime.errors import NotFound
from caretime.web.rendering import STATIC_DIR, STATIC_PREFIX
from caretime.web.routing import web_router

router = web_router()
# A fixed list read at start-up: a request can never name a file outside it.
ASSETS = {path.name: path for path in STATIC_DIR.iterdir() if path.suffix in {".js", ".css"}}
# URLs carry a content hash (rendering.static_url), so a cached copy is never stale.
CACHE_FOREVER = "public, max-age=31536000, immutable"
# Browsers ask for /favicon.ico by that name, so its URL has no hash: cached for a day.
FAVICON = STATIC_DIR / "favicon.ico"
CACHE_A_DAY = "public, max-age=86400"


@router.get("/favicon.ico")
async def favicon() -> Response:
    return FileResponse(FAVICON, media_type="image/x-icon", headers={"Cache-Control": CACHE_A_DAY})


@router.get(STATIC_PREFIX + "{name}")
async def asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"no asset {name!r}")
    return FileResponse(path, headers={"Cache-Control": CACHE_FOREVER})

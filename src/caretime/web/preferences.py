"""The viewer's preferences: the time zone every page shows times in."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from starlette.responses import RedirectResponse, Response

from caretime.deps import SettingsDep
from caretime.errors import InvalidInput
from caretime.web.auth import ActorDep, ViewerDep
from caretime.web.routing import web_router
from caretime.web.session import (
    browser_zone,
    chosen_zone,
    forget_zone,
    parse_zone,
    write_zone,
    zone_names,
)

router = web_router()
# Shown first: the zones most US healthcare teams work in.
COMMON_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "UTC",
)


@router.get("/ui/preferences")
async def preferences(viewer: ViewerDep) -> Response:
    chosen = chosen_zone(viewer.request)
    return viewer.render(
        "preferences.html",
        common_zones=COMMON_ZONES,
        all_zones=sorted(zone_names()),
        chosen=chosen.key if chosen else "",
        browser=browser_zone(viewer.request),
    )


@router.post("/ui/preferences")
async def save_preferences(
    _viewer: ActorDep, settings: SettingsDep, tz: Annotated[str, Form()] = ""
) -> Response:
    """A zone name pins it; an empty choice goes back to following the browser."""
    response = RedirectResponse("/ui/preferences", status_code=303)
    if not tz:
        forget_zone(response)
        return response
    zone = parse_zone(tz)
    if zone is None:
        raise InvalidInput(f"{tz!r} is not a time zone name such as America/New_York")
    write_zone(response, zone, settings)
    return response

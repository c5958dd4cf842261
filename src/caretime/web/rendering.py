"""Templates and the filters they use: instants shown in the viewer's zone, static asset URLs."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from caretime.clock import ensure_utc, isoformat_z
from caretime.web import display

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
STATIC_PREFIX = "/ui/static/"
# Pages show patient data: never cached, never framed, scripts and styles from here only.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

# (label, path): the dashboard's sections, in the order the navigation shows them.
NAVIGATION = (
    ("Overview", "/"),
    ("Calls", "/ui/calls"),
    ("Batches", "/ui/batches"),
    ("Booking", "/ui/booking"),
    ("Shifts", "/ui/shifts"),
    ("Caregivers", "/ui/caregivers"),
    ("Phone", "/ui/phone"),
    ("Activity", "/ui/activity"),
    ("Webhooks", "/ui/webhooks"),
    ("Jobs", "/ui/jobs"),
)


@pass_context
def local_time(context: Context, value: datetime | None, fmt: str = "%a %d %b %H:%M") -> str:
    """An instant in the viewer's zone (the `zone` of the page being rendered)."""
    if value is None:
        return "—"
    zone: ZoneInfo = context["zone"]
    return value.astimezone(zone).strftime(fmt)


def zone_time(value: datetime | None, zone_name: str, fmt: str = "%H:%M %Z") -> str:
    """An instant in a given zone, e.g. the patient's own local time beside the viewer's."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(zone_name)).strftime(fmt)


def instant(value: str) -> datetime:
    """An ISO 8601 instant stored as text (e.g. in a JSON history) → an aware datetime."""
    return ensure_utc(datetime.fromisoformat(value))


def iso_utc(value: datetime | None) -> str:
    return "" if value is None else isoformat_z(value)


def static_url(name: str) -> str:
    """The asset's URL with a content hash, so browsers may cache it for a year."""
    return f"{STATIC_PREFIX}{name}?v={_content_hash(name)}"


@cache
def _content_hash(name: str) -> str:
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(WEB_DIR / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(local=local_time, zone_time=zone_time, iso=iso_utc, instant=instant)
    env.filters.update(phone=display.phone, named=display.named)
    env.globals.update(static_url=static_url, navigation=NAVIGATION, timedelta=timedelta)
    return env


templates = Jinja2Templates(env=_environment())


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers={**PAGE_HEADERS, **(headers or {})}
    )

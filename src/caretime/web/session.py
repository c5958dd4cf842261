"""The dashboard's session cookie: signed, HttpOnly, SameSite, holding a CSRF token and, once
signed in, the opaque token of a server-side session (tenancy.sessions), never the API key;
plus the viewer's display time zone (a plain cookie: it is no secret).

Every request resumes the server-side session, so signing out or revoking the key behind it
ends it at once, even for a copy of the cookie.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from caretime.config import Settings

SESSION_COOKIE = "caretime_session"
TZ_COOKIE = "caretime_tz"
# Written by static/app.js from Intl.DateTimeFormat: the zone the viewer's computer is in.
BROWSER_TZ_COOKIE = "caretime_browser_tz"
SESSION_MAX_AGE = 12 * 3600
TZ_MAX_AGE = 365 * 24 * 3600
DEFAULT_TZ = "UTC"
_SALT = "caretime.web.session"


@dataclass(frozen=True)
class WebSession:
    csrf_token: str
    # The server-side session's token (tenancy.sessions); None before sign-in.
    token: str | None = None

    @classmethod
    def anonymous(cls) -> WebSession:
        return cls(csrf_token=secrets.token_urlsafe(32))

    def signed_in(self, token: str) -> WebSession:
        # A fresh CSRF token at sign-in: a token planted before sign-in is worth nothing after.
        return WebSession(csrf_token=secrets.token_urlsafe(32), token=token)

    def accepts(self, submitted: str | None) -> bool:
        return submitted is not None and hmac.compare_digest(
            submitted.encode(), self.csrf_token.encode()
        )


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.session_secret.get_secret_value(), salt=_SALT)


def read_session(request: Request, settings: Settings) -> WebSession | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw is None:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    token = data.get("sid")
    return WebSession(csrf_token=data["csrf"], token=token if isinstance(token, str) else None)


def write_session(response: Response, session: WebSession, settings: Settings) -> None:
    value = _serializer(settings).dumps({"csrf": session.csrf_token, "sid": session.token})
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def viewer_zone(request: Request) -> ZoneInfo:
    """The zone chosen on the preferences page, else the browser's own (app.js reports it),
    else UTC (until the browser has said, e.g. without JavaScript)."""
    return chosen_zone(request) or browser_zone(request) or ZoneInfo(DEFAULT_TZ)


def chosen_zone(request: Request) -> ZoneInfo | None:
    return parse_zone(request.cookies.get(TZ_COOKIE))


def browser_zone(request: Request) -> ZoneInfo | None:
    return parse_zone(request.cookies.get(BROWSER_TZ_COOKIE))


def parse_zone(name: str | None) -> ZoneInfo | None:
    # Only names from the tz database: a cookie must not steer ZoneInfo to arbitrary paths.
    return ZoneInfo(name) if name in zone_names() else None


@cache
def zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def forget_zone(response: Response) -> None:
    """Back to the browser's own zone."""
    response.delete_cookie(TZ_COOKIE, path="/")


def write_zone(response: Response, zone: ZoneInfo, settings: Settings) -> None:
    response.set_cookie(
        TZ_COOKIE,
        zone.key,
        max_age=TZ_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        path="/",
    )

"""Who may read the operational endpoints (`/metrics`, `/health/ready`, a worker's metrics).

They hold no patient data, but queue depths, job kinds and the database's health help an
attacker map a deployment. They are public by default (a scraper or load balancer on a
private network needs no secret); with `CARETIME_METRICS_TOKEN` set they require
`Authorization: Bearer <token>`. `/health` (liveness) always stays public.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Request
from pydantic import SecretStr

from caretime.errors import PROBLEM_JSON, Unauthorized, problem_type

REFUSAL = "send CARETIME_METRICS_TOKEN as 'Authorization: Bearer <token>'"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def token_accepted(token: SecretStr | None, authorization: str | None) -> bool:
    if token is None:
        return True
    expected = f"Bearer {token.get_secret_value()}".encode()
    return hmac.compare_digest((authorization or "").strip().encode(), expected)


async def require_operator_token(request: Request) -> None:
    """Dependency of the operational routes: a 401 problem without the metrics token."""
    token = request.app.state.runtime.settings.metrics_token
    if not token_accepted(token, request.headers.get("authorization")):
        raise Unauthorized(REFUSAL)


def guarded(app: WsgiApp, token: SecretStr | None) -> WsgiApp:
    """The same rule for a worker's WSGI metrics server."""

    def guard(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if token_accepted(token, environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        headers = [("Content-Type", PROBLEM_JSON), ("WWW-Authenticate", "Bearer")]
        start_response("401 Unauthorized", headers)
        body = {"type": problem_type("unauthorized"), "title": Unauthorized.title}
        return [json.dumps({**body, "status": 401, "detail": REFUSAL}).encode()]

    return guard

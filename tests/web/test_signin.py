"""Dashboard sessions: sign-in with an API key, signed cookies, CSRF on every form, sign-out."""

from __future__ import annotations

import base64
import json
import time
import zlib
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from caretime.clock import FrozenClock
from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from caretime.web.session import SESSION_COOKIE
from tests.support import TEST_API_KEY, make_tenant
from tests.web.support import csrf_from, sign_in


async def test_pages_redirect_to_sign_in_without_a_session(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/ui/jobs")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/signin?next=/ui/jobs"


async def test_htmx_requests_without_a_session_are_sent_to_sign_in(
    anon_client: httpx.AsyncClient,
) -> None:
    response = await anon_client.get("/ui/jobs/table", headers={"HX-Request": "true"})
    assert response.headers["hx-redirect"] == "/ui/signin?next=/ui/jobs/table"


async def test_sign_in_sets_a_signed_http_only_same_site_cookie(
    anon_client: httpx.AsyncClient,
) -> None:
    form = await anon_client.get("/ui/signin?next=/ui/jobs")
    response = await anon_client.post(
        "/ui/signin",
        data={"api_key": TEST_API_KEY, "csrf_token": csrf_from(form.text), "next": "/ui/jobs"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/jobs"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    page = await anon_client.get("/")
    assert page.status_code == 200
    assert "default" in page.text  # the tenant's name in the header
    assert page.headers["cache-control"] == "no-store"


async def test_wrong_key_is_refused_with_the_form_again(anon_client: httpx.AsyncClient) -> None:
    form = await anon_client.get("/ui/signin")
    response = await anon_client.post(
        "/ui/signin", data={"api_key": "ct_not_a_key", "csrf_token": csrf_from(form.text)}
    )
    assert response.status_code == 401
    assert "unknown API key" in response.text
    assert (await anon_client.get("/")).status_code == 303


async def test_sign_in_without_the_form_token_is_refused(anon_client: httpx.AsyncClient) -> None:
    await anon_client.get("/ui/signin")
    response = await anon_client.post(
        "/ui/signin", data={"api_key": TEST_API_KEY, "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert (await anon_client.get("/")).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
async def test_next_never_leaves_the_site(anon_client: httpx.AsyncClient, target: str) -> None:
    form = await anon_client.get("/ui/signin")
    response = await anon_client.post(
        "/ui/signin",
        data={"api_key": TEST_API_KEY, "csrf_token": csrf_from(form.text), "next": target},
    )
    assert response.headers["location"] == "/"


async def test_post_without_csrf_token_is_rejected(anon_client: httpx.AsyncClient) -> None:
    await sign_in(anon_client)
    response = await anon_client.post("/ui/preferences", data={"tz": "America/Chicago"})
    assert response.status_code == 403
    assert "stale or forged" in response.text


async def test_csrf_token_is_accepted_from_the_htmx_header(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    response = await anon_client.post(
        "/ui/preferences", data={"tz": "America/Chicago"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 303


async def test_sign_in_rotates_the_csrf_token(anon_client: httpx.AsyncClient) -> None:
    form = await anon_client.get("/ui/signin")
    before = csrf_from(form.text)
    after = await sign_in(anon_client)
    assert before != after
    response = await anon_client.post("/ui/preferences", data={"tz": "UTC", "csrf_token": before})
    assert response.status_code == 403


async def test_tampered_cookie_is_not_a_session(anon_client: httpx.AsyncClient) -> None:
    await sign_in(anon_client)
    payload, signature = anon_client.cookies[SESSION_COOKIE].rsplit(".", 1)
    forged = "B" if signature[0] == "A" else "A"
    anon_client.cookies.set(SESSION_COOKIE, f"{payload}.{forged}{signature[1:]}")
    assert (await anon_client.get("/")).status_code == 303


async def test_sign_out_ends_the_session(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    response = await anon_client.post("/ui/signout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/signin"
    assert (await anon_client.get("/")).status_code == 303


def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://caretime.test")


def cookie_payload(cookie: str) -> str:
    """What anyone holding the cookie can read: it is signed, not encrypted."""
    payload = cookie.split(".")[0] if not cookie.startswith(".") else cookie.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return (zlib.decompress(raw) if cookie.startswith(".") else raw).decode()


async def test_the_cookie_never_carries_the_api_key(anon_client: httpx.AsyncClient) -> None:
    await sign_in(anon_client)
    readable = json.loads(cookie_payload(anon_client.cookies[SESSION_COOKIE]))
    assert TEST_API_KEY not in json.dumps(readable)
    assert set(readable) == {"csrf", "sid"}


async def test_a_copied_cookie_is_refused_after_sign_out(app: FastAPI) -> None:
    async with client_of(app) as viewer, client_of(app) as thief:
        token = await sign_in(viewer)
        thief.cookies.set(SESSION_COOKIE, viewer.cookies[SESSION_COOKIE])
        assert (await thief.get("/")).status_code == 200
        await viewer.post("/ui/signout", data={"csrf_token": token})
        assert (await thief.get("/")).status_code == 303
        assert (
            (await thief.get("/ui/jobs", headers={"HX-Request": "true"}))
            .headers["hx-redirect"]
            .startswith("/ui/signin")
        )


async def test_a_copied_cookie_is_refused_once_the_key_is_revoked(
    app: FastAPI, runtime: Runtime
) -> None:
    _, key = await make_tenant(runtime, name="clinic")
    async with client_of(app) as viewer, client_of(app) as thief:
        await sign_in(viewer, key=key)
        thief.cookies.set(SESSION_COOKIE, viewer.cookies[SESSION_COOKIE])
        assert (await thief.get("/")).status_code == 200
        async with transaction(runtime.sessions) as session:
            tenant = await tenancy.require_tenant(session, "clinic")
            await tenancy.revoke_key(session, tenant.id, key[:10], now=runtime.clock.now())
        assert (await thief.get("/")).status_code == 303
        assert (await viewer.get("/")).status_code == 303


async def test_signing_in_again_ends_the_previous_session(app: FastAPI) -> None:
    async with client_of(app) as viewer, client_of(app) as thief:
        await sign_in(viewer)
        thief.cookies.set(SESSION_COOKIE, viewer.cookies[SESSION_COOKIE])
        await sign_in(viewer)
        assert (await viewer.get("/")).status_code == 200
        assert (await thief.get("/")).status_code == 303


async def test_sessions_end_on_the_server_after_twelve_hours(
    anon_client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await sign_in(anon_client)
    assert (await anon_client.get("/")).status_code == 200
    clock.advance(timedelta(hours=12, seconds=1))
    assert (await anon_client.get("/")).status_code == 303


async def test_revoking_the_key_signs_the_dashboard_out(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key = await make_tenant(runtime, name="clinic")
    await sign_in(anon_client, key=key)
    assert (await anon_client.get("/")).status_code == 200
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.require_tenant(session, "clinic")
        await tenancy.revoke_key(session, tenant.id, key[:10], now=runtime.clock.now())
    assert (await anon_client.get("/")).status_code == 303


async def test_sessions_expire(
    anon_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in(anon_client)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + timedelta(hours=13).total_seconds())
    assert (await anon_client.get("/")).status_code == 303


async def test_api_keeps_its_paths(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.get("/health")).json() == {"status": "ok"}
    assert (await anon_client.get("/docs")).status_code == 200
    assert (await anon_client.get("/metrics")).status_code == 200
    schema = (await anon_client.get("/openapi.json")).json()
    assert not [path for path in schema["paths"] if path == "/" or path.startswith("/ui")]


async def test_static_assets_are_served_and_cached(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get("/ui/static/htmx.min.js")
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    assert (await anon_client.get("/ui/static/..%2Fsession.py")).status_code == 404

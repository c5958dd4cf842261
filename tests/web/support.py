"""Builders for dashboard tests: sign in through the real form, read tokens out of pages."""

from __future__ import annotations

import re

import httpx

from tests.support import TEST_API_KEY

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    assert match is not None, "the page has no CSRF field"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, *, key: str = TEST_API_KEY) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    form = await client.get("/ui/signin")
    response = await client.post(
        "/ui/signin", data={"api_key": key, "csrf_token": csrf_from(form.text), "next": "/"}
    )
    assert response.status_code == 303, response.text
    page = await client.get("/ui/preferences")
    return csrf_from(page.text)

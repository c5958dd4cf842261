"""The live-server fixture serves the real app over real HTTP."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer
from tests.support import TEST_API_KEY, bearer


def test_live_server_answers_over_http(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/tenants/me", headers=bearer(TEST_API_KEY)).status_code == 200
        assert http.get("/tenants/me").status_code == 401

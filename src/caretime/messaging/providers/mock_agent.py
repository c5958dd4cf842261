"""A mock AI voice-agent platform, for tests and the demo, beside the simulator.

It takes caretime's signed call requests, refuses any whose Standard Webhooks signature does
not verify (401), keeps the accepted ones, and reports each call's outcome back to caretime
(`POST {outcome_url}` with the tenant's API key): first `in_progress`, then an outcome chosen
by the number's last digit, as the simulator does: 9 no answer, 8 voicemail, 7 a callback
requested for the next day at 10:00 local time, 6 opted out, otherwise reached.

    caretime mock-agent --secret whsec_... --api-key ct_... --port 8701
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class MockAgent:
    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/calls", self._take, methods=["POST"]),
            Route("/calls", self._list, methods=["GET"]),
        ])  # fmt: skip

    async def _take(self, request: Request) -> Response:
        body = await request.body()
        try:
            call = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.received.append(call)
        self.pending.append(call)
        return JSONResponse({"accepted": True}, status_code=202)

    async def _list(self, request: Request) -> Response:
        return JSONResponse(self.received)

    async def report_pending(self, http: httpx.AsyncClient) -> int:
        """Report an outcome for every call taken since the last time; returns how many."""
        taken, self.pending = self.pending, []
        for call in taken:
            await http.post(call["outcome_url"], json={"status": "in_progress"})
            await http.post(call["outcome_url"], json=outcome_for(call))
        return len(taken)


def outcome_for(call: dict[str, Any]) -> dict[str, Any]:
    """The outcome a number's last digit stands for (see the module's docstring)."""
    digit = str(call.get("to", ""))[-1:]
    if digit == "9":
        return {"status": "no_answer"}
    if digit == "8":
        return {"status": "voicemail"}
    if digit == "7":
        return {"status": "completed", "disposition": "callback_requested",
                "callback_at": _tomorrow_at_ten(call).isoformat()}  # fmt: skip
    if digit == "6":
        return {"status": "completed", "disposition": "opted_out"}
    return {"status": "completed", "disposition": "reached", "summary": "spoke with the patient"}


def _tomorrow_at_ten(call: dict[str, Any]) -> datetime:
    local = datetime.fromisoformat(call["local_time"]).astimezone(ZoneInfo(call["tz"]))
    return datetime.combine(local.date() + timedelta(days=1), time(10), local.tzinfo)


async def report_forever(agent: MockAgent, api_key: str, every: float) -> None:
    """The demo's loop: report what was taken every `every` seconds."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        while True:
            await asyncio.sleep(every)
            try:
                await agent.report_pending(http)
            except httpx.HTTPError as exc:
                print(json.dumps({"event": "report_failed", "error": type(exc).__name__}))

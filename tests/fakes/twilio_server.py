"""A Twilio-compatible server for loopback, run as its own process so that killing caretime
leaves it (and its record of what it was asked) alive:

    python -m tests.fakes.twilio_server --port 8123

`POST /2010-04-01/Accounts/{sid}/Messages.json` and `.../Calls.json` answer like Twilio
(201, a new sid, status `queued`) after `delay` seconds; from the `stall_after`-th accepted
request on, requests hang until the stall is lifted (a provider that stopped answering, so a
test can kill a worker with requests in flight). Every request is logged, with the time it
arrived and, once answered, the sid it got. Control: `GET /_requests`, `POST /_config`
(JSON: `delay`, `stall_after`; `null` lifts), `POST /_reset`. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Logged:
    kind: str
    to: str
    body: str
    arrived: float
    sid: str | None = None
    answered: float | None = None


@dataclass
class FakeTwilio:
    delay: float = 0.0
    stall_after: int | None = None
    requests: list[Logged] = field(default_factory=list)
    accepted: int = 0
    unstalled: asyncio.Event = field(default_factory=asyncio.Event)
    sids: itertools.count[int] = field(default_factory=itertools.count)

    async def create(self, request: Request) -> JSONResponse:
        form = await request.form()
        kind = "sms" if request.url.path.endswith("/Messages.json") else "voice"
        body = str(form.get("Body") or form.get("Twiml") or "")
        logged = Logged(kind, str(form.get("To", "")), body, time.time())
        self.requests.append(logged)
        if self.delay:
            await asyncio.sleep(self.delay)
        while self.stall_after is not None and self.accepted >= self.stall_after:
            self.unstalled.clear()
            await self.unstalled.wait()
        self.accepted += 1
        prefix = "SM" if kind == "sms" else "CA"
        logged.sid, logged.answered = f"{prefix}{next(self.sids):032d}", time.time()
        return JSONResponse({"sid": logged.sid, "status": "queued"}, status_code=201)

    async def log(self, request: Request) -> JSONResponse:
        return JSONResponse([asdict(logged) for logged in self.requests])

    async def configure(self, request: Request) -> JSONResponse:
        settings: dict[str, Any] = await request.json()
        if "delay" in settings:
            self.delay = float(settings["delay"] or 0)
        if "stall_after" in settings:
            self.stall_after = settings["stall_after"]
            self.unstalled.set()  # waiting requests look again
        return JSONResponse({"delay": self.delay, "stall_after": self.stall_after})

    async def reset(self, request: Request) -> JSONResponse:
        self.requests.clear()
        self.accepted = 0
        return JSONResponse({})


def app(fake: FakeTwilio) -> Starlette:
    accounts = "/2010-04-01/Accounts/{sid}"
    return Starlette(
        routes=[
            Route(accounts + "/Messages.json", fake.create, methods=["POST"]),
            Route(accounts + "/Calls.json", fake.create, methods=["POST"]),
            Route("/_requests", fake.log),
            Route("/_config", fake.configure, methods=["POST"]),
            Route("/_reset", fake.reset, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeTwilio(delay=args.delay)
    uvicorn.run(app(fake), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

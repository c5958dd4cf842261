"""One turn's HTTP: POST each due delivery, signed, concurrently, with a 5 s limit each,
through one pooled client per process (`http_client`), so connections are kept alive.

Only the status code, the latency and an error class are kept: never the body of the answer.
Redirects are not followed (a redirect is an answer without a 2xx, and following one could
lead a signed body somewhere its owner never registered).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from caretime.destinations import InternalAddress, guarded_transport
from caretime.events.webhooks.signing import signed_headers

if TYPE_CHECKING:
    from caretime.runtime import Runtime

TIMEOUT = httpx.Timeout(5.0)
# Deliveries in flight to one endpoint at once (across a turn's batch).
CONCURRENCY = 32
# Headers and body leave in separate writes: without TCP_NODELAY, Nagle holds the body until
# the receiver's delayed ACK (~40 ms) on every request. Measured: 200 deliveries to a loopback
# receiver, 2.2-3.8 s with Nagle, 0.95-1.4 s without, on this loaded machine.
_NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
# One client per endpoint per process, kept between turns: its connections stay alive. A
# client per turn opened a new connection per delivery in flight; one client for all
# endpoints made httpcore scan every pooled connection (a syscall each) for every request.
# Measured: docs/events.md "Throughput".
_LIMITS = httpx.Limits(
    max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY, keepalive_expiry=30
)
_CLIENTS = "webhooks.http"


@dataclass(frozen=True)
class Target:
    id: str
    url: str
    secret: str
    rate_limit: int | None


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    message_id: str
    body: str


@dataclass(frozen=True)
class Answer:
    delivery_id: int
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def http_client(runtime: Runtime, endpoint_id: str) -> httpx.AsyncClient:
    """The process's client for one endpoint, made on first use, kept in the runtime's
    services and closed with it. Bound to the event loop that made it: another loop gets its
    own set."""
    loop = asyncio.get_running_loop()
    held = runtime.services.get(_CLIENTS)
    if held is None or held[0] is not loop:
        held = runtime.services[_CLIENTS] = (loop, {})
        runtime.on_close.append(lambda: _close_all(loop, held[1]))
    clients: dict[str, httpx.AsyncClient] = held[1]
    client = clients.get(endpoint_id)
    if client is None or client.is_closed:
        env = runtime.settings.env
        transport = guarded_transport(env=env, limits=_LIMITS, socket_options=_NO_DELAY)
        client = clients[endpoint_id] = httpx.AsyncClient(timeout=TIMEOUT, transport=transport)
    return client


async def _close_all(
    loop: asyncio.AbstractEventLoop, clients: dict[str, httpx.AsyncClient]
) -> None:
    if asyncio.get_running_loop() is not loop:
        return  # the sockets of a finished loop are gone with it
    for client in clients.values():
        await client.aclose()


async def send_all(
    http: httpx.AsyncClient, target: Target, outgoing: Sequence[Outgoing]
) -> list[Answer]:
    if not outgoing:
        return []
    gate = asyncio.Semaphore(CONCURRENCY)
    return list(await asyncio.gather(*(_send(http, gate, target, o) for o in outgoing)))


async def _send(
    http: httpx.AsyncClient, gate: asyncio.Semaphore, target: Target, outgoing: Outgoing
) -> Answer:
    async with gate:
        started = time.perf_counter()
        headers = signed_headers(target.secret, outgoing.message_id, outgoing.body)
        try:
            response = await http.post(target.url, content=outgoing.body, headers=headers)
        except httpx.TimeoutException:
            return _failed(outgoing, started, "timed out after 5 s")
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, InternalAddress):  # the URL now resolves inside
                return _failed(outgoing, started, f"refused: {exc}")
            return _failed(outgoing, started, "could not connect: ConnectError")
        except httpx.HTTPError as exc:
            return _failed(outgoing, started, f"could not connect: {type(exc).__name__}")
        error = None if response.is_success else f"answered {response.status_code}"
        return Answer(outgoing.delivery_id, response.status_code, _ms(started), error)


def _failed(outgoing: Outgoing, started: float, error: str) -> Answer:
    return Answer(outgoing.delivery_id, None, _ms(started), error)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)

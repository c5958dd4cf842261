"""Where caretime may send a tenant's HTTP requests (webhooks, the voice agent): http(s)
only, https outside development and tests, no credentials in the URL, and in production never
a loopback, link-local or cloud-metadata address.

The URL is checked when it is set (`check_url`, a 422 the tenant can read) and again at every
connection (`guarded_transport`): a host whose DNS answer changes after the check (DNS
rebinding) is refused at connect time, on the very address the socket would have used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import httpcore
import httpx

from caretime.errors import InvalidInput

# Metadata services that are not link-local (AWS IPv6, Alibaba Cloud).
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


def _refuse(detail: str) -> InvalidInput:
    return InvalidInput(detail, errors=[{"loc": ["body", "url"], "msg": detail}])


async def check_url(url: str, *, env: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refuse(
            "the URL must start with https:// (or http:// in development) and name a host"
        )
    if parts.username is not None or parts.password is not None:
        raise _refuse(
            "the URL must not contain credentials; use the signing secret to authenticate"
        )
    if parts.scheme == "http" and env == "production":
        raise _refuse("webhook URLs must use https:// in production")
    if env == "production":
        await _check_addresses(parts.hostname, parts.port or 443)
    return url.strip()


async def _check_addresses(host: str, port: int) -> None:
    try:
        addresses = await _resolve(host, port)
    except OSError:
        raise _refuse(f"the host {host!r} does not resolve") from None
    for ip in addresses:
        if _internal(ip):
            raise _refuse(_internal_reason(host, ip))


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(address[0]) for *_, address in found]


def _internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    special = ip.is_link_local or ip.is_loopback or ip.is_unspecified or ip.is_multicast
    return special or ip in _METADATA


def _internal_reason(host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"the host {host!r} resolves to {ip}, a loopback, link-local or metadata address"


class InternalAddress(httpcore.ConnectError):
    """A connection refused before it was made: the host resolved to an internal address."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses internal addresses, and connects to the address it
    checked, so no second lookup can answer differently. TLS still verifies the certificate
    against the host name (httpcore passes the URL's host to start_tls, not the address)."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await _resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"the host {host!r} does not resolve") from exc
        for ip in addresses:
            if _internal(ip):
                raise InternalAddress(_internal_reason(host, ip))
        return await self._inner.connect_tcp(
            str(addresses[0]), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not a destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    *, env: str, limits: httpx.Limits, socket_options: Sequence[httpcore.SOCKET_OPTION] = ()
) -> httpx.AsyncHTTPTransport:
    """An httpx transport for tenant-given URLs; in production every connection goes through
    the address check. Development and tests reach loopback receivers as before."""
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=socket_options)
    if env == "production":
        # httpx builds its pool without a way to pass a network backend; the pool it would
        # have made is rebuilt with the same settings and the guarded backend.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            socket_options=socket_options,
            network_backend=_GuardedBackend(),
        )
    return transport

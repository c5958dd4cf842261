"""Where webhooks may go: http(s) only, https outside development and tests, no credentials
in the URL, and in production never a loopback, link-local or cloud-metadata address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

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
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise _refuse(f"the host {host!r} does not resolve") from None
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if (
            ip.is_link_local
            or ip.is_loopback
            or ip.is_unspecified
            or ip.is_multicast
            or ip in _METADATA
        ):
            raise _refuse(
                f"the host {host!r} resolves to {ip}, a loopback, link-local or metadata address"
            )

"""Listening sockets bound before anything is announced or started.

A process that cannot have its port must say so in one line and stop, before it prints a
banner, migrates a database or starts workers: binding first is the only honest check.
"""

from __future__ import annotations

import errno
import socket


class CannotListen(Exception):
    """The address cannot be listened on; the message says why, in the operator's words."""


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or CannotListen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise explain(exc, host, port) from exc


def explain(exc: OSError, host: str, port: int) -> CannotListen:
    """The failure to bind host:port, said in one line."""
    return CannotListen(_reason(exc, host, port))


def _reason(exc: OSError, host: str, port: int) -> str:
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}: no such host or address"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use on {host}: stop what uses it or choose another"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where}: ports below 1024 need privileges"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine"
    return f"cannot listen on {where}: {exc.strerror or exc}"

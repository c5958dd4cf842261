"""Helpers for tests: keyword-only builders and small conveniences."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from caretime.db import transaction
from caretime.observability import THIRD_PARTY_LOGGERS, configure_logging
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy

TEST_API_KEY = "ct_test_bootstrap_key"


async def make_tenant(runtime: Runtime, *, name: str) -> tuple[str, str]:
    """Create a tenant with one key; returns (tenant_id, plaintext key)."""
    async with transaction(runtime.sessions) as session:
        tenant = await tenancy.create_tenant(session, name, now=runtime.clock.now())
        _, key = await tenancy.create_key(session, tenant, now=runtime.clock.now())
    return tenant.id, key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def logging_as_served(level: str) -> Iterator[logging.StreamHandler[io.StringIO]]:
    """configure_logging as `caretime serve` calls it at `level`, its handler writing into a
    buffer (the handler's stream); the configuration before it is restored after."""
    root = logging.getLogger()
    names = ("caretime", *THIRD_PARTY_LOGGERS)
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names})
    configure_logging(level, as_json=True)
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())
    yield handler
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level_number in saved[2].items():
        logging.getLogger(name).setLevel(level_number)

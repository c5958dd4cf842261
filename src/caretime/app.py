"""create_app(): the composition root — routers, error handlers, start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from sqlalchemy.exc import IntegrityError

from caretime import apidocs, health, migrate, web
from caretime.booking.router import router as booking_router
from caretime.clock import Clock
from caretime.config import Settings, get_settings
from caretime.db import transaction
from caretime.demo import load_demo_data
from caretime.direct_routes import serve_directly
from caretime.dispatch.health import dispatcher_check
from caretime.dispatch.pool import WorkerPool
from caretime.edge import EdgeMiddleware
from caretime.errors import Unauthorized, install_error_handlers
from caretime.events.router import router as events_router
from caretime.events.webhooks.router import router as webhooks_router
from caretime.messaging.router import router as messaging_router
from caretime.models import import_all_handlers
from caretime.openapi import complete_openapi
from caretime.operator_access import require_operator_token
from caretime.outreach.router import router as outreach_router
from caretime.outreach.series_router import router as series_router
from caretime.policy.calendar import load_calendars
from caretime.retention.prune import ensure_scheduled as ensure_prune_scheduled
from caretime.routeindex import include_indexed
from caretime.runtime import Runtime, freeze_startup_heap
from caretime.shifts.router import router as shifts_router
from caretime.tenancy import numbers
from caretime.tenancy import service as tenancy
from caretime.tenancy.auth import current_policy, current_tenant, key_uses_of, policy_read_with
from caretime.tenancy.keyuse import KeyUses
from caretime.tenancy.router import router as tenancy_router
from caretime.tenancy.service import StoredPolicyInvalid

log = logging.getLogger("caretime.app")

# FastAPI's native OpenTelemetry, off: caretime's metrics are Prometheus (observability) and
# its logs are kept free of PHI, while FastAPI's would record exception messages (which can
# hold the input that caused them). On, it asked on every request whether a provider had
# been configured: ~5 µs, an eighth of a bare FastAPI `/health`.
NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}

API_DESCRIPTION = """
Scheduling and outreach engine for healthcare operations: patient call campaigns that respect
time zones and calling laws, single calls, appointment booking with expiring holds, and
open-shift fan-out to caregivers. Authenticate with `Authorization: Bearer <API key>`.
Errors are RFC 9457 `application/problem+json`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    runtime: Runtime | None = None,
    freeze_heap: bool = False,
    database_prepared: bool = False,
) -> FastAPI:
    """The app; `freeze_heap` is for a process that serves only it (see freeze_startup_heap);
    `database_prepared` when the caller ran prepare_database already (`caretime serve` does,
    once, before it starts its processes)."""
    runtime = runtime or Runtime.build(settings or get_settings(), clock)
    import_all_handlers()
    app = FastAPI(
        title="caretime",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=_lifespan,
        telemetry=NO_TELEMETRY,
        # Served by apidocs from installed files: FastAPI's own pages need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.freeze_heap = freeze_heap
    app.state.database_prepared = database_prepared
    app.state.readiness_checks = {
        "database": health.database_check,
        "dispatcher": dispatcher_check,
    }
    install_error_handlers(app)
    # Request ids and metrics, unhandled errors, the body limit and the input guard: one
    # layer (see caretime.edge), answering before routing, parsing and authentication.
    app.add_middleware(EdgeMiddleware, max_body_bytes=runtime.settings.max_body_bytes)
    # Probes first, as the app's own routes: an included router costs every request it
    # serves FastAPI's bookkeeping for it (~7 µs, a sixth of a bare `/health`), and the
    # routes carry their tags and dependencies themselves. Each domain's routes behind a
    # check of the path's first segment (routeindex).
    app.router.routes.extend(health.router.routes)
    for router in (
        apidocs.router,
        tenancy_router,
        booking_router,
        messaging_router,
        shifts_router,
        series_router,  # before /calls/{call_id}: /calls/series is not an id
        outreach_router,
        events_router,
        webhooks_router,
        web.router,
    ):
        include_indexed(app, router)
    serve_directly(app)
    complete_openapi(
        app,
        {
            current_tenant: [Unauthorized],
            current_policy: [StoredPolicyInvalid],
            policy_read_with: [StoredPolicyInvalid],
            require_operator_token: [Unauthorized],
        },
    )
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    if not app.state.database_prepared:
        await prepare_database(runtime)
    load_calendars()
    settings = runtime.settings
    if settings.workers:
        await ensure_prune_scheduled(runtime)
    pool = WorkerPool.start(
        runtime, count=settings.workers, concurrency=settings.worker_concurrency
    )
    key_uses = key_uses_of(runtime)
    flusher = asyncio.create_task(key_uses.flush_every())
    if app.state.freeze_heap:
        freeze_startup_heap()
    yield
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    await _stop_within_grace(pool, settings.shutdown_grace_seconds)
    await _last_flush(key_uses)
    await runtime.close()


async def _last_flush(key_uses: KeyUses) -> None:
    """Keys' last uses not yet written; a database gone by now loses only those minutes."""
    try:
        await key_uses.flush()
    except Exception as exc:
        log.warning("key_use_flush_failed", extra={"fields": {"error": type(exc).__name__}})


async def _stop_within_grace(pool: WorkerPool, seconds: float) -> None:
    """Let running jobs finish for the grace period, then cancel them: their leases lapse and
    another worker runs them again (jobs run at least once, effects happen once)."""
    try:
        await asyncio.wait_for(pool.stop(), timeout=seconds)
    except TimeoutError:
        log.warning("worker_stop_cancelled", extra={"fields": {"grace_seconds": seconds}})


async def prepare_database(runtime: Runtime) -> None:
    """SQLite migrates itself on start; PostgreSQL is migrated by `caretime migrate`."""
    if runtime.settings.is_sqlite:
        await migrate.upgrade(runtime.engine)
    if runtime.settings.api_key is not None:
        await _bootstrap_key(runtime)
        if runtime.settings.demo_data:
            await load_demo_data(runtime)
    await _sending_numbers(runtime)


class StartupRefused(Exception):
    """caretime must not start as configured; the message says why in one line."""


async def _sending_numbers(runtime: Runtime) -> None:
    """Give configured numbers to their tenants; refuse Twilio where tenants would share one
    (replies would reach whichever tenant owns it, whoever they answer)."""
    settings = runtime.settings
    twilio = "twilio" in (settings.sms_provider, settings.voice_provider)
    if not (twilio or settings.tenant_numbers or settings.twilio_from):
        return  # nothing to give or check: start without touching the database
    async with transaction(runtime.sessions) as session:
        await numbers.assign_configured(session, runtime.settings, now=runtime.clock.now())
        unnumbered = await numbers.tenants_without_number(session)
    refusal = numbers.twilio_refusal(runtime.settings, unnumbered)
    if refusal is not None:
        raise StartupRefused(refusal)


async def _bootstrap_key(runtime: Runtime) -> None:
    key = runtime.settings.api_key
    assert key is not None
    for attempt in range(2):
        try:
            async with transaction(runtime.sessions) as session:
                await tenancy.ensure_bootstrap_key(
                    session,
                    runtime.settings.default_tenant,
                    key.get_secret_value(),
                    now=runtime.clock.now(),
                )
            return
        except IntegrityError:
            # Another process created the tenant or key at the same moment; try once more.
            if attempt:
                raise

"""The `caretime` command: serve, migrate, and operator tools for tenants and keys."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from caretime import migrate as migrations
from caretime import serving
from caretime.app import StartupRefused, prepare_database
from caretime.config import Settings, get_settings
from caretime.db import transaction
from caretime.dispatch import cli as dispatch_cli
from caretime.errors import CaretimeError
from caretime.fielderrors import field_errors
from caretime.listen import CannotListen, bind
from caretime.messaging.providers.mock_agent import MockAgent, report_forever
from caretime.observability import configure_logging
from caretime.outreach.cli import app as outreach_app
from caretime.retention import cli as retention_cli
from caretime.runtime import Runtime
from caretime.shifts.cli import import_app
from caretime.tenancy import numbers as tenant_numbers
from caretime.tenancy import service as tenancy

app = typer.Typer(
    help="caretime: healthcare outreach, booking and shift fill.", no_args_is_help=True
)
tenants_app = typer.Typer(help="Create and list tenants (organisations).", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(dispatch_cli.jobs_app, name="jobs")
app.add_typer(retention_cli.app)
app.add_typer(import_app, name="import")
app.add_typer(outreach_app)
console = Console(soft_wrap=True)
# As much of a key as `caretime keys list` shows (its stored prefix).
KEY_SHOWN = 10
T = TypeVar("T")


def load_settings() -> Settings:
    """Settings from the environment, or a readable refusal (e.g. unsafe production defaults)."""
    try:
        return get_settings()
    except ValidationError as exc:
        for error in field_errors(exc.errors()):
            console.print(f"[red]configuration error:[/red] {error['msg']}")
        raise typer.Exit(2) from exc


def run_in_session(work: Callable[[AsyncSession, Runtime], Awaitable[T]]) -> T:
    """Run one unit of work against the configured database, committing on success."""

    async def main() -> T:
        runtime = Runtime.build(load_settings())
        try:
            if runtime.settings.is_sqlite:
                await migrations.upgrade(runtime.engine)
            async with transaction(runtime.sessions) as session:
                return await work(session, runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except CaretimeError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes sharing the port (PostgreSQL only); each also runs "
            "CARETIME_WORKERS dispatcher workers.",
        ),
    ] = 1,
) -> None:
    """Run the API, the dashboard and in-process workers."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    _refuse_processes_on_sqlite(settings, processes)
    # Bind before anything else: a busy port stops here, before the banner, the migration
    # and the workers.
    listening = listen_or_exit(host, port)
    _refuse_unsafe_start(settings)
    _print_banner(settings, host, port, processes)
    try:
        serving.serve(settings, listening, processes)
    except serving.ProcessFailedToStart as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _refuse_processes_on_sqlite(settings: Settings, processes: int) -> None:
    if processes > 1 and settings.is_sqlite:
        console.print(
            f"[red]error:[/red] --processes {processes} needs PostgreSQL: SQLite lets one "
            "process write; serve with --processes 1 or set CARETIME_DATABASE_URL to PostgreSQL",
            highlight=False,
        )
        raise typer.Exit(2)


def listen_or_exit(host: str, port: int) -> socket.socket:
    try:
        return bind(host, port)
    except CannotListen as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc


def _refuse_unsafe_start(settings: Settings) -> None:
    """Prepare the database as start-up will, and stop with one line if it refuses."""

    async def main() -> None:
        runtime = Runtime.build(settings)
        try:
            await prepare_database(runtime)
        finally:
            await runtime.close()

    try:
        asyncio.run(main())
    except StartupRefused as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _print_banner(settings: Settings, host: str, port: int, processes: int) -> None:
    base = f"http://{host}:{port}"
    console.print(f"[bold green]caretime[/bold green] serving on {base}")
    workers = f"{settings.workers} dispatcher worker(s)" if settings.workers else "no workers"
    console.print(f"  processes  {processes}, each with the API and {workers}", highlight=False)
    console.print(f"  dashboard  {base}/")
    console.print(f"  API docs   {base}/docs")
    console.print(f"  database   {settings.database_url.split('@')[-1]}")
    if settings.api_key is not None:
        # Only a prefix: terminals are scrolled back, recorded and shared.
        shown = settings.api_key.get_secret_value()[:KEY_SHOWN]
        console.print(
            f"  API key    {shown}... from CARETIME_API_KEY (tenant {settings.default_tenant!r})"
        )
        console.print(
            f'  try        curl -H "Authorization: Bearer $CARETIME_API_KEY" {base}/tenants/me'
        )


@app.command("mock-agent")
def mock_agent(
    secret: Annotated[str, typer.Option(help="The whsec_ secret PUT /tenants/me/agent gave.")],
    api_key: Annotated[str, typer.Option(help="The tenant's API key, to report outcomes.")],
    host: str = "127.0.0.1",
    port: int = 8701,
    every: Annotated[float, typer.Option(help="Report outcomes every N seconds.")] = 5.0,
) -> None:
    """Run the mock AI voice agent (demo): it verifies caretime's signed call requests at
    POST /calls and reports outcomes back by the number's last digit."""
    agent = MockAgent(secret)
    server = uvicorn.Server(uvicorn.Config(agent.app(), host=host, port=port, log_level="warning"))

    async def run() -> None:
        reporter = asyncio.create_task(report_forever(agent, api_key, every))
        try:
            await server.serve()
        finally:
            reporter.cancel()

    console.print(f"mock voice agent: POST http://{host}:{port}/calls")
    asyncio.run(run())


@app.command()
def migrate() -> None:
    """Apply database migrations (PostgreSQL; SQLite migrates itself on start)."""

    async def main() -> None:
        runtime = Runtime.build(load_settings())
        try:
            await migrations.upgrade(runtime.engine)
        finally:
            await runtime.close()

    asyncio.run(main())
    console.print("database is at the latest revision")


@tenants_app.command("create")
def tenants_create(name: str) -> None:
    """Create a tenant."""

    async def work(session: AsyncSession, runtime: Runtime) -> str:
        tenant = await tenancy.create_tenant(session, name, now=runtime.clock.now())
        return tenant.id

    console.print(f"created tenant {name!r} ({run_in_session(work)})")


@tenants_app.command("numbers")
def tenants_numbers(
    name: str,
    numbers: Annotated[list[str], typer.Argument(help="Its numbers, the sending one first.")],
) -> None:
    """Set the numbers a tenant sends from (replies to them reach this tenant)."""

    async def work(session: AsyncSession, runtime: Runtime) -> list[str]:
        owner = await tenancy.require_tenant(session, name)
        return await tenant_numbers.replace_numbers(
            session, owner.id, numbers, now=runtime.clock.now()
        )

    console.print(f"tenant {name!r} sends from {', '.join(run_in_session(work))}")


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants."""
    from sqlalchemy import select

    from caretime.tenancy.models import Tenant

    async def work(session: AsyncSession, _runtime: Runtime) -> list[Tenant]:
        return list((await session.execute(select(Tenant).order_by(Tenant.name))).scalars())

    table = Table("id", "name", "created")
    for tenant in run_in_session(work):
        table.add_row(tenant.id, tenant.name, tenant.created_at.isoformat())
    console.print(table)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""

    async def work(session: AsyncSession, runtime: Runtime) -> tuple[str, str]:
        owner = await tenancy.require_tenant(session, tenant)
        key, plaintext = await tenancy.create_key(
            session, owner, now=runtime.clock.now(), name=name
        )
        return key.id, plaintext

    key_id, plaintext = run_in_session(work)
    console.print(f"key {key_id} for tenant {tenant!r} (shown once, store it now):")
    typer.echo(plaintext)


@keys_app.command("list")
def keys_list(tenant: Annotated[str, typer.Option(help="Tenant name.")]) -> None:
    """List a tenant's keys (prefixes only)."""

    async def work(session: AsyncSession, _runtime: Runtime) -> list[tuple[str, ...]]:
        owner = await tenancy.require_tenant(session, tenant)
        return [
            (k.id, k.prefix, k.name, "revoked" if k.revoked_at else "active")
            for k in await tenancy.list_keys(session, owner.id)
        ]

    table = Table("id", "prefix", "name", "state")
    for row in run_in_session(work):
        table.add_row(*row)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id or displayed prefix.")],
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
) -> None:
    """Revoke an API key; requests with it get 401 from then on."""

    async def work(session: AsyncSession, runtime: Runtime) -> str:
        owner = await tenancy.require_tenant(session, tenant)
        revoked = await tenancy.revoke_key(session, owner.id, key, now=runtime.clock.now())
        return revoked.id

    console.print(f"revoked {run_in_session(work)}")

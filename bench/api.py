"""What authentication and the request transaction cost: authenticated `GET /tenants/me`
against the unauthenticated `GET /health` of the same server (the ceiling), on SQLite and
PostgreSQL, over real HTTP with 16 concurrent clients."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _harness import caretime_server, closed_loop, postgres_database

KEY = "ct_bench_key"
CLIENTS = 16
REQUESTS = 3000


async def measure(url: str) -> None:
    async def health(http: httpx.AsyncClient, _: int) -> httpx.Response:
        return await http.get("/health")

    async def me(http: httpx.AsyncClient, _: int) -> httpx.Response:
        return await http.get("/tenants/me")

    ceiling = await closed_loop(CLIENTS, REQUESTS, health, base_url=url)
    authed = await closed_loop(
        CLIENTS, REQUESTS, me, base_url=url, headers={"Authorization": f"Bearer {KEY}"}
    )
    print(f"  GET /health      {ceiling.summary()}")
    print(f"  GET /tenants/me  {authed.summary()}")
    print(f"  authenticated / ceiling = {authed.per_second / ceiling.per_second:.2f}")


def main() -> None:
    with postgres_database("caretime_bench_api") as pg_url:
        for label, database_url in (
            ("SQLite", f"sqlite+aiosqlite:///{Path('var/bench-api.db').resolve()}"),
            ("PostgreSQL", pg_url),
        ):
            Path("var/bench-api.db").unlink(missing_ok=True)
            print(f"{label}:")
            env = {"CARETIME_DATABASE_URL": database_url, "CARETIME_API_KEY": KEY}
            with caretime_server(env) as url:
                asyncio.run(measure(url))


if __name__ == "__main__":
    main()

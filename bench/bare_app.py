"""The bare twins of `bench/api.py`: plain FastAPI endpoints doing the least the same work
needs, on the same database, served by uvicorn with the same settings as `caretime serve`.
They are the ceiling each caretime endpoint's ratio is read against.

- `GET /health`: `{"status": "ok"}`, nothing else.
- `GET /select/{id}`: one indexed SELECT (a call by its primary key) in its own connection.
- `POST /insert`: a JSON body validated by a model, one INSERT under a unique constraint
  (409 when the slot is taken), committed.
- `POST /update`: a JSON body validated by a model, one conditional UPDATE, committed.

No authentication, no middleware, no logging, no events. Run by `bench/api.py` as
`uvicorn bare_app:app` with `BARE_DATABASE_URL` set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

TABLES = (
    "CREATE TABLE IF NOT EXISTS bare_reservations (provider_id VARCHAR(64) NOT NULL, "
    "slot_start TIMESTAMP NOT NULL, client_id VARCHAR(200) NOT NULL, "
    "PRIMARY KEY (provider_id, slot_start))",
    "CREATE TABLE IF NOT EXISTS bare_offers (phone VARCHAR(32) PRIMARY KEY, "
    "shift_id VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, reply VARCHAR(1600))",
)
# caretime's default pool size (max(10, worker_concurrency) = 32): with 16 load connections
# a pool of 10 opened and closed overflow connections per request, slowing the twin alone.
POOL_SIZE = 32


def _engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_size=POOL_SIZE, max_overflow=20)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class Reservation(BaseModel):
    provider_id: str = Field(max_length=64)
    slot_start: AwareDatetime
    client_id: str = Field(min_length=1, max_length=200)


class Reply(BaseModel):
    sender: str = Field(alias="from", max_length=32)
    body: str = Field(max_length=1600)
    shift_id: str | None = None


def make_app(database_url: str) -> FastAPI:
    """The twins on `database_url` (bench/asgi_requests.py builds one per database)."""
    engine = _engine(database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            for statement in TABLES:
                await connection.execute(text(statement))
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.engine = engine  # for an in-process bench that counts the twin's statements

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/select/{call_id}")
    async def select_one(call_id: str) -> dict[str, Any]:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT id, status, scheduled_at FROM calls WHERE id = :id"),
                    {"id": call_id},
                )
            ).first()
        if row is None:
            raise HTTPException(404)
        return {"id": row.id, "status": row.status, "scheduled": row.scheduled_at}

    @app.post("/insert", status_code=201)
    async def insert_one(body: Reservation) -> dict[str, Any]:
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO bare_reservations (provider_id, slot_start, client_id) "
                        "VALUES (:provider_id, :slot_start, :client_id)"
                    ),
                    {**body.model_dump(), "slot_start": body.slot_start.replace(tzinfo=None)},
                )
        except IntegrityError:
            raise HTTPException(409, "slot taken") from None
        return {"provider_id": body.provider_id, "slot_start": body.slot_start, "status": "held"}

    @app.post("/update")
    async def update_one(reply: Reply) -> dict[str, Any]:
        async with engine.begin() as connection:
            result = await connection.execute(
                text(
                    "UPDATE bare_offers SET status = 'declined', reply = :body "
                    "WHERE phone = :phone AND status IN ('open', 'declined')"
                ),
                {"body": reply.body, "phone": reply.sender},
            )
        action = "declined" if result.rowcount else "unmatched"  # type: ignore[attr-defined]
        return {"intent": "decline", "action": action, "at": datetime.now().isoformat()}

    return app


app = make_app(os.environ.get("BARE_DATABASE_URL", "sqlite+aiosqlite:///./var/bare.db"))

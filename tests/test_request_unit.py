"""The request's unit of work (`deps.SessionDep`, `deps.ReaderDep`): a write is committed
before its response is sent and rolled back when the endpoint fails; a reader connection goes
back to the pool when the endpoint returns, whatever it returned."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import select, text

from caretime.db import transaction
from caretime.deps import ReaderDep, SessionDep
from caretime.runtime import Runtime
from caretime.tenancy.models import Tenant
from tests.support import make_tenant


def _app(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime

    @app.post("/rename/{name}")
    async def rename(name: str, session: SessionDep, fail: bool = False) -> dict[str, str]:
        tenant = (await session.scalars(select(Tenant))).one()
        tenant.name = name
        await session.flush()
        if fail:
            raise HTTPException(409, "refused after the change was flushed")
        return {"name": name}

    @app.get("/read")
    async def read(reader: ReaderDep, fail: bool = False) -> dict[str, int]:
        one = int((await reader.execute(text("SELECT 1"))).scalar_one())
        if fail:
            raise HTTPException(404, "nothing here")
        return {"one": one}

    return app


async def _tenant_name(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        return (await session.scalars(select(Tenant.name))).one()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    await make_tenant(runtime, name="before")
    transport = httpx.ASGITransport(app=_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_write_is_committed_before_its_response_arrives(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert (await http.post("/rename/after")).status_code == 200
    assert await _tenant_name(runtime) == "after"


async def test_a_write_whose_endpoint_fails_leaves_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    assert (await http.post("/rename/after", params={"fail": "true"})).status_code == 409
    assert await _tenant_name(runtime) == "before"


@pytest.mark.parametrize("fail", [False, True])
async def test_a_reader_connection_goes_back_to_the_pool(
    http: httpx.AsyncClient, runtime: Runtime, fail: bool
) -> None:
    pool = runtime.read_engine.sync_engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    answered = await http.get("/read", params={"fail": str(fail).lower()})
    assert answered.status_code == (404 if fail else 200)
    assert pool.checkedout() == before  # type: ignore[attr-defined]

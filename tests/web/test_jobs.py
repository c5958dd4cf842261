"""The jobs page and the overview's dispatcher health: tenant-scoped lists, retry and cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from caretime.db import transaction
from caretime.dispatch import enqueue
from caretime.dispatch.models import Job
from caretime.runtime import Runtime
from caretime.tenancy import service as tenancy
from tests.support import make_tenant
from tests.web.support import sign_in


async def _enqueue(runtime: Runtime, tenant_id: str | None, **kwargs: Any) -> int:
    async with transaction(runtime.sessions) as session:
        job = await enqueue(
            session,
            kwargs.pop("kind", "tests.web.noop"),
            {},
            run_at=runtime.clock.now() + kwargs.pop("delay", timedelta(hours=1)),
            tenant_id=tenant_id,
            **kwargs,
        )
    return job.id


async def _set_status(runtime: Runtime, job_id: int, **values: Any) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(update(Job).where(Job.id == job_id).values(**values))


async def _job(runtime: Runtime, job_id: int) -> Job:
    async with transaction(runtime.sessions) as session:
        return (await session.scalars(select(Job).where(Job.id == job_id))).one()


async def _default_tenant(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        return (await tenancy.require_tenant(session, runtime.settings.default_tenant)).id


async def test_jobs_page_lists_only_the_viewers_jobs(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    mine = await _enqueue(runtime, await _default_tenant(runtime), kind="tests.web.mine")
    other_tenant, _ = await make_tenant(runtime, name="other")
    await _enqueue(runtime, other_tenant, kind="tests.web.theirs")
    await _enqueue(runtime, None, kind="tests.web.system")
    await sign_in(anon_client)
    page = await anon_client.get("/ui/jobs?status=queued")
    assert f'id="job-{mine}"' in page.text
    assert "tests.web.mine" in page.text
    assert "tests.web.theirs" not in page.text
    assert "tests.web.system" not in page.text


async def test_cancel_a_queued_job(anon_client: httpx.AsyncClient, runtime: Runtime) -> None:
    job_id = await _enqueue(runtime, await _default_tenant(runtime))
    token = await sign_in(anon_client)
    response = await anon_client.post(f"/ui/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 303
    assert (await _job(runtime, job_id)).status == "cancelled"


async def test_cancel_another_tenants_job_is_not_found(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    other_tenant, _ = await make_tenant(runtime, name="other")
    job_id = await _enqueue(runtime, other_tenant)
    token = await sign_in(anon_client)
    response = await anon_client.post(f"/ui/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert (await _job(runtime, job_id)).status == "queued"


async def test_cancel_a_running_job_is_a_conflict_shown_as_an_alert(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    job_id = await _enqueue(runtime, await _default_tenant(runtime))
    await _set_status(runtime, job_id, status="running")
    token = await sign_in(anon_client)
    response = await anon_client.post(
        f"/ui/jobs/{job_id}/cancel", headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    assert response.status_code == 409
    assert response.headers["hx-retarget"] == "#alerts"
    assert "only queued jobs can be cancelled" in response.text


async def test_retry_a_failed_job_makes_it_due_now_with_fresh_attempts(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    job_id = await _enqueue(runtime, await _default_tenant(runtime))
    await _set_status(runtime, job_id, status="failed", attempts=5, finished_at=runtime.clock.now())
    token = await sign_in(anon_client)
    failed = await anon_client.get("/ui/jobs?status=failed")
    assert f'id="retry-job-{job_id}"' in failed.text
    response = await anon_client.post(f"/ui/jobs/{job_id}/retry", data={"csrf_token": token})
    assert response.status_code == 303
    job = await _job(runtime, job_id)
    assert (job.status, job.attempts, job.run_at) == ("queued", 0, runtime.clock.now())


async def test_retry_refuses_when_a_live_job_has_the_same_dedupe_key(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    tenant_id = await _default_tenant(runtime)
    failed = await _enqueue(runtime, tenant_id, dedupe_key="call:1")
    await _set_status(runtime, failed, status="failed")
    await _enqueue(runtime, tenant_id, dedupe_key="call:1")
    token = await sign_in(anon_client)
    response = await anon_client.post(f"/ui/jobs/{failed}/retry", data={"csrf_token": token})
    assert response.status_code == 409
    assert (await _job(runtime, failed)).status == "failed"


async def test_overview_shows_dispatcher_health(
    anon_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    tenant_id = await _default_tenant(runtime)
    await _enqueue(runtime, tenant_id)
    await _enqueue(runtime, tenant_id, delay=-timedelta(minutes=5))
    failed = await _enqueue(runtime, tenant_id)
    await _set_status(runtime, failed, status="failed")
    await sign_in(anon_client)
    page = (await anon_client.get("/")).text
    assert '<dd data-stat="queued">2</dd>' in page
    assert '<dd data-stat="overdue">1</dd>' in page
    assert '<dd data-stat="failed">1</dd>' in page

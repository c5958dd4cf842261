"""Batches: upload a CSV, preview the planned schedule (a dry run), then commit it."""

from __future__ import annotations

import re
import secrets
from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import File, Form, UploadFile
from starlette.responses import RedirectResponse, Response

from caretime.clock import ensure_utc
from caretime.deps import ClockDep, SessionDep
from caretime.errors import InvalidInput
from caretime.outreach import service
from caretime.outreach.intake import csv_header_problem, csv_rows
from caretime.outreach.schemas import BatchOptions
from caretime.web import outreach_queries
from caretime.web.auth import ActorDep, Viewer, ViewerDep
from caretime.web.charts import count_by_hour, floor_hour, hour_chart, tick_bars
from caretime.web.forms import build
from caretime.web.routing import web_router

router = web_router()
# A dashboard upload, not a bulk import: larger files go through the API or `caretime plan`.
MAX_CSV_BYTES = 5 * 1024 * 1024
CHART_HOURS = 48
_PARTICULARS = re.compile(r"\bcall_[0-9a-f]+|\d{4}-\d\d-\d\dT[\d:]+Z|at (?:index|item|line) \d+")


@router.get("/ui/batches")
async def batches_page(viewer: ViewerDep, db: SessionDep) -> Response:
    batches = await outreach_queries.recent_batches(db, viewer.tenant_id)
    return viewer.render("batches.html", batches=batches)


@router.post("/ui/batches/preview")
async def preview(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    file: Annotated[UploadFile, File()],
    strategy: Annotated[str, Form()] = "",
    max_attempts: Annotated[str, Form()] = "",
) -> Response:
    text = await _csv_text(file)
    options = build(BatchOptions, {"strategy": strategy, "max_attempts": max_attempts})
    result = await _schedule(viewer, db, clock, text, options, dry_run=True)
    return viewer.render(
        "batch_preview.html",
        filename=file.filename or "upload.csv",
        csv_text=text,
        options=options,
        idempotency_key=secrets.token_urlsafe(16),
        **_plan_summary(result.items, csv_rows(text).lines, now=clock.now()),
    )


@router.post("/ui/batches")
async def commit(
    viewer: ActorDep,
    db: SessionDep,
    clock: ClockDep,
    csv_text: Annotated[str, Form(max_length=MAX_CSV_BYTES)],
    idempotency_key: Annotated[str, Form(max_length=200)],
    strategy: Annotated[str, Form()] = "",
    max_attempts: Annotated[str, Form()] = "",
) -> Response:
    options = build(BatchOptions, {"strategy": strategy, "max_attempts": max_attempts})
    # The key comes from the preview: committing the same preview twice makes one batch.
    result = await _schedule(viewer, db, clock, csv_text, options, key=idempotency_key)
    assert result.batch is not None  # not a dry run
    return RedirectResponse(f"/ui/batches/{result.batch.id}", status_code=303)


@router.get("/ui/batches/{batch_id}")
async def batch_page(viewer: ViewerDep, db: SessionDep, clock: ClockDep, batch_id: str) -> Response:
    batch, counts = await service.get_batch(db, viewer.tenant_id, batch_id)
    now = clock.now()
    per_hour = await outreach_queries.pending_per_hour(
        db, viewer.tenant_id, start=floor_hour(now), end=now + timedelta(hours=CHART_HOURS),
        batch_id=batch_id,
    )  # fmt: skip
    chart = hour_chart(count_by_hour(per_hour, start=now, hours=CHART_HOURS))
    return viewer.render(
        "batch.html", batch=batch, counts=counts, chart=chart, ticks=tick_bars(chart)
    )


async def _schedule(
    viewer: Viewer,
    db: SessionDep,
    clock: ClockDep,
    text: str,
    options: BatchOptions,
    *,
    dry_run: bool = False,
    key: str | None = None,
) -> service.BatchResult:
    problem = csv_header_problem(text)
    if problem is not None:
        raise InvalidInput(problem)
    rows = csv_rows(text)
    request = service.BatchRequest(rows.items, options, "csv", key, dry_run, rows.lines)
    return await service.schedule_batch(
        db, viewer.tenant_id, viewer.policy.calling, request, now=clock.now()
    )


async def _csv_text(upload: UploadFile) -> str:
    data = await upload.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise InvalidInput("the CSV is larger than 5 MB: use the API or `caretime plan` for it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV must be UTF-8 text") from None


def _reason_kind(error: str) -> str:
    """A rejection's words without what is particular to one row (a call's id and time), so
    that rows rejected for the same reason are counted together."""
    return _PARTICULARS.sub("…", error)


def _plan_summary(
    items: list[dict[str, Any]], lines: list[int], *, now: datetime
) -> dict[str, Any]:
    """What a dry run planned: counts by status, the rejected rows (by CSV line), calls per
    hour."""
    scheduled = [item for item in items if item["status"] == "scheduled"]
    rejected = [
        (line, item)
        for line, item in zip(lines, items, strict=True)
        if item["status"] == "rejected"
    ]
    times = [(ensure_utc(datetime.fromisoformat(i["scheduled"])), i["tz"], 1) for i in scheduled]
    first = min((at for at, _, _ in times), default=now)
    chart = hour_chart(count_by_hour(times, start=first, hours=CHART_HOURS))
    return {
        "counts": Counter(item["status"] for item in items),
        "reasons": Counter(_reason_kind(item["error"]) for _, item in rejected).most_common(),
        "rejected": rejected,
        "chart": chart,
        "ticks": tick_bars(chart),
        "beyond_chart": len(times) - chart.total,
    }

"""Import caregivers and shifts from the documents of the service caretime replaces.

Each record is judged on its own: a bad one is reported with its reasons and skipped, the
rest are imported. Reports carry ids and reasons, never names or phone numbers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.errors import InvalidInput
from caretime.fielderrors import field_errors
from caretime.shifts import caregivers, service
from caretime.shifts.schemas import CaregiverCreate, ShiftCreate
from caretime.tenancy.policy import ShiftPolicy

Outcome = Literal["imported", "rejected", "exists"]
M = TypeVar("M", bound=BaseModel)


@dataclass
class RecordReport:
    kind: Literal["caregiver", "shift"]
    index: int
    id: str | None
    outcome: Outcome
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def import_document(
    session: AsyncSession,
    tenant_id: str,
    document: Any,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> list[RecordReport]:
    if not isinstance(document, dict) or not ({"caregivers", "shifts"} & document.keys()):
        raise InvalidInput('expected a JSON object with "caregivers" and/or "shifts" lists')
    reports = [
        await _import_caregiver(session, tenant_id, i, record, now=now)
        for i, record in enumerate(_records(document, "caregivers"))
    ]
    reports += [
        await _import_shift(session, tenant_id, i, record, policy=policy, now=now)
        for i, record in enumerate(_records(document, "shifts"))
    ]
    return reports


def _records(document: dict[str, Any], key: str) -> list[Any]:
    records = document.get(key, [])
    if not isinstance(records, list):
        raise InvalidInput(f'"{key}" must be a list')
    return records


async def _import_caregiver(
    session: AsyncSession, tenant_id: str, index: int, record: Any, *, now: datetime
) -> RecordReport:
    if isinstance(record, dict) and "roles" not in record and "role" in record:
        record = {**record, "roles": [record["role"]]}
    parsed = _parse(CaregiverCreate, record)
    report = RecordReport("caregiver", index, _record_id(record), "imported")
    if isinstance(parsed, list):
        return _rejected(report, parsed)
    try:
        await caregivers.create_caregiver(session, tenant_id, parsed, now=now)
    except caregivers.CaregiverExists:
        report.outcome = "exists"
    return _noted(report)


async def _import_shift(
    session: AsyncSession,
    tenant_id: str,
    index: int,
    record: Any,
    *,
    policy: ShiftPolicy,
    now: datetime,
) -> RecordReport:
    parsed = _parse(ShiftCreate, record)
    report = RecordReport("shift", index, _record_id(record), "imported")
    if isinstance(parsed, list):
        return _rejected(report, parsed)
    try:
        shift = await service.create_shift(session, tenant_id, parsed, policy=policy, now=now)
    except service.ShiftExists:
        report.outcome = "exists"
        return _noted(report)
    except service.ZoneMismatch as exc:
        return _rejected(report, [str(exc)])
    if shift.status == "expired":
        report.notes.append("start_time has passed: imported as expired")
    return _noted(report)


def _parse(model: type[M], record: Any) -> M | list[str]:
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        return [_reason(error) for error in field_errors(exc.errors())]


def _reason(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "record"
    return f"{where}: {error['msg']}"


def _record_id(record: Any) -> str | None:
    value = record.get("id") if isinstance(record, dict) else None
    return str(value) if value is not None else None


def _rejected(report: RecordReport, reasons: list[str]) -> RecordReport:
    report.outcome = "rejected"
    report.reasons = reasons
    return _noted(report)


def _noted(report: RecordReport) -> RecordReport:
    if report.id is not None and not _is_uuid(report.id):
        report.notes.append("id is not a UUID; kept as given (ids are opaque)")
    return report


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True

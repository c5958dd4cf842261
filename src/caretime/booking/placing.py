"""What a reservation reads about where it goes, in one statement (docs/booking.md,
"Reserving"): the provider, the visit type, the availability rules around the slot and the
webhook endpoints that want `appointment.held`. In the caller's transaction (`read_place`,
the endpoints locked FOR KEY SHARE, as `emit` locks them), or for an API request on a reader
connection before any write (`read_for_request`, which also reads the request's key, the
tenant's policy version and whether its Idempotency-Key is taken).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Date,
    Integer,
    Row,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from caretime.booking.availability import Rule
from caretime.booking.events import HELD
from caretime.booking.grid import VisitShape
from caretime.booking.models import (
    Appointment,
    AvailabilityRule,
    PlaceVersion,
    Provider,
    VisitType,
)
from caretime.db import is_postgres
from caretime.events.webhooks.models import EndpointVersion, WebhookEndpoint
from caretime.events.webhooks.patterns import matches
from caretime.tenancy.models import ApiKey, Tenant
from caretime.tenancy.service import KeyState


@dataclass(frozen=True)
class Place:
    """What a reservation reads about where it goes, in one statement."""

    provider: Provider  # transient: not in the session
    shape: VisitShape | None  # None: the provider does not offer the visit type asked for
    rules: list[Rule]
    endpoints: list[str]  # webhook endpoints that want appointment.held


async def read_place(
    session: AsyncSession,
    tenant_id: str,
    provider_id: str,
    slot_start: datetime,
    visit_type: str | None,
    default: VisitShape,
) -> Place | None:
    """The provider (None if there is none), the visit's shape, and every availability rule
    that may apply within a day of the slot's local date (two UTC days either side cover any
    zone), in the caller's transaction (the endpoints locked until it ends)."""
    params = place_params(tenant_id, provider_id, slot_start, visit_type)
    statement = _place_statement(is_postgres(session), visit_type is not None)
    rows = (await session.execute(statement, params)).all()
    return _place(rows, tenant_id, provider_id, visit_type, default)


@dataclass(frozen=True)
class Reading:
    """What a reservation request reads before it writes, in one statement on a reader
    connection (no write transaction, so on SQLite not under the write lock): the place,
    and about the caller the key's state and the tenant's policy version (so the request
    needs no statement of its own for them), and whether its Idempotency-Key is taken."""

    key: KeyState  # the request's key as read now ("unknown": deleted since)
    policy_version: int
    replayed: bool  # a reservation with the request's Idempotency-Key exists
    rows: Sequence[Row[Any]]
    # The provider's place_versions number and the tenant's endpoint number as read with
    # the rows, for a later write to check that the place is still what was read
    # (holding.write_known); None: no provider
    place_version: int | None = None
    endpoints_version: int = 0

    def place(
        self, tenant_id: str, provider_id: str, visit_type: str | None, default: VisitShape
    ) -> Place | None:
        rows = self.rows if self.rows[0].name is not None else []  # no provider: no place
        return _place(rows, tenant_id, provider_id, visit_type, default)


async def read_for_request(
    connection: AsyncConnection,
    tenant_id: str,
    key_id: str,
    provider_id: str,
    slot_start: datetime,
    visit_type: str | None,
    idempotency_key: str | None,
) -> Reading:
    """Read everything a reservation request checks before its write, in one statement
    (endpoints not locked: a request that delivers to one locks them in its transaction)."""
    params = place_params(tenant_id, provider_id, slot_start, visit_type)
    params |= {"key_id": key_id, "idempotency_key": idempotency_key}
    postgres = is_postgres(connection)
    statement = _request_statement(postgres, visit_type is not None, idempotency_key is not None)
    rows = (await connection.execute(statement, params)).all()
    if not rows:  # the key is gone
        return Reading("unknown", 0, False, [])
    head = rows[0]
    key: KeyState = "valid" if head.revoked_at is None else "revoked"
    return Reading(
        key,
        head.policy_version,
        bool(head.replayed),
        rows,
        head.place_version,
        head.endpoints_version,
    )


def place_params(
    tenant_id: str, provider_id: str, slot_start: datetime, visit_type: str | None
) -> dict[str, Any]:
    day = slot_start.astimezone(UTC).date()
    return {
        "tenant_id": tenant_id,
        "provider_id": provider_id,
        "first": day - timedelta(days=2),
        "last": day + timedelta(days=2),
        "visit_type": visit_type,
    }


def _place(
    rows: Sequence[Row[Any]],
    tenant_id: str,
    provider_id: str,
    visit_type: str | None,
    default: VisitShape,
) -> Place | None:
    if not rows:
        return None
    head = rows[0]
    provider = Provider(
        tenant_id=tenant_id,
        id=provider_id,
        name=head.name,
        tz=head.tz,
        max_per_day=head.max_per_day,
    )
    shape: VisitShape | None = default
    if visit_type is not None:
        shape = None if head.minutes is None else VisitShape(head.minutes, head.before, head.after)
    rules = [
        Rule(r.kind, r.start_minute, r.end_minute, r.day, r.weekdays, r.valid_from, r.valid_until)
        for r in rows
        if r.kind is not None
    ]
    wanted = [id_ for id_, patterns in head.endpoints or [] if matches(patterns, HELD)]
    return Place(provider, shape, rules, wanted)


@functools.cache
def _place_statement(postgres: bool, with_visit_type: bool) -> Select[Any]:
    """read_place's SELECT, built once per kind (its parameters bound at execution): the
    provider joined with its rules near the slot (one row per rule) and, when asked, the
    visit type; the endpoints a scalar subquery, locked."""
    return _place_select(postgres, lock=True, with_visit_type=with_visit_type)


def _place_select(postgres: bool, *, lock: bool, with_visit_type: bool) -> Select[Any]:
    statement = select(*_PLACE_COLUMNS, _endpoints(postgres, lock=lock)).select_from(Provider)
    return _with_rules_and_visit_type(statement, with_visit_type).where(
        Provider.tenant_id == bindparam("tenant_id", type_=String()),
        Provider.id == bindparam("provider_id", type_=String()),
    )


@functools.cache
def _request_statement(postgres: bool, with_visit_type: bool, with_key: bool) -> Select[Any]:
    """read_for_request's SELECT: the caller's key and tenant (one row, or none if the key is
    gone), the provider if there is one, then as read_place's."""
    replayed: Any = literal(False)
    if with_key:
        replayed = exists().where(
            Appointment.tenant_id == bindparam("tenant_id", type_=String()),
            Appointment.idempotency_key == bindparam("idempotency_key", type_=String()),
        )
    statement = (
        select(
            ApiKey.revoked_at,
            Tenant.policy_version,
            replayed.label("replayed"),
            *_PLACE_COLUMNS,
            _endpoints(postgres, lock=False),
        )
        .select_from(ApiKey)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .outerjoin(
            Provider,
            and_(
                Provider.tenant_id == Tenant.id,
                Provider.id == bindparam("provider_id", type_=String()),
            ),
        )
    )
    statement = statement.add_columns(
        PlaceVersion.version.label("place_version"), _endpoints_version().label("endpoints_version")
    ).outerjoin(
        PlaceVersion,
        and_(PlaceVersion.tenant_id == Provider.tenant_id, PlaceVersion.provider_id == Provider.id),
    )
    return _with_rules_and_visit_type(statement, with_visit_type).where(
        ApiKey.id == bindparam("key_id", type_=String()),
        ApiKey.tenant_id == bindparam("tenant_id", type_=String()),
    )


def _endpoints_version() -> ColumnElement[int]:
    """The tenant's endpoint number (0 before its first endpoint)."""
    version = select(EndpointVersion.version).where(EndpointVersion.tenant_id == ApiKey.tenant_id)
    return func.coalesce(version.scalar_subquery(), 0)


def still_as_read() -> ColumnElement[bool]:
    """What a request read before is still so (the key valid, the tenant's policy at the
    version read, the provider's place and the tenant's endpoints at the numbers read:
    migration 0024's triggers move them on at every write to what the place's rows are read
    from), for a write conditioned on it. Its parameters: `key_id`, `tenant_id`,
    `policy_version`, `provider_id`, `place_version` and `endpoints_version`."""
    return exists().where(
        ApiKey.id == bindparam("key_id", type_=String()),
        ApiKey.tenant_id == bindparam("tenant_id", type_=String()),
        ApiKey.revoked_at.is_(None),
        Tenant.id == ApiKey.tenant_id,
        Tenant.policy_version == bindparam("policy_version", type_=Integer()),
        PlaceVersion.tenant_id == ApiKey.tenant_id,
        PlaceVersion.provider_id == bindparam("provider_id", type_=String()),
        PlaceVersion.version == bindparam("place_version", type_=Integer()),
        _endpoints_version() == bindparam("endpoints_version", type_=Integer()),
    )


_RULE = AvailabilityRule
_PLACE_COLUMNS: tuple[Any, ...] = (
    Provider.name,
    Provider.tz,
    Provider.max_per_day,
    _RULE.kind,
    _RULE.start_minute,
    _RULE.end_minute,
    _RULE.day,
    _RULE.weekdays,
    _RULE.valid_from,
    _RULE.valid_until,
)


def _with_rules_and_visit_type(statement: Select[Any], with_visit_type: bool) -> Select[Any]:
    """`statement` (from the provider) outer-joined with its rules near the slot and, when
    asked, the visit type's shape."""
    rule = _RULE
    first, last = bindparam("first", type_=Date()), bindparam("last", type_=Date())
    rules_near = and_(
        rule.tenant_id == Provider.tenant_id,
        rule.provider_id == Provider.id,
        or_(
            and_(rule.kind != "weekly", rule.day.between(first, last)),
            and_(
                rule.kind == "weekly",
                or_(rule.valid_until.is_(None), rule.valid_until >= first),
                or_(rule.valid_from.is_(None), rule.valid_from <= last),
            ),
        ),
    )
    statement = statement.outerjoin(rule, rules_near)
    if not with_visit_type:
        return statement
    return statement.add_columns(
        VisitType.minutes,
        VisitType.buffer_before.label("before"),
        VisitType.buffer_after.label("after"),
    ).outerjoin(
        VisitType,
        and_(
            VisitType.tenant_id == Provider.tenant_id,
            VisitType.provider_id == Provider.id,
            VisitType.id == bindparam("visit_type", type_=String()),
        ),
    )


def _endpoints(postgres: bool, *, lock: bool) -> Any:
    """The tenant's enabled webhook endpoints as JSON [[id, patterns]...]; with `lock`,
    locked against their pump's last check until this transaction ends (see
    events.webhooks.outbox)."""
    endpoint = WebhookEndpoint
    enabled = (
        select(endpoint.id, endpoint.event_types)
        .where(
            endpoint.tenant_id == bindparam("tenant_id", type_=String()),
            endpoint.enabled.is_(True),
        )
        .order_by(endpoint.id)
    )
    if postgres:
        if lock:
            enabled = enabled.with_for_update(read=True, key_share=True)
        locked = enabled.subquery()
        pairs = func.json_agg(func.json_build_array(locked.c.id, locked.c.event_types))
    else:
        locked = enabled.subquery()
        pairs = func.json_group_array(func.json_array(locked.c.id, func.json(locked.c.event_types)))
    return type_coerce(select(pairs).select_from(locked).scalar_subquery(), JSON).label("endpoints")

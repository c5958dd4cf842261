"""What a slot search reads, in one round trip: the searched providers (with the visit type's
shape where one is asked for), their availability rules and their busy time; for an API
request also its key's state and its tenant's policy version (`auth.PolicyReadWith`), so
that the request needs no statement of its own for them.

One `UNION ALL` of three row shapes in one wide row (a `part` column says which; the columns
a shape does not use are NULL), built once per kind of search with its parameters bound at
execution: no statement is built, compiled or expanded per request. The providers' ids
travel as one parameter (an array on PostgreSQL, a JSON text on SQLite), so one prepared
statement serves any number of them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    CompoundSelect,
    Date,
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeEngine

from caretime import driver_reads
from caretime.booking.availability import Rule
from caretime.booking.grid import VisitShape
from caretime.booking.models import Appointment, AvailabilityRule, Provider, VisitType
from caretime.booking.repository import MAX_OCCUPIED, active_at
from caretime.db import UTCDateTime, is_postgres
from caretime.tenancy.models import ApiKey, Tenant
from caretime.tenancy.service import KeyState


class ProviderView(NamedTuple):
    """What a slot search needs of a provider (read as columns, not as an entity)."""

    id: str
    tz: str
    max_per_day: int | None


class Busy(NamedTuple):
    """An active appointment as slot search sees it."""

    slot_start: datetime
    occupied_start: datetime
    occupied_end: datetime


@dataclass
class SearchRows:
    """The rows of one search: providers by id order; `offered` the shape of the asked visit
    type at each provider offering it (empty when no visit type was asked)."""

    providers: list[ProviderView] = field(default_factory=list)
    # The request's key as read now ("unknown": deleted since, or not asked for).
    key: KeyState = "unknown"
    policy_version: int = 0
    offered: dict[str, VisitShape] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    busy: dict[str, list[Busy]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reach:
    """How far a search reads: rules of local dates first..last, and busy time whose occupied
    span overlaps [start, end) for a provider with a per-day limit (it counts whole local
    days), [near_start, near_end) for the others (only slots' occupied spans meet it)."""

    first: date
    last: date
    start: datetime
    end: datetime
    near_start: datetime
    near_end: datetime


async def read_search(
    on: AsyncConnection | AsyncEngine,
    tenant_id: str,
    provider_ids: Sequence[str] | None,
    visit_type: str | None,
    reach: Reach,
    *,
    now: datetime,
    key_id: str | None = None,
) -> SearchRows:
    """The tenant's providers (those of `provider_ids`, or all) with their rules and busy
    time within `reach`, in one statement (no ORM execution) on a connection, or on one of an
    engine's pool borrowed for it alone; with `key_id`, also that key's state and its
    tenant's policy version."""
    postgres = is_postgres(on)
    kind = (postgres, provider_ids is not None, visit_type is not None, key_id is not None)
    statement = _statement(*kind)
    parameters: dict[str, Any] = {
        "tenant_id": tenant_id,
        "first": reach.first,
        "last": reach.last,
        "busy_start": reach.start,
        "busy_floor": reach.start - MAX_OCCUPIED,
        "busy_end": reach.end,
        "near_start": reach.near_start,
        "near_end": reach.near_end,
        "now": now,
    }
    if provider_ids is not None:
        parameters["ids"] = list(provider_ids) if postgres else json.dumps(list(provider_ids))
    if visit_type is not None:
        parameters["visit_type"] = visit_type
    if key_id is not None:
        parameters["key_id"] = key_id
    # The statement compiled once and sent by the driver: through SQLAlchemy each execution
    # hashed the UNION's whole cache key and built a cursor and result around the rows
    # (docs/benchmarks.md, "slots2", "slots3"). asyncpg's rows need no conversion (dates,
    # integers, aware UTC instants); sqlite3's are converted by the columns' types.
    return _sorted_out(await driver_reads.fetch_all(on, statement, parameters))


def _sorted_out(rows: Any) -> SearchRows:
    """The rows by shape. The text is a provider's zone or a rule's kind; the four integers a
    provider's max_per_day and visit minutes, buffer before and after, or a rule's start and
    end minute and weekdays, or the key's policy version; the dates a rule's day, valid_from
    and valid_until; the instants a visit's, or the key's revocation."""
    found = SearchRows()
    for part, provider_id, text, a, b, c, d, day, since, until, *instants in rows:
        if part == _RULE:
            rule = Rule(text, a, b, day, c, since, until)
            found.rules.setdefault(provider_id, []).append(rule)
        elif part == _BUSY:
            found.busy.setdefault(provider_id, []).append(Busy(*instants))
        elif part == _KEY:
            found.key = "valid" if instants[0] is None else "revoked"
            found.policy_version = a
        else:
            found.providers.append(ProviderView(provider_id, text, a))
            if b is not None:
                found.offered[provider_id] = VisitShape(b, c, d)
    # Only the set matters to the search; sorted so that what it does is the same each time.
    found.providers.sort()
    return found


_PROVIDER, _RULE, _BUSY, _KEY = 0, 1, 2, 3
# The wide row: part, provider id, a text, four integers, three dates, three instants.
_TYPES: tuple[TypeEngine[Any], ...] = (
    Integer(),
    String(),
    String(),
    *(Integer(),) * 4,
    *(Date(),) * 3,
    *(UTCDateTime(),) * 3,
)


def _row(part: int, *values: Any) -> list[ColumnElement[Any]]:
    """One shape's columns in the wide row's places; NULL cast to the place's type where it
    has none (PostgreSQL types a union's columns pairwise: two bare NULLs become text)."""
    filled = [literal_column(str(part), Integer()), *values]
    filled += [None] * (len(_TYPES) - len(filled))
    return [
        (cast(null(), type_) if value is None else value).label(f"c{n}")
        for n, (value, type_) in enumerate(zip(filled, _TYPES, strict=True))
    ]


@functools.cache
def _statement(
    postgres: bool, by_id: bool, with_visit_type: bool, with_key: bool
) -> CompoundSelect[Any]:
    """The search's statement for one kind of search, built once."""
    parts = [
        _providers(postgres, by_id, with_visit_type),
        _rules(postgres, by_id),
        _busy(postgres, by_id),
    ]
    if with_key:
        parts.append(_key())
    statement = union_all(*parts)
    return _planned_once(statement) if postgres else statement


def _planned_once(statement: CompoundSelect[Any]) -> CompoundSelect[Any]:
    """The statement with each of its values in a one-row subquery of its own (`$1` becomes
    `(SELECT $1)`), so that PostgreSQL plans it once per connection rather than on every
    execution. A prepared statement is planned anew for each execution's values while such
    a plan is estimated cheaper than a plan for any values, and with values in sight this
    one always was (their day's range, their provider): ~250 µs of the server's CPU a search
    on planning, beside ~60 µs on running it. Values out of its sight cost both plans the
    same, and after five executions PostgreSQL keeps the generic one. (`plan_cache_mode`
    would say so outright, but it is a setting of the session, whose connection the pool
    shares with every other statement; SET LOCAL needs a transaction, two round trips.)"""

    def hidden(element: Any, **_kw: Any) -> Any:
        if not isinstance(element, BindParameter):
            return None
        value = select(element).scalar_subquery()
        # An array cast again: `= ANY ((SELECT $2))` would compare with the subquery's rows.
        return cast(value, element.type) if isinstance(element.type, ARRAY) else value

    planned = visitors.replacement_traverse(statement, {}, hidden)
    assert isinstance(planned, CompoundSelect)
    return planned


def _key() -> Any:
    """The request's key's revocation and its tenant's policy version (service.policy_version's
    statement); no row when the key was deleted."""
    columns = _row(_KEY, None, None, Tenant.policy_version, *[None] * 6, ApiKey.revoked_at)
    return (
        select(*columns)
        .join_from(ApiKey, Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.id == bindparam("key_id", type_=String()))
    )


def _providers(postgres: bool, by_id: bool, with_visit_type: bool) -> Any:
    shape: list[Any] = [None, None, None]
    if with_visit_type:
        shape = [VisitType.minutes, VisitType.buffer_before, VisitType.buffer_after]
    columns = _row(_PROVIDER, Provider.id, Provider.tz, Provider.max_per_day, *shape)
    statement = select(*columns).where(Provider.tenant_id == _TENANT)
    if with_visit_type:
        statement = statement.outerjoin(
            VisitType,
            and_(
                VisitType.tenant_id == Provider.tenant_id,
                VisitType.provider_id == Provider.id,
                VisitType.id == bindparam("visit_type", type_=String()),
            ),
        )
    return _of_ids(statement, Provider.id, postgres, by_id)


def _rules(postgres: bool, by_id: bool) -> Any:
    """Every rule that may apply on a date in first..last (RuleRepository.rules' condition)."""
    rule = AvailabilityRule
    first, last = bindparam("first", type_=Date()), bindparam("last", type_=Date())
    dated = and_(rule.kind != "weekly", rule.day.between(first, last))
    weekly = and_(
        rule.kind == "weekly",
        or_(rule.valid_until.is_(None), rule.valid_until >= first),
        or_(rule.valid_from.is_(None), rule.valid_from <= last),
    )
    columns = _row(
        _RULE,
        rule.provider_id,
        rule.kind,
        rule.start_minute,
        rule.end_minute,
        rule.weekdays,
        None,
        rule.day,
        rule.valid_from,
        rule.valid_until,
    )
    statement = select(*columns).where(rule.tenant_id == _TENANT, or_(dated, weekly))
    return _of_ids(statement, rule.provider_id, postgres, by_id)


def _busy(postgres: bool, by_id: bool) -> Any:
    """Active appointments whose occupied span overlaps [busy_start, busy_end) (the condition
    of repository.overlapping, its lower bound on occupied_start a parameter of its own) and,
    unless their provider has a per-day limit, [near_start, near_end)."""
    visit = Appointment
    start, end, near_start, near_end = (
        bindparam(name, type_=UTCDateTime())
        for name in ("busy_start", "busy_end", "near_start", "near_end")
    )
    limited = select(Provider.id).where(
        Provider.tenant_id == _TENANT, Provider.max_per_day.is_not(None)
    )
    overlapping = and_(
        visit.occupied_start < end,
        visit.occupied_start > bindparam("busy_floor", type_=UTCDateTime()),
        visit.occupied_end > start,
        or_(
            and_(visit.occupied_start < near_end, visit.occupied_end > near_start),
            visit.provider_id.in_(_of_ids(limited, Provider.id, postgres, by_id)),
        ),
    )
    columns = _row(
        _BUSY,
        visit.provider_id,
        *[None] * 8,
        visit.slot_start,
        visit.occupied_start,
        visit.occupied_end,
    )
    now = bindparam("now", type_=UTCDateTime())
    statement = select(*columns).where(visit.tenant_id == _TENANT, overlapping, active_at(now))
    return _of_ids(statement, visit.provider_id, postgres, by_id)


_TENANT = bindparam("tenant_id", type_=String())


def _of_ids(statement: Any, column: Any, postgres: bool, by_id: bool) -> Any:
    """Limited to the searched providers: `= ANY($n::TEXT[])` on PostgreSQL (text[] needs no
    type lookup per connection), `IN (SELECT value FROM json_each(?))` on SQLite."""
    if not by_id:
        return statement
    if postgres:
        return statement.where(column == any_(bindparam("ids", type_=ARRAY(Text()))))
    each = func.json_each(bindparam("ids", type_=String())).table_valued("value")
    return statement.where(column.in_(select(each.c.value)))

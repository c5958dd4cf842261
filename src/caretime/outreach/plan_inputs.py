"""What `caretime plan` plans with: the patients CSV, the tenant's calling policy (a policy
file, the database, or the defaults) with the command's overrides, and the moment to plan
from. Every problem is a `PlanInputError` with one line for the user, never a traceback."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from caretime.clock import SystemClock
from caretime.outreach.intake import csv_header_problem
from caretime.tenancy.policy import CallingPolicy, TenantPolicy


class PlanInputError(Exception):
    """A bad input to `caretime plan`, said in one line."""


@dataclass(frozen=True)
class Overrides:
    strategy: str | None = None
    max_per_minute: int | None = None
    horizon_days: int | None = None
    default_tz: str | None = None

    def as_policy(self) -> dict[str, Any]:
        values = {"strategy": self.strategy, "max_calls_per_minute": self.max_per_minute,
                  "horizon_days": self.horizon_days, "default_tz": self.default_tz}  # fmt: skip
        return {name: value for name, value in values.items() if value is not None}


def read_patients(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PlanInputError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanInputError(f"cannot read {path}: {_reason(exc)}") from None
    problem = csv_header_problem(text)
    if problem is not None:
        raise PlanInputError(f"{path}: {problem}")
    return text


def calling_policy(
    policy_file: Path | None, tenant: str | None, overrides: Overrides
) -> CallingPolicy:
    """The calling policy to plan with: the file's, the tenant's, or the defaults, with the
    command's options on top; validated like PATCH /tenants/me/policy."""
    if policy_file is not None and tenant is not None:
        raise PlanInputError("give --policy or --tenant, not both")
    document = {}
    if policy_file is not None:
        document = _policy_file(policy_file)
    elif tenant is not None:
        document = asyncio.run(_tenant_policy(tenant))
    calling = {**document.get("calling", {}), **overrides.as_policy()}
    try:
        return TenantPolicy.model_validate({**document, "calling": calling}).calling
    except ValidationError as exc:
        raise PlanInputError(f"the policy is not valid: {_first_error(exc)}") from None


def plan_moment(now: str | None) -> datetime:
    if now is None:
        return SystemClock().now()
    try:
        moment = datetime.fromisoformat(now.strip())
    except ValueError:
        raise PlanInputError(
            f"--now {now!r} is not an ISO 8601 instant: give e.g. 2026-03-02T15:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise PlanInputError(f"--now {now!r} has no UTC offset: add Z or e.g. -05:00")
    return moment


def _policy_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanInputError(f"no such policy file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanInputError(f"cannot read {path}: {_reason(exc)}") from None
    except json.JSONDecodeError as exc:
        raise PlanInputError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(document, dict):
        raise PlanInputError(f"{path} must hold a policy object, as GET /tenants/me/policy gives")
    return document


async def _tenant_policy(name: str) -> dict[str, Any]:
    from caretime.config import get_settings
    from caretime.runtime import Runtime
    from caretime.tenancy.service import find_tenant

    runtime = Runtime.build(get_settings())
    try:
        async with runtime.sessions() as session:
            tenant = await find_tenant(session, name)
    except Exception as exc:
        raise PlanInputError(f"cannot read the database: {type(exc).__name__}") from None
    finally:
        await runtime.close()
    if tenant is None:
        raise PlanInputError(f"no tenant named {name!r}")
    return dict(tenant.policy or {})


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}"


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__

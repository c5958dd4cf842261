"""What may be pruned: a table, its age column, what of it counts as finished, and which
setting of the tenant's retention policy says for how long it is kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement

from caretime.tenancy.policy import RetentionPolicy


@dataclass(frozen=True)
class Prunable:
    name: str
    model: type[Any]
    key: Any  # the primary key column: batches are deleted by key
    age: Any  # the instant a row's age counts from
    keep_for: Callable[[RetentionPolicy], timedelta | None]
    finished: ColumnElement[bool] | None = None


_registered: dict[str, Prunable] = {}


def register(prunable: Prunable) -> Prunable:
    _registered[prunable.name] = prunable
    return prunable


def prunables() -> list[Prunable]:
    return list(_registered.values())

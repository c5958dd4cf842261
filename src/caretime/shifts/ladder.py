"""The escalation ladder as pure data: which round comes when, on which channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from caretime.tenancy.policy import EscalationRound, format_duration, parse_duration

Channel = Literal["sms", "voice"]


@dataclass(frozen=True)
class Round:
    number: int
    channel: Channel
    after: timedelta
    tiers: tuple[int, ...] | None = None


def rounds_of(escalation: list[EscalationRound]) -> list[Round]:
    """Number the tenant's rounds from 1 (round n is `escalation[n - 1]`)."""
    return [
        Round(n, r.channel, r.after, tuple(r.tiers) if r.tiers else None)
        for n, r in enumerate(escalation, start=1)
    ]


def round_number(ladder: list[Round], number: int) -> Round | None:
    return ladder[number - 1] if 1 <= number <= len(ladder) else None


def next_round(ladder: list[Round], number: int) -> Round | None:
    return round_number(ladder, number + 1)


def due_at(started_at: datetime, round_: Round) -> datetime:
    return started_at + round_.after


def rounds_before(ladder: list[Round], started_at: datetime, deadline: datetime) -> list[Round]:
    """The rounds that fall before the deadline (a shift is not offered once it starts)."""
    return [r for r in ladder if due_at(started_at, r) < deadline]


def to_document(ladder: list[Round]) -> dict[str, Any]:
    return {"rounds": [_round_document(r) for r in ladder]}


def _round_document(round_: Round) -> dict[str, Any]:
    document: dict[str, Any] = {"channel": round_.channel, "after": format_duration(round_.after)}
    if round_.tiers:
        document["tiers"] = list(round_.tiers)
    return document


def from_document(document: dict[str, Any]) -> list[Round]:
    return [
        Round(n, item["channel"], parse_duration(item["after"]), _tiers(item))
        for n, item in enumerate(document["rounds"], start=1)
    ]


def _tiers(item: dict[str, Any]) -> tuple[int, ...] | None:
    tiers = item.get("tiers")
    return tuple(tiers) if tiers else None

"""Normalized message statuses and the forward-only rule, as data."""

from __future__ import annotations

from typing import Literal

Channel = Literal["sms", "voice"]
CHANNELS: tuple[Channel, ...] = ("sms", "voice")

QUEUED = "queued"
SUPPRESSED = "suppressed"
FAILED = "failed"
# Never sent: its sender's deadline passed first (providers.base.TooLate). Voice only.
CANCELED = "canceled"
RECEIVED = "received"
# In flight when its worker stopped and, by tenant policy, not sent again: it may or may not
# have reached the phone. Final: nothing will tell us more (the provider id was never stored).
UNKNOWN = "unknown"

# Rank of each status per channel: a status is applied only if it ranks higher than the
# current one, so a late "sent" never overwrites "delivered". All terminal statuses share
# the top rank: the first terminal status a message reaches is the one it keeps.
_TERMINAL = 9
RANKS: dict[str, dict[str, int]] = {
    "sms": {
        QUEUED: 0,
        "sent": 1,
        "delivered": _TERMINAL,
        "undelivered": _TERMINAL,
        FAILED: _TERMINAL,
        SUPPRESSED: _TERMINAL,
        UNKNOWN: _TERMINAL,
    },
    "voice": {
        QUEUED: 0,
        "ringing": 1,
        "in_progress": 2,
        "completed": _TERMINAL,
        "busy": _TERMINAL,
        "no_answer": _TERMINAL,
        # A machine answered (answering-machine detection): what happens then is the
        # sender's policy, carried out by the provider (see Message.context "on_machine").
        "voicemail": _TERMINAL,
        FAILED: _TERMINAL,
        CANCELED: _TERMINAL,
        SUPPRESSED: _TERMINAL,
        UNKNOWN: _TERMINAL,
    },
}


def not_sent_status(channel: str) -> str:
    """What a message its sender's deadline passed before it left becomes (TooLate)."""
    return CANCELED if CANCELED in RANKS[channel] else FAILED


def is_known(channel: str, status: str) -> bool:
    return status in RANKS[channel]


def is_final(channel: str, status: str) -> bool:
    return RANKS[channel].get(status, 0) == _TERMINAL or status == RECEIVED


def moves_forward(channel: str, current: str, new: str) -> bool:
    """True when `new` may replace `current` (statuses only move forward)."""
    ranks = RANKS[channel]
    return new in ranks and ranks[new] > ranks.get(current, _TERMINAL)

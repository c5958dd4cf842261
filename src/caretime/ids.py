"""Identifiers: time-ordered and prefixed, so they sort by creation and say what they name."""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    """`prefix_` + 48-bit millisecond timestamp + 80 random bits, as 32 hex digits (UUIDv7-like)."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{millis:012x}{os.urandom(10).hex()}"

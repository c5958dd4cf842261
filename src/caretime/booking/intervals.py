"""Sets of minute spans within one local day, as sorted disjoint (start, end) tuples."""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[int, int]


def merge(spans: Iterable[Span]) -> list[Span]:
    """Union: overlapping or touching spans become one."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract(spans: Iterable[Span], removed: Iterable[Span]) -> list[Span]:
    """Difference: the parts of `spans` not covered by `removed`."""
    result = merge(spans)
    for cut_start, cut_end in merge(removed):
        remaining: list[Span] = []
        for start, end in result:
            if start < cut_start:
                remaining.append((start, min(end, cut_start)))
            if end > cut_end:
                remaining.append((max(start, cut_end), end))
        result = remaining
    return result

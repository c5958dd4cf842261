"""The API key's shape check."""

from __future__ import annotations

import sys

import pytest

from caretime.tenancy.keyshape import key_shape_problem


def test_a_key_is_refused_for_any_whitespace_or_unprintable_character() -> None:
    # The check scans the whole key at once; it must refuse exactly the characters that are
    # whitespace or unprintable, one by one.
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        refused = key_shape_problem(f"ct_abcd{char}efgh") is not None
        assert refused == (char.isspace() or not char.isprintable()), hex(code)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("ct_short", None),
        ("ct_" + "a" * 197, None),
        ("ct_shor", "an API key has 8 to 200 characters"),
        ("ct_" + "a" * 198, "an API key has 8 to 200 characters"),
        ("ct_has space", "an API key has no spaces or control characters"),
        ("ct_tab\there", "an API key has no spaces or control characters"),
    ],
)
def test_key_shapes(key: str, problem: str | None) -> None:
    assert key_shape_problem(key) == problem

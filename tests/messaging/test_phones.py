"""messaging.phones.to_e164: numbers as messaging stores them, and the shortcut for numbers
already in NANP E.164 form giving exactly what a full parse gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caretime.messaging.phones import _parsed_e164, to_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+12065550100", "+12065550100"),  # already E.164: the shortcut
        ("(206) 555-0100", "+12065550100"),
        ("+1 206 555 0100", "+12065550100"),
        ("1-206-555-0100", "+12065550100"),
        ("+442071838750", "+442071838750"),  # another country: a full parse
        ("+1206555010", None),  # one digit short
        ("+120655501000", None),  # one digit long
        ("not a number", None),
        ("", None),
    ],
)
def test_numbers_become_e164_or_none(raw: str, expected: str | None) -> None:
    assert to_e164(raw) == expected


@given(area=st.integers(200, 999), exchange=st.integers(200, 999), line=st.integers(0, 9999))
def test_the_shortcut_agrees_with_a_full_parse(area: int, exchange: int, line: int) -> None:
    number = f"+1{area}{exchange}{line:04d}"
    assert to_e164(number) == _parsed_e164(number)

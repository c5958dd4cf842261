from datetime import UTC, datetime

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import geocoder

from caretime.policy.legal import STATE_AREA_CODES
from caretime.policy.phones import PhoneBook, UndialableNumber
from caretime.policy.planner import PlanItem, Planner, Rejected, Scheduled
from caretime.tenancy.policy import CallingPolicy

LA = "America/Los_Angeles"


@pytest.mark.parametrize(
    ("raw", "e164", "zones", "state"),
    [
        ("206-555-0100", "+12065550100", (LA,), "WA"),
        ("1-206-555-5555", "+12065555555", (LA,), "WA"),
        ("(212) 555-0100", "+12125550100", ("America/New_York",), None),
        ("+1 312.555.0100", "+13125550100", ("America/Chicago",), None),
        # 208 (Idaho): some exchanges span two zones, others are in one.
        ("+1 (208) 200-0100", "+12082000100", ("America/Boise", LA), None),
        ("208-201-0100", "+12082010100", ("America/Denver",), None),
        # 850 (Florida panhandle): the exchange decides between Central and Eastern.
        ("850-200-0100", "+18502000100", ("America/Chicago",), "FL"),
        ("850-201-0100", "+18502010100", ("America/New_York",), "FL"),
        # 928 (Arizona): the Navajo Nation observes DST, the rest of Arizona does not.
        ("928-283-0100", "+19282830100", ("America/Denver", "America/Phoenix"), None),
        ("928-200-0100", "+19282000100", ("America/Phoenix",), None),
        ("+44 20 7946 0958", "+442079460958", ("Europe/London",), None),
    ],
)
def test_numbers_resolve_to_e164_zones_and_state(
    raw: str, e164: str, zones: tuple[str, ...], state: str | None
) -> None:
    phone = PhoneBook().parse(raw)
    assert (phone.e164, phone.zones, phone.state, phone.non_geographic) == (
        e164,
        zones,
        state,
        False,
    )


@pytest.mark.parametrize("raw", ["+1 800 555 0100", "888-555-0100", "1-900-555-0100"])
def test_non_geographic_numbers_have_no_zone(raw: str) -> None:
    phone = PhoneBook().parse(raw)
    assert phone.zones == ()
    assert phone.non_geographic


@pytest.mark.parametrize(
    "raw",
    ["2-(208)-555-5556", "555-0100", "hello", "", "+1 123 456 7890", "206-555-010", "+2065550100"],
)
def test_invalid_numbers_are_undialable(raw: str) -> None:
    with pytest.raises(UndialableNumber):
        PhoneBook().parse(raw)


def test_numbers_sharing_a_prefix_share_one_cache_entry() -> None:
    book = PhoneBook()
    first, second = book.parse("206-555-0100"), book.parse("+1 206 555 0199")
    assert first.zones == second.zones
    assert book.cached_prefixes == 1


@given(
    area=st.integers(200, 999),
    exchange=st.integers(200, 999),
    line=st.integers(0, 9999),
    style=st.sampled_from(["{a}{e}{l}", "1-{a}-{e}-{l}", "+1 ({a}) {e}.{l}", "({a}) {e}-{l}"]),
)
def test_the_fast_path_agrees_with_phonenumbers(
    area: int, exchange: int, line: int, style: str
) -> None:
    raw = style.format(a=area, e=exchange, l=f"{line:04d}")
    number = phonenumbers.parse(raw, "US")
    try:
        phone = PhoneBook().parse(raw)
    except UndialableNumber:
        assert not phonenumbers.is_valid_number(number)
        return
    assert phonenumbers.is_valid_number(number)
    assert phone.e164 == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    ("state", "area_code"),
    [(state, code) for state, codes in STATE_AREA_CODES.items() for code in codes],
)
def test_state_area_codes_match_phonenumbers_geography(state: str, area_code: str) -> None:
    names = {"FL": "Florida", "OK": "Oklahoma", "MD": "Maryland", "WA": "Washington State",
             "AL": "Alabama", "LA": "Louisiana"}  # fmt: skip
    for exchange in range(200, 1000, 37):
        number = phonenumbers.parse(f"+1{area_code}{exchange}0100", "US")
        place = geocoder.description_for_number(number, "en")
        if place:
            assert place == names[state] or place.endswith(f", {state}")


@pytest.mark.parametrize(
    ("number", "reported", "zones"),
    [
        ("907-555-0100", "America/Anchorage", ("America/Adak", "America/Anchorage")),
        ("208-200-0100", "America/Boise", ("America/Boise", "America/Los_Angeles")),
        ("928-283-0100", "America/Phoenix", ("America/Denver", "America/Phoenix")),
        ("212-555-0100", "America/New_York", ("America/New_York",)),
    ],
)
def test_a_multi_zone_prefix_reports_where_most_of_its_numbers_are(
    number: str, reported: str, zones: tuple[str, ...]
) -> None:
    phone = PhoneBook().parse(number)
    assert (phone.display_zone, phone.zones) == (reported, zones)
    (outcome,) = Planner(CallingPolicy(), now=datetime(2026, 3, 2, 15, tzinfo=UTC)).plan(
        [PlanItem("P", number)]
    )
    assert isinstance(outcome, Scheduled)
    assert (outcome.tz, outcome.zones) == (reported, zones)


def test_planning_a_multi_zone_number_uses_every_zone_and_says_so() -> None:
    now = datetime(2026, 3, 2, 15, tzinfo=UTC)
    # 09:30 in Anchorage is 08:30 in Adak, before its 09:00 window: only Adak refuses it.
    at = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
    (outcome,) = Planner(CallingPolicy(), now=now).plan([PlanItem("P", "907-555-0100", at)])
    assert isinstance(outcome, Rejected)
    assert "local time in America/Adak is outside the allowed hours" in outcome.error
    assert "spans America/Adak, America/Anchorage: every one of them must allow it" in (
        outcome.error
    )

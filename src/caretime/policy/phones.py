"""Phone numbers → E.164, time zones and US state, with a cache keyed by dialling prefix.

Everything `phonenumbers` knows about a NANP number that matters here (validity, number type,
time zones) depends only on its first seven digits, 1 + area code + exchange, so the full
parse runs once per prefix and every other number with that prefix costs a dict lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberType, timezone
from pydantic import BeforeValidator

from caretime.policy.legal import STATE_BY_AREA_CODE

DEFAULT_REGION = "US"
_UNKNOWN_ZONE = "Etc/Unknown"
# Numbers that are not tied to a place: their time zone cannot be inferred.
_NON_GEOGRAPHIC = frozenset(
    {
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.PERSONAL_NUMBER,
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
        PhoneNumberType.PAGER,
    }
)
# A dialling prefix that spans several zones is reported in the zone most of its numbers are
# in, by area code (Alaska's 907 in Anchorage, not Adak; Idaho's 208 in Boise; Nevada's 775
# in Los Angeles' zone); planning still uses every zone, so a call is allowed only when all
# of them allow it. Other sets fall back to the most populous zone they contain.
_MAIN_ZONE_BY_AREA_CODE = {
    "208": "America/Boise", "986": "America/Boise", "775": "America/Los_Angeles",
    "907": "America/Anchorage", "928": "America/Phoenix", "709": "America/St_Johns",
    "879": "America/St_Johns", "605": "America/Denver", "701": "America/North_Dakota/Center",
}  # fmt: skip
_BY_POPULATION = (
    "America/New_York", "America/Chicago", "America/Los_Angeles", "America/Denver",
    "America/Phoenix", "America/Toronto", "America/Vancouver", "America/Anchorage",
    "Pacific/Honolulu", "America/Boise",
)  # fmt: skip
_PUNCTUATION = b" -().+\t"
_ONE = ord("1")


class UndialableNumber(Exception):
    """The text is not a valid, dialable phone number; the message says why, in words."""


@dataclass(frozen=True, slots=True)
class PhoneFacts:
    """What a dialling prefix tells us: time zones (empty if unknown) and US state."""

    zones: tuple[str, ...]
    state: str | None
    non_geographic: bool
    # The zone to report (see _MAIN_ZONE_BY_AREA_CODE); None when there is no zone.
    display_zone: str | None = None
    # (zones, state), built once: the planner looks its windows up by it for every number.
    window_key: tuple[tuple[str, ...], str | None] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "window_key", (self.zones, self.state))


class Phone(NamedTuple):
    e164: str
    zones: tuple[str, ...]
    state: str | None
    non_geographic: bool
    display_zone: str | None = None


class PhoneBook:
    """Parses numbers; NANP numbers take a fast path through a per-prefix cache."""

    def __init__(self, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self._nanp = region == "US"
        self._by_prefix: dict[bytes, PhoneFacts | None] = {}
        self._interned: dict[PhoneFacts, PhoneFacts] = {}

    @property
    def cached_prefixes(self) -> int:
        return len(self._by_prefix)

    def parse(self, raw: str) -> Phone:
        found = self.lookup(raw)
        if found is None:
            return self._parse_slowly(raw)
        e164, facts = found
        return Phone(e164, facts.zones, facts.state, facts.non_geographic, facts.display_zone)

    def lookup(self, raw: str) -> tuple[str, PhoneFacts] | None:
        """The fast path: E.164 and the prefix's facts for a plainly written NANP number;
        None when the text needs a full parse. Raises UndialableNumber."""
        national = _nanp_national_digits(raw) if self._nanp else None
        if national is None:
            return None
        prefix, e164 = national[:6], "+1" + national.decode()
        facts = self._by_prefix.get(prefix, _MISSING)
        if facts is _MISSING:
            facts = self._by_prefix[prefix] = self._intern(_nanp_facts(e164))
        if facts is None:
            raise UndialableNumber("not a valid phone number")
        return e164, facts

    def _intern(self, facts: PhoneFacts | None) -> PhoneFacts | None:
        # Prefixes with the same zones and state share one object (and one window key).
        return None if facts is None else self._interned.setdefault(facts, facts)

    def _parse_slowly(self, raw: str) -> Phone:
        number = _parse_valid(raw, self.region)
        facts = _facts(number)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return Phone(e164, facts.zones, facts.state, facts.non_geographic, facts.display_zone)


_MISSING = PhoneFacts((), None, False)


def _nanp_national_digits(raw: str) -> bytes | None:
    """The ten national digits of a plainly written NANP number (as ASCII bytes), or None to
    parse fully."""
    # Bytes: deleting punctuation from ASCII bytes is several times faster than str.translate.
    digits = raw.encode("utf-8", "replace").translate(None, _PUNCTUATION)
    if len(digits) == 11 and digits[0] == _ONE:
        digits = digits[1:]
    elif len(digits) != 10 or "+" in raw:
        return None  # ten digits after "+" would be another country's number
    if not digits.isdigit() or digits[0] in b"01":
        return None
    if "+" in raw and raw.lstrip()[0] != "+":
        return None
    return digits


def _nanp_facts(e164: str) -> PhoneFacts | None:
    try:
        number = _parse_valid(e164, "US")
    except UndialableNumber:
        return None
    return _facts(number)


def _parse_valid(raw: str, region: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise UndialableNumber("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise UndialableNumber("not a valid phone number")
    return number


def _facts(number: phonenumbers.PhoneNumber) -> PhoneFacts:
    state = None
    if number.country_code == 1:
        state = STATE_BY_AREA_CODE.get(str(number.national_number)[:3])
    if phonenumbers.number_type(number) in _NON_GEOGRAPHIC:
        return PhoneFacts((), state, non_geographic=True)
    zones = tuple(z for z in timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE)
    area_code = str(number.national_number)[:3] if number.country_code == 1 else None
    return PhoneFacts(zones, state, False, main_zone(zones, area_code))


def main_zone(zones: tuple[str, ...], area_code: str | None = None) -> str | None:
    """The zone most of a prefix's numbers are in: the only one, the area code's main zone,
    else the most populous of them (else the first)."""
    if len(zones) <= 1:
        return zones[0] if zones else None
    preferred = _MAIN_ZONE_BY_AREA_CODE.get(area_code or "")
    if preferred in zones:
        return preferred
    return next((zone for zone in _BY_POPULATION if zone in zones), zones[0])


default_phone_book = PhoneBook()


def parse_phone(raw: str) -> Phone:
    """Parse and normalize with the shared cache (default region US)."""
    return default_phone_book.parse(raw)


PHONE_IS_TEXT = 'a phone number is text, e.g. "+1 212 555 0100"'


def phone_text(value: Any) -> Any:
    """A phone sent as a JSON integer is read as its digits (2125550100 is "2125550100");
    a JSON number with a fraction or an exponent, or a boolean, cannot be a phone number."""
    if isinstance(value, bool | float):
        raise ValueError(f"{PHONE_IS_TEXT}, not {json.dumps(value)}")
    return str(value) if isinstance(value, int) else value


# A phone field: a string, or a JSON integer read as its digits.
PhoneText = Annotated[str, BeforeValidator(phone_text)]


def dialable_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """'(206) 555-0100' → '+12065550100'. Raises ValueError, in words, for a number nobody
    can dial: a validator for the numbers people give us (caregivers, patients)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a dialable phone number (wrong length or unassigned prefix)")
    formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted

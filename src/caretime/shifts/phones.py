"""Caregiver phone numbers: anything dialable in, E.164 out; the rest is refused with a reason."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "US"


def to_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """'(206) 555-0100' → '+12065550100'. Raises ValueError for a number nobody can dial."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a dialable phone number (wrong length or unassigned prefix)")
    formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted

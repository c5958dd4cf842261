"""Phone numbers as messaging stores them: E.164, parsed with the US as the default region."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "US"
# A NANP number already in E.164: what a full parse would return unchanged (a possible number
# is a matter of length here). Stored numbers look like this, so a fan-out skips 5,000 parses.
_NANP_E164 = re.compile(r"\+1[2-9]\d{2}[2-9]\d{6}")


def to_e164(raw: str) -> str | None:
    """The number in E.164 (`+12065550100`), or None when it is not a possible number."""
    if _NANP_E164.fullmatch(raw):
        return raw
    return _parsed_e164(raw)


# Fan-outs parse the same caregivers' numbers round after round; parsing is the costly part.
@lru_cache(maxsize=65_536)
def _parsed_e164(raw: str) -> str | None:
    try:
        parsed = phonenumbers.parse(raw.strip(), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))

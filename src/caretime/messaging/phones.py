"""Phone numbers as messaging stores them: E.164, parsed with the US as the default region."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "US"


# Fan-outs parse the same caregivers' numbers round after round; parsing is the costly part.
@lru_cache(maxsize=65_536)
def to_e164(raw: str) -> str | None:
    """The number in E.164 (`+12065550100`), or None when it is not a possible number."""
    try:
        parsed = phonenumbers.parse(raw.strip(), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))

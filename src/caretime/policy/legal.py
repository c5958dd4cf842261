"""Legal calling limits as data: the federal window and the stricter state rules.

No tenant setting can widen these; windows.py intersects them with the tenant's own windows.
A state is known from the number's area code (overlays included); unknown means federal only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time


@dataclass(frozen=True)
class LegalRule:
    """Hours in the called party's local time, and days on which no call is allowed."""

    name: str
    start: time
    end: time
    no_sundays: bool = False
    no_legal_holidays: bool = False

    def describe(self) -> str:
        words = f"{self.name}: {self.start:%H:%M}–{self.end:%H:%M} local"
        if self.no_sundays:
            words += ", no calls on Sundays"
        if self.no_legal_holidays:
            words += ", no calls on legal holidays"
        return words


FEDERAL = LegalRule("US federal (TCPA)", time(8), time(21))

STATE_RULES: dict[str, LegalRule] = {
    "FL": LegalRule("Florida law", time(8), time(20)),
    "OK": LegalRule("Oklahoma law", time(8), time(20)),
    "MD": LegalRule("Maryland law", time(8), time(20)),
    "WA": LegalRule("Washington law", time(8), time(20)),
    "AL": LegalRule("Alabama law", time(8), time(21), no_sundays=True, no_legal_holidays=True),
    "LA": LegalRule("Louisiana law", time(8), time(21), no_sundays=True, no_legal_holidays=True),
}

# Area codes (NPA) of the states that have rules above, overlays included.
STATE_AREA_CODES: dict[str, tuple[str, ...]] = {
    "FL": (
        "239", "305", "321", "324", "352", "386", "407", "448", "561", "645", "656", "689",
        "727", "728", "754", "772", "786", "813", "850", "863", "904", "941", "954",
    ),
    "OK": ("405", "539", "572", "580", "918"),
    "MD": ("227", "240", "301", "410", "443", "667"),
    "WA": ("206", "253", "360", "425", "509", "564"),
    "AL": ("205", "251", "256", "334", "483", "659", "938"),
    "LA": ("225", "318", "337", "457", "504", "985"),
}  # fmt: skip

STATE_BY_AREA_CODE: dict[str, str] = {
    area_code: state for state, codes in STATE_AREA_CODES.items() for area_code in codes
}


def rules_for(state: str | None) -> tuple[LegalRule, ...]:
    """The legal rules for a number: always federal, plus its state's if it has one."""
    state_rule = STATE_RULES.get(state) if state else None
    return (FEDERAL,) if state_rule is None else (FEDERAL, state_rule)

"""Holiday calendars from the `holidays` library, cached per country, subdivision and year."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays


@lru_cache(maxsize=256)
def holidays_in(country: str, subdiv: str | None, year: int) -> dict[date, str]:
    """Public holidays of a country (or one of its states) in a year: date → name."""
    calendar = holidays.country_holidays(country, subdiv=subdiv, years=year)
    return dict(calendar.items())


def holiday_name(day: date, country: str, subdiv: str | None = None) -> str | None:
    return holidays_in(country, subdiv, day.year).get(day)

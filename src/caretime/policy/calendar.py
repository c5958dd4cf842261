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


def load_calendars(country: str = "US") -> None:
    """Load the holidays library's country data now (about a second, once per process), so
    the first batch planned after start-up does not pay for it."""
    holidays_in(country, None, date.today().year)

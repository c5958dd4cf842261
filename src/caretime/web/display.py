"""How values read on a page: phone numbers as people write them, ids behind names."""

from __future__ import annotations

import phonenumbers
from markupsafe import Markup, escape

from caretime.policy.phones import DEFAULT_REGION

_HOME_CODE = phonenumbers.country_code_for_region(DEFAULT_REGION)


def phone(value: str | None) -> Markup:
    """`(212) 555-0100`, with the stored E.164 form on hover. A number of another country
    plan keeps its international form: the national one alone would hide the country."""
    if not value:
        return Markup("—")
    try:
        number = phonenumbers.parse(value, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return escape(value)
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == _HOME_CODE
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    shown = phonenumbers.format_number(number, style)
    return Markup('<span class="phone" title="{}">{}</span>').format(value, shown)


def named(name: str | None, id_: str) -> Markup:
    """A person by name, their id on hover (the id alone when the name is unknown)."""
    if not name:
        return Markup('<span class="id">{}</span>').format(id_)
    return Markup('<span class="named" title="{}">{}</span>').format(id_, name)

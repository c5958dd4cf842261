"""Contact policy: when may we call whom. Pure functions from data to data, no I/O.

Phone numbers → time zones (phones), legal limits (legal), holidays (calendar), allowed UTC
intervals with the rules that shaped them (windows), per-contact caps (caps), and the
capacity planner that fits a batch into those intervals (planner).
"""

from caretime.policy.caps import ContactCaps, next_moment_under_caps
from caretime.policy.phones import Phone, PhoneBook, UndialableNumber, parse_phone
from caretime.policy.planner import (
    CapacityLedger,
    Outcome,
    PlanItem,
    Planner,
    Rejected,
    Scheduled,
    Strategy,
)
from caretime.policy.windows import ContactWindows, contact_windows, explain_outside

__all__ = [
    "CapacityLedger",
    "ContactCaps",
    "ContactWindows",
    "Outcome",
    "Phone",
    "PhoneBook",
    "PlanItem",
    "Planner",
    "Rejected",
    "Scheduled",
    "Strategy",
    "UndialableNumber",
    "contact_windows",
    "explain_outside",
    "next_moment_under_caps",
    "parse_phone",
]

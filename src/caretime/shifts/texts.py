"""What caregivers read and hear. PHI-minimal: role, local time, location; never notes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from caretime.shifts.models import Shift


def _clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{hour}:{moment.minute:02d} {suffix}"


def _day(moment: datetime) -> str:
    return f"{moment:%a %b} {moment.day}"


def when(shift: Shift) -> str:
    """'Thu Jul 2, 8:00 AM–4:00 PM EDT' in the shift's own zone."""
    zone = ZoneInfo(shift.tz)
    start, end = shift.start_time.astimezone(zone), shift.end_time.astimezone(zone)
    if start.date() == end.date():
        span = f"{_day(start)}, {_clock(start)}–{_clock(end)}"
    else:
        span = f"{_day(start)} {_clock(start)} – {_day(end)} {_clock(end)}"
    return f"{span} {start.tzname()}"


def _what(shift: Shift) -> str:
    where = f" at {shift.location}" if shift.location else ""
    return f"{shift.role_required} shift {when(shift)}{where}"


def offer_text(shift: Shift, channel: str) -> str:
    if channel == "voice":
        # Answered on the keypad (see fanout.KEYPAD_CHOICES), not by a text.
        return (
            f"Hello, this is your agency's scheduling line with an open {_what(shift)}. "
            "Press 1 to take the shift, or 2 to pass."
        )
    return f"Open {_what(shift)}. Reply YES to take it or NO to pass."


def assigned_text(shift: Shift) -> str:
    return f"Confirmed: the {_what(shift)} is yours. Thank you!"


def already_yours_text(shift: Shift) -> str:
    return f"You already have the {_what(shift)}."


def already_filled_text(shift: Shift) -> str:
    return f"Thank you! The {shift.role_required} shift {when(shift)} has already been filled."


def unavailable_text(shift: Shift, reason: str) -> str:
    return f"The {shift.role_required} shift {when(shift)} is no longer available ({reason})."


def declined_text(shift: Shift) -> str:
    return f"Thanks for letting us know; we won't offer you the shift {when(shift)} again."


def clarify_text(shift: Shift) -> str:
    return f"Sorry, we didn't understand. Reply YES to take the {_what(shift)} or NO to pass."


def dropped_text(shift: Shift) -> str:
    return f"Thanks for telling us: you are off the {_what(shift)}. We will find someone else."


def unassigned_text(shift: Shift) -> str:
    return f"Your coordinator has taken you off the {_what(shift)}. You do not need to go."


def cancelled_text(shift: Shift) -> str:
    return f"Cancelled: the {_what(shift)} is cancelled. You do not need to go. Thank you!"


def offer_withdrawn_text(shift: Shift) -> str:
    return f"The {_what(shift)} we offered you has been cancelled. No need to reply."


def changed_text(shift: Shift, deadline: datetime) -> str:
    by = deadline.astimezone(ZoneInfo(shift.tz))
    return (
        f"Changed: your shift is now the {_what(shift)}. Reply YES to keep it or NO to give "
        f"it up, by {_day(by)}, {_clock(by)} {by.tzname()}."
    )


def kept_text(shift: Shift) -> str:
    return f"Thanks: you keep the {_what(shift)}."


def not_reconfirmed_text(shift: Shift) -> str:
    return (
        f"We did not hear back about the change, so the {_what(shift)} is no longer yours "
        "and is being offered to others."
    )


def closed_text(shift: Shift, caregiver_id: str) -> str:
    """Where a shift that is no longer open stands, for one caregiver; it offers nothing."""
    if shift.status == "filled" and shift.assigned_caregiver_id == caregiver_id:
        return f"You have the {_what(shift)}. Reply NO only if you can no longer go."
    if shift.status == "filled":
        return f"Thank you! The {shift.role_required} shift {when(shift)} has been filled."
    if shift.status == "cancelled":
        return f"The {shift.role_required} shift {when(shift)} was cancelled."
    return f"The {shift.role_required} shift {when(shift)} is no longer available."


def question_open_text(shift: Shift) -> str:
    return (
        "Thanks, we have passed your message to your coordinator, who will get back to you. "
        f"To take the whole {_what(shift)} as offered, reply YES; to pass, reply NO."
    )


def question_closed_text(shift: Shift, caregiver_id: str) -> str:
    passed = "Thanks, we have passed your message to your coordinator."
    return f"{passed} {closed_text(shift, caregiver_id)}"


def question_alert(shift: Shift, name: str, caregiver_id: str, text: str) -> str:
    return (
        f'Question on the {_what(shift)} (shift {shift.id}) from {name} ({caregiver_id}): "{text}"'
    )


def _ref(shift: Shift) -> str:
    return f"the {_what(shift)} (shift {shift.id})"


def dropped_alert(shift: Shift, who: str, reason: str, refilling: bool) -> str:
    then = "Re-fill started." if refilling else "Re-fill waits for you: start the fan-out again."
    return f"Call-out: {who} is off {_ref(shift)} ({reason}). {then}"


def filled_alert(shift: Shift, who: str) -> str:
    return f"Filled: {_ref(shift)} is taken by {who}."


def unfilled_alert(shift: Shift, reason: str) -> str:
    if reason == "ladder":
        return f"Still open: {_ref(shift)}. Every round has gone out and nobody has taken it."
    return f"Still open: {_ref(shift)} starts soon and nobody has taken it."


def expired_alert(shift: Shift) -> str:
    return f"Expired unfilled: {_ref(shift)} started with nobody on it."


def over_hours_text() -> str:
    return "This would put you over your weekly hours; your coordinator has been told."


def overtime_alert(shift: Shift, who: str) -> str:
    past = "but it would take them past their weekly hours"
    return f"Over hours: {who} said yes to {_ref(shift)}, {past}."

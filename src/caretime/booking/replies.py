"""What a patient's text to booking means: the messaging intent (YES / NO), plus booking's own
words: R or "reschedule", "cancel my appointment", and a number picking a listed time.
(A bare CANCEL never gets here: carriers require it to opt out, and messaging does that.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from caretime.messaging import Intent
from caretime.messaging.intent import normalize


class Reply(StrEnum):
    yes = "yes"
    no = "no"
    reschedule = "reschedule"
    cancel = "cancel"
    choice = "choice"
    unclear = "unclear"


@dataclass(frozen=True)
class Understood:
    reply: Reply
    choice: int = 0  # 1-based, for Reply.choice


_RESCHEDULE = re.compile(
    r"^(r|resched|reschedule|rebook|re book|re schedule)$"
    r"|\b(reschedule|rebook|another time|different time|change (my|the) (appointment|visit|time))\b"
)
_CANCEL = re.compile(
    r"\bcancel (my|the|this) (appointment|appt|visit)\b|\bcancel (appointment|appt|visit)\b"
)
_CHOICE = re.compile(r"^(?:option |number )?([1-9])$")


def understand(body: str, intent: Intent) -> Understood:
    words = normalize(body)
    if (choice := _CHOICE.match(words)) is not None:
        return Understood(Reply.choice, int(choice.group(1)))
    if _RESCHEDULE.search(words):
        return Understood(Reply.reschedule)
    if _CANCEL.search(words):
        return Understood(Reply.cancel)
    if intent is Intent.accept:
        return Understood(Reply.yes)
    if intent is Intent.decline:
        return Understood(Reply.no)
    return Understood(Reply.unclear)

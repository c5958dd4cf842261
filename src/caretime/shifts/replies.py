"""Is a "yes" a plain yes? A yes with a condition or for part of the shift ("yes but only
until 3pm", "yes if I can leave at 2") is a question for the coordinator, never a claim.

Deliberately cautious: a plain yes that reads as conditional costs a coordinator a look; a
conditional yes that reads as plain gives a caregiver a shift on terms they did not accept.
"""

from __future__ import annotations

import re

from caretime.messaging.intent import normalize

# Whole words or phrases over normalized text (lower case, punctuation as spaces).
_CONDITIONS = """
    but | if | only | unless | until | till | til | untill | as long as | provided | except
    however | though | although | instead | rather | as soon as
    after | before | from | between | leave | leaving | left early | off at | out by
    late | later | early | earlier | arrive | start at | come in at | get there | there by
    part | partial | half | some of | first half | second half | few hours | couple hours
    hours | hrs | hr | can i | could i | may i | do i | is it | would it | will it
    depends | depending | maybe | possibly | probably | might | need to | have to | gotta
    pick up | drop off | kids | school | ride | car | bring | pay | rate | bonus | overtime
"""
_WORDS = [p.strip() for p in re.split(r"\s*\|\s*|\n", _CONDITIONS) if p.strip()]
_CONDITION = re.compile(r"(?<![\w'])(?:" + "|".join(map(re.escape, _WORDS)) + r")(?![\w'])")
# A clock time ("3pm", "2:30", "at 2") names a different span than the one offered.
_TIME = re.compile(r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm|a|p)\b|\b\d{1,2}:\d{2}\b|\bat \d{1,2}\b")


def is_conditional(text: str) -> bool:
    """True if the reply attaches a condition, a time, a part of the shift or a question."""
    words = normalize(text)
    return "?" in text or bool(_CONDITION.search(words) or _TIME.search(words))

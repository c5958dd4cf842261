"""Reply intent: what a person meant by their text, behind a Protocol so a model can replace
the keyword classifier without touching routing.

The keyword classifier works on whole words and phrases (never prefixes: "yesterday" is not
"yes", "nothing" is not "no"). Opt-out, opt-in and help keywords count only when they are the
whole message, as carriers apply them. Otherwise every accept or decline phrase is found in
order and the last one wins ("yes... actually no" is a decline): people correct themselves
at the end of a message, rarely at the start.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from typing import Protocol


class Intent(StrEnum):
    accept = "accept"
    decline = "decline"
    unknown = "unknown"
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"


class IntentClassifier(Protocol):
    def classify(self, text: str) -> Intent: ...


OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
OPT_OUT_PHRASES = frozenset(
    {
        "opt out",
        "stop all",
        "unsubscribe me",
        "stop texting me",
        "stop messaging me",
        "stop calling me",
        "stop contacting me",
    }
)
OPT_IN_WORDS = frozenset({"start", "unstop", "subscribe", "optin", "opt in"})
HELP_WORDS = frozenset({"help", "info"})

# Whole-message shorthands that would be too ambiguous inside a sentence.
_EXACT = {
    "y": Intent.accept,
    "k": Intent.accept,
    "kk": Intent.accept,
    "me": Intent.accept,
    "n": Intent.decline,
}

# Phrases (regular expressions over normalized text). Where two overlap, the longer wins,
# so "no problem" is an accept and "no can do" a decline. Neutral phrases swallow words
# that would otherwise read as an answer ("not sure" is neither "sure" nor a "no").
_PHRASES: dict[Intent, str] = {
    Intent.accept: """
        ye+s+ | ye+a+h* | ya+s+ | ya+h* | yu+p+ | ye+p+ | yah | yeh | sure | ok+ | o+k+a+y+ | okey
        alright | all right | absolutely | definitely | certainly | of course | for sure
        sure thing | you bet | why not | no problem | no prob | no probs | not a problem
        no worries | no doubt | i can | i can do it | can do | i could | i will | i'll
        i'll take it | i'll take | take it | i'll do it | i'll be there | i will be there
        be there | on my way | omw | i'm in | im in | count me in | i'm available
        im available | available | i'm free | im free | works for me | sounds good
        sounds great | will do | deal | accept | accepted | confirm | confirmed | roger | on it
        i'd love to | love to | happy to | glad to | i want it | gladly | yes please | not busy
        can't wait | cant wait | can't say no | cant say no
    """,
    Intent.decline: """
        no+ | nope | nah+ | negative | decline | declined | pass | i'll pass | no thanks
        no thank you | no can do | no way | can't | cant | cannot | can not | couldn't
        couldnt | won't | wont | will not | unable | unavailable | i can not | i could not
        i will not | i won't | i'll not | i wont | not available | not avail | not able
        not free | not me | not for me | not this time | not today | not now | not tonight
        i'm busy | im busy | busy | i'm out | count me out | unfortunately | not ok | not okay
        not interested | not going to | not gonna
    """,
    Intent.unknown: """
        i'm not sure | not sure | no idea | i don't know | idk | maybe | perhaps | what
        who is this | wrong number
    """,
}

_EMOJI = {
    "👍": Intent.accept,
    "👌": Intent.accept,
    "✅": Intent.accept,
    "✔": Intent.accept,
    "🙋": Intent.accept,
    "💪": Intent.accept,
    "👎": Intent.decline,
    "❌": Intent.decline,
    "🚫": Intent.decline,
    "🙅": Intent.decline,
}

_WORD = r"(?<![\w'])(?:{})(?![\w'])"
# One pattern per alternative, so overlapping phrases all compete on length.
_PATTERNS = tuple(
    (re.compile(_WORD.format(" ".join(phrase.split()))), intent)
    for intent, alternatives in _PHRASES.items()
    for phrase in re.split(r"\s*\|\s*|\n", alternatives)
    if phrase.strip()
)
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})
_NOT_TEXT = re.compile(r"[^\w'\s]")


def normalize(text: str) -> str:
    """Lower case, straight apostrophes, punctuation to spaces, single spaces."""
    lowered = text.translate(_APOSTROPHES).lower()
    return " ".join(_NOT_TEXT.sub(" ", lowered).split())


class KeywordClassifier:
    """Keyword and phrase rules; deterministic and explainable."""

    def classify(self, text: str) -> Intent:
        if len(text) <= _REMEMBERED_LENGTH:
            return _classify_short(text)
        return _classify(text)


# A burst of replies is mostly the same few short words ("yes", "no"): their intents are
# kept (rules are pure, so a kept answer is the answer), longer texts are classified anew.
_REMEMBERED_LENGTH = 24


@functools.lru_cache(maxsize=1024)
def _classify_short(text: str) -> Intent:
    return _classify(text)


def _classify(text: str) -> Intent:
    words = normalize(text)
    keyword = _keyword_intent(words)
    if keyword is not None:
        return keyword
    found = _phrase_hits(words) + _emoji_hits(text)
    clear = [intent for _, intent in sorted(found) if intent is not Intent.unknown]
    if found and not clear:
        return Intent.unknown
    return clear[-1] if clear else Intent.unknown


def _keyword_intent(words: str) -> Intent | None:
    compact = words.replace("'", "")
    if compact in OPT_OUT_PHRASES or compact.replace(" ", "") in OPT_OUT_WORDS:
        return Intent.opt_out
    if compact in OPT_IN_WORDS:
        return Intent.opt_in
    if compact in HELP_WORDS:
        return Intent.help
    return _EXACT.get(compact)


def _phrase_hits(words: str) -> list[tuple[int, Intent]]:
    """Non-overlapping phrase matches, preferring the earliest and then the longest."""
    spans = sorted(
        (m.start(), m.start() - m.end(), intent)
        for pattern, intent in _PATTERNS
        for m in pattern.finditer(words)
    )
    hits: list[tuple[int, Intent]] = []
    covered_until = -1
    for start, negative_length, intent in spans:
        if start >= covered_until:
            covered_until = start - negative_length
            hits.append((start, intent))
    return hits


def _emoji_hits(text: str) -> list[tuple[int, Intent]]:
    # Emoji positions are placed after all words: "ok 👎" reads as the thumb's answer.
    offset = len(text) + 1
    return [(offset + i, _EMOJI[ch]) for i, ch in enumerate(text) if ch in _EMOJI]


DEFAULT_CLASSIFIER: IntentClassifier = KeywordClassifier()


def classify_intent(text: str, classifier: IntentClassifier | None = None) -> Intent:
    return (classifier or DEFAULT_CLASSIFIER).classify(text)

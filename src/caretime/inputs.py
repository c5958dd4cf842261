"""Hostile inputs refused at the edge, for every endpoint at once: a NUL character (PostgreSQL
text cannot hold one), a lone surrogate (not Unicode text: it cannot be encoded as UTF-8) and
a date whose year is outside 1900-2199 (time arithmetic on it overflows). Each is a 422
problem+json naming where it is: the path, a query parameter, or a field of the JSON body.

Bodies are screened with cheap byte searches; only a body that trips one is parsed to find
the field, so ordinary requests pay a scan, not a second parse.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from caretime.errors import problem_response
from caretime.limits import BODILESS

MIN_YEAR, MAX_YEAR = 1900, 2199
# A value that is a date or a date-time and nothing else (free text that starts with a date
# is text, not a time).
_DATE = re.compile(
    r"\s*(\d{4})-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)?)?\s*"
)
# Byte patterns that may hide one of the above in a JSON body (escapes as sent on the wire).
_ESCAPES = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]")
_ODD_YEAR = re.compile(rb'"\s*(?:0\d{3}|1[0-8]\d\d|2[2-9]\d\d|[3-9]\d{3})-\d\d-\d\d')
# Bodies larger than this are screened in a worker thread (a 12 MB batch takes a few hundred
# milliseconds), so the event loop keeps serving other requests meanwhile.
SCREEN_INLINE_BYTES = 256 * 1024
Loc = tuple[str | int, ...]


def text_problem(value: str) -> str | None:
    """What is wrong with one piece of text, in words, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which text cannot hold"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff): not valid Unicode text"
    date = _DATE.fullmatch(value)
    if date is not None and not MIN_YEAR <= int(date.group(1)) <= MAX_YEAR:
        return f"year {int(date.group(1))} is outside the supported {MIN_YEAR}-{MAX_YEAR}"
    return None


def request_problems(scope: Scope, body: bytes) -> list[dict[str, Any]]:
    """Every hostile piece of the request as {loc, msg}, in the order they appear."""
    found = [
        {"loc": list(loc), "msg": msg}
        for loc, value in _texts(scope, body)
        if (msg := text_problem(value)) is not None
    ]
    return found


def _texts(scope: Scope, body: bytes) -> Iterator[tuple[Loc, str]]:
    yield ("path",), scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        yield ("query", name), name
        yield ("query", name), value
    yield from _body_texts(_media_type(scope), body)


def _body_texts(media_type: str, body: bytes) -> Iterator[tuple[Loc, str]]:
    if not body:
        return
    if media_type == "application/json" or media_type.endswith("+json"):
        if _suspect_json(body):
            yield from _json_texts(body)
    elif media_type == "application/x-www-form-urlencoded":
        # Forms are provider webhooks (an SMS body is free text): NULs only.
        form = body.decode("latin-1")
        for name, value in parse_qsl(form, keep_blank_values=True, errors="replace"):
            if "\x00" in value:
                yield ("body", name), value
    elif b"\x00" in body:  # CSV uploads and other text: no field to name
        yield ("body",), "\x00"


def _suspect_json(body: bytes) -> bool:
    if b"\x00" in body or (b"\\u" in body and _ESCAPES.search(body)):
        return True
    return _ODD_YEAR.search(body) is not None


def _json_texts(body: bytes) -> Iterator[tuple[Loc, str]]:
    try:
        document = json.loads(body)
    except ValueError:
        return  # not JSON: the endpoint's own parsing says so
    yield from _walk(document, ("body",))


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield (*loc, key), key
            yield from _walk(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, index))


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media_type: str = value.decode("latin-1").split(";")[0].strip().lower()
            return media_type
    return ""


async def screened(scope: Scope, receive: Receive) -> tuple[Response | None, Receive]:
    """The 422 for a hostile request, or None; and the `receive` the app reads the body from
    (the body, already read to screen it, given once more). Called by the edge layer
    (caretime.edge) inside the body limit: `receive` may raise BodyTooLarge."""
    if not _has_body(scope) and not scope.get("query_string") and _plain(scope.get("path", "")):
        return None, receive  # nothing that could be hostile: no body, no query, a plain path
    body, replay = await _buffered(receive) if _has_body(scope) else (b"", receive)
    if len(body) > SCREEN_INLINE_BYTES:
        problems = await asyncio.to_thread(request_problems, scope, body)
    else:
        problems = request_problems(scope, body)
    if not problems:
        return None, replay
    where = ", ".join(".".join(str(part) for part in p["loc"]) for p in problems[:3])
    response = problem_response(
        422, "validation-error", "The request is not valid", f"invalid: {where}",
        errors=problems,
    )  # fmt: skip
    return response, replay


def _plain(path: str) -> bool:
    """An ASCII path without NUL has none of the problems: it encodes, and it starts with "/",
    so it is never a date on its own."""
    return path.isascii() and "\x00" not in path and path.startswith("/")


_NO_BODY_TO_SCREEN = BODILESS | {"DELETE"}


def _has_body(scope: Scope) -> bool:
    return scope.get("method") not in _NO_BODY_TO_SCREEN


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that gives it once more, then the real one (so the
    app still learns when the client disconnects)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", _replaying(message, receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _replaying({"type": "http.request", "body": body, "more_body": False}, receive)


def _replaying(first: Message, receive: Receive) -> Receive:
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay

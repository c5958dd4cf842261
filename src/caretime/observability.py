"""Logs, request ids and metrics. Logs carry ids only: names, phones and bodies never appear."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import re
import secrets
import sys
import time
import traceback
from contextvars import ContextVar, Token
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import Scope

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_tenant_id: ContextVar[str | None] = ContextVar("tenant_id", default=None)

# Defence in depth: anything that looks like a phone number is masked even if a bug logs one,
# but ids (`ten_01a2...`, a request id's 32 hex digits) are matched first and kept whole: a
# phone has at most 15 digits and no `word_` prefix.
_PHONE_LIKE = re.compile(
    r"(?P<keep>\b[A-Za-z]+_[0-9A-Za-z]{8,}\b|\b[0-9a-fA-F]{16,}\b)|\+?\d[\d\-\s().]{5,}\d"
)
# ...but addresses and dates that merely look numeric stay readable.
_NOT_A_PHONE = re.compile(r"\d{1,3}(\.\d{1,3}){3}|\d{4}-\d{2}-\d{2}")

HTTP_REQUESTS = Counter(
    "caretime_http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "caretime_http_request_seconds", "HTTP request latency", ["method", "route"]
)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_tenant(tenant_id: str) -> None:
    _tenant_id.set(tenant_id)


def mask_phone_like(text: str) -> str:
    return _PHONE_LIKE.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    candidate = match.group(0)
    if match.group("keep"):
        return candidate
    digits = sum(char.isdigit() for char in candidate)
    if digits < 7 or _NOT_A_PHONE.fullmatch(candidate.strip()):
        return candidate
    return "[redacted]"


def format_exception_without_messages(exc_info: Any) -> str:
    """A traceback with frames and exception types but no messages: messages can carry the
    input that caused them (a name, a phone number), and logs must never hold PHI."""
    link: traceback.TracebackException | None = traceback.TracebackException.from_exception(
        exc_info[1]
    )
    parts: list[str] = []
    while link is not None:
        name = link.exc_type.__name__ if link.exc_type else "Exception"
        parts.insert(0, "".join(link.stack.format()) + f"{name}: [message redacted]\n")
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return "".join(parts).rstrip()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, as `json.dumps` writes it (its `"key": value` spacing is what
    log searches match, so it stays)."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": mask_phone_like(record.getMessage()),
        }
        entry.update(_context())
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = format_exception_without_messages(record.exc_info)
        return json_line(entry)

    def _timestamp(self, created: float) -> str:
        """Local time to the second, formatted once per second."""
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(second))
            self._second = second
        return self._stamp


# The C function json.dumps escapes each string with (ensure_ascii, its default).
_json_text = json.encoder.encode_basestring_ascii
_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}


def json_line(entry: dict[str, Any]) -> str:
    """`json.dumps(entry, default=str)`, character for character, written directly when the
    entry is flat (string keys; strings, ints, finite floats, booleans, None: every request
    line and nearly every other record). json.dumps builds an encoder per call: this costs a
    request line ~30% less (docs/benchmarks.md, "E"), paid by every request that is logged."""
    parts = []
    for key, value in entry.items():
        kind = type(value)
        if kind is str:
            text = _json_text(value)
        elif kind is int:
            text = int.__repr__(value)
        elif kind is float and math.isfinite(value):
            text = float.__repr__(value)
        elif value is None or kind is bool:
            text = _JSON_CONSTANTS[value]
        else:
            return json.dumps(entry, default=str)
        if type(key) is not str:
            return json.dumps(entry, default=str)
        parts.append(f"{_json_text(key)}: {text}")
    return "{" + ", ".join(parts) + "}"


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {**_context(), **getattr(record, "fields", {})}
        extras = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {extras}"
        if record.exc_info:
            line += "\n" + format_exception_without_messages(record.exc_info)
        return mask_phone_like(line)


def _context() -> dict[str, str]:
    context = {"request_id": _request_id.get(), "tenant_id": _tenant_id.get()}
    return {k: v for k, v in context.items() if v}


# Loggers of libraries whose records at INFO or DEBUG can carry PHI: SQL parameters (names,
# phones, message bodies), request URLs with query strings, access lines.
THIRD_PARTY_LOGGERS = (
    "aiosqlite",
    "sqlalchemy",
    "asyncpg",
    "httpx",
    "httpcore",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "alembic",
    "multipart",
    "python_multipart",
    "twilio",
    "hpack",
)


def configure_logging(level: str = "INFO", as_json: bool | None = None) -> None:
    """Our loggers (`caretime.*`) at `level`; everything else at WARNING or quieter, whatever
    `level` is: libraries log SQL parameters and URLs at DEBUG, and those hold PHI."""
    global _own_handler
    use_json = (not sys.stderr.isatty()) if as_json is None else as_json
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    _own_handler = handler
    ours = _level_number(level)
    others = max(ours, logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(others)
    logging.getLogger("caretime").setLevel(ours)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(others)
    logging.getLogger("uvicorn.access").disabled = True
    # Records need no caller's file and line, thread or process name: finding the caller
    # walks the stack on every record (the logging docs' own optimisation).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    return number


def log_event(logger: logging.Logger, event: str, **fields: Any) -> None:
    """Log a short verb with ids as structured fields (never PHI)."""
    logger.info(event, extra={"fields": fields})


# Probes a load balancer or Prometheus sends every few seconds: counted, not logged (a line
# each would drown the log and cost each probe more than answering it).
UNLOGGED_ROUTES = frozenset({"/health", "/health/ready", "/metrics"})


_http_log = logging.getLogger("caretime.http")
RequestBinding = tuple[Token[str | None], Token[str | None]]


def bind_request(scope: Scope) -> tuple[str, RequestBinding]:
    """The request's id (the caller's X-Request-ID when it is a sane one, else a new one),
    bound with an empty tenant to the context logs read; the binding is for unbind_request."""
    request_id = _incoming_request_id(scope) or _new_request_id()
    return request_id, (_request_id.set(request_id), _tenant_id.set(None))


def unbind_request(binding: RequestBinding) -> None:
    request_token, tenant_token = binding
    _tenant_id.reset(tenant_token)
    _request_id.reset(request_token)


def record_request(scope: Scope, status: int, seconds: float) -> None:
    """Counts and times the request by its route; logs it unless it is a probe."""
    route = getattr(scope.get("route"), "path", "unmatched")
    method = scope["method"]
    _requests_counted(method, route, status).inc()
    _latency_of(method, route).observe(seconds)
    if route in UNLOGGED_ROUTES or not _http_log.isEnabledFor(logging.INFO):
        return
    ms = round(seconds * 1000, 1)
    handler = _plain_json_handler()
    if handler is None:
        fields = {"method": method, "route": route, "status": status, "ms": ms}
        _http_log.info("request", extra={"fields": fields})
    else:
        _write(handler, _request_line(handler, method, route, status, ms))


# The handler configure_logging installed: the one a request line may be written to directly.
_own_handler: logging.StreamHandler[Any] | None = None


def _plain_json_handler() -> logging.StreamHandler[Any] | None:
    """configure_logging's JSON handler when it alone would receive the request's record, as
    it installed it: then the record's line can be written to its stream as the handler
    would write it. None when anything else (a test's capture, another handler, a filter)
    is configured: the record goes through logging as any other."""
    handler, root = _own_handler, logging.root
    if (
        handler is None
        or root.handlers != [handler]
        or type(handler.formatter) is not JsonFormatter
        or handler.filters
        or handler.level > logging.INFO
        or root.filters
    ):
        return None
    for logger in _REQUEST_LOGGERS:
        if logger.handlers or logger.filters or not logger.propagate:
            return None
    return handler


_REQUEST_LOGGERS = (_http_log, logging.getLogger("caretime"))


def _request_line(
    handler: logging.StreamHandler[Any], method: str, route: str, status: int, ms: float
) -> str:
    """The line JsonFormatter writes for the request's record, without the record: a
    LogRecord and the logger's and the handler's calls around it cost a request ~10 µs more
    (docs/benchmarks.md, "fw3")."""
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    entry = {
        "ts": formatter._timestamp(time.time()),
        "level": "info",
        "logger": _http_log.name,
        "event": "request",
        **_context(),
        "method": method,
        "route": route,
        "status": status,
        "ms": ms,
    }
    return json_line(entry)


def _write(handler: logging.StreamHandler[Any], line: str) -> None:
    """`line` written as the handler emits a record's."""
    with handler.lock:  # type: ignore[union-attr]
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except Exception:
            record = _http_log.makeRecord(_http_log.name, logging.INFO, "", 0, line, (), None)
            handler.handleError(record)


@functools.lru_cache(maxsize=4096)
def _requests_counted(method: str, route: str, status: int) -> Any:
    """The counter's child for these labels, looked up once (routes are a bounded set)."""
    return HTTP_REQUESTS.labels(method, route, str(status))


@functools.lru_cache(maxsize=4096)
def _latency_of(method: str, route: str) -> Any:
    return HTTP_LATENCY.labels(method, route)


# A request id: this process's random half and a counter (unique without asking the OS for
# randomness on every request, as uuid4 does), 32 hex digits like a uuid's.
_PROCESS_PART = secrets.token_hex(8)
_request_numbers = itertools.count()


def _new_process_part() -> None:
    global _PROCESS_PART
    _PROCESS_PART = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_process_part)  # a forked child is another process


def _new_request_id() -> str:
    return f"{_PROCESS_PART}{next(_request_numbers) & 0xFFFFFFFFFFFFFFFF:016x}"


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")[:64]
            return candidate if candidate.replace("-", "").isalnum() else None
    return None

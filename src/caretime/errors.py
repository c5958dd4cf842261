"""One error base for the product, rendered as RFC 9457 problem+json by one set of handlers."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from caretime.fielderrors import field_errors, where
from caretime.observability import current_request_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("caretime.errors")


class CaretimeError(Exception):
    """A failure the caller can act on. Subclasses set status, problem type and title."""

    status: ClassVar[int] = 400
    problem: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class InvalidInput(CaretimeError):
    status = 422
    problem = "invalid-input"
    title = "The request is not valid"


class Unauthorized(CaretimeError):
    status = 401
    problem = "unauthorized"
    title = "Missing or invalid API key"


class NotFound(CaretimeError):
    status = 404
    problem = "not-found"
    title = "Not found"


class Conflict(CaretimeError):
    status = 409
    problem = "conflict"
    title = "Conflict with the current state"


class IdempotencyKeyReused(InvalidInput):
    """The same Idempotency-Key with another body: 422 everywhere, as the IETF
    Idempotency-Key draft says (the key is reusable only for the very same request)."""

    problem = "idempotency-key-reused"
    title = "Idempotency-Key already used for a different request"


class ProblemFieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = None
    request_id: str | None = None


class ProblemResponse(JSONResponse):
    """A problem as application/problem+json, rendered by orjson (typed endpoints' bodies are
    rendered by pydantic straight to bytes; problems are plain dicts)."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)


def problem_type(slug: str) -> str:
    return f"urn:caretime:problem:{slug}"


def problem_response(
    status: int, slug: str, title: str, detail: str, **extensions: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
        **extensions,
    }
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ProblemResponse(body, status_code=status, headers=headers)


async def _caretime_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CaretimeError)
    return problem_response(exc.status, exc.problem, exc.title, exc.detail, **exc.extensions)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem_response(
        422,
        "validation-error",
        "The request is not valid",
        f"invalid: {where(errors)}",
        errors=errors,
    )


# Starlette's own refusals, e.g. a body that cannot be read as the declared media type (400).
HTTP_ERROR_SLUGS = {400: "malformed-body", 404: "not-found", 405: "method-not-allowed"}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = HTTP_ERROR_SLUGS.get(exc.status_code, "http-error")
    return problem_response(exc.status_code, slug, _reason(exc.status_code), str(exc.detail))


def unhandled_error(exc: Exception) -> JSONResponse:
    """Logs an exception no handler claimed and gives the 500 problem without internals. The
    edge layer (caretime.edge) calls it inside the request's context, so the log line and the
    body carry the request id."""
    log.error("unhandled_error", exc_info=exc)
    return problem_response(
        500,
        "internal-error",
        "Internal server error",
        "Something went wrong on our side; quote the request id when reporting it.",
    )


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CaretimeError, _caretime_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

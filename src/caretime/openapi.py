"""The OpenAPI document, completed: schemas of bodies that handlers read themselves, the
Problem schema every error refers to, and each operation's possible problem responses.

Routes declare the problems particular to them with `problems(SlotTaken, ...)`; what follows
from a route's shape is added here: 401 where it needs an API key (and only there), 422 where
it takes input. The contract fuzz test fails on any status an operation gives undocumented.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Query
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, TypeAdapter

from caretime.errors import PROBLEM_JSON, CaretimeError, Problem, problem_type

COMPONENTS = "#/components/schemas/{model}"
# Schemas referred to by hand-written request bodies, added to the components on first build.
_EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {}
# An example for each parameter name the API uses, so every operation shows one in /docs.
PARAMETER_EXAMPLES: dict[str, Any] = {
    "provider_id": "dr-jekyll",
    "reservation_id": "apt_01a2b3c4d5e6f708192a3b4c5d6e7f80",
    "template_id": "tpl_01a2b3c4d5e6f708192a3b4c5d6e7f80",
    "visit_type_id": "new-patient",
    "entry_id": "wl_01a2b3c4d5e6f708192a3b4c5d6e7f80",
    "call_id": "call_01a2b3c4d5e6f708192a3b4c5d6e7f80",
    "batch_id": "bat_01a2b3c4d5e6f708192a3b4c5d6e7f80",
    "shift_id": "shift-1042",
    "caregiver_id": "cg-77",
    "message_id": "msg_01a2b3c4d5e6f708192a3b4c5d6e7f80",
    "key_id": "ct_AbCdEfG",
    "limit": 100,
    "start": "2026-03-10",
    "end": "2026-03-12",
    "status": "scheduled",
    "dry_run": True,
    "force": False,
    "to": "+12065550100",
    "channel": "sms",
    "role": "RN",
    "active": True,
    "endpoint_id": "whe_01a2b3c4d5e6f708192a3b4c5d6e7f80",
    "delivery_id": 42,
    "since": "2026-03-02T00:00:00Z",
    "type": ["call.*"],
    "subject": "shift:shift-1042",
}
# Handlers that read a query model themselves (query_models.QueryModel), with the model.
_QUERY_MODELS: dict[Callable[..., Any], type[BaseModel]] = {}
_VALIDATION = ("validation-error", "The request is not valid; `errors` lists what and where")


def schema_ref(shape: Any, name: str) -> dict[str, Any]:
    """A $ref to `shape`'s JSON schema, registered under `name` in the document's components
    (for a body a handler reads itself, item by item, but that is still documented)."""
    schema = TypeAdapter(shape).json_schema(ref_template=COMPONENTS)
    _EXTRA_SCHEMAS.update(schema.pop("$defs", {}))
    _EXTRA_SCHEMAS[name] = schema
    return {"$ref": COMPONENTS.format(model=name)}


def json_body(shape: Any, name: str, **other_content: Any) -> dict[str, Any]:
    """An `openapi_extra` requestBody: JSON shaped like `shape` (plus other media types)."""
    content = {"application/json": {"schema": schema_ref(shape, name)}, **other_content}
    return {"required": True, "content": content}


HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def documents_query(model: type[BaseModel]) -> Callable[[HandlerT], HandlerT]:
    """For a handler that reads `model` from its query itself (query_models.QueryModel): its
    operation gets the parameters, in the place, FastAPI gives one that takes a parameter
    `Annotated[model, Query()]`, so the document is the same either way."""

    def register(handler: HandlerT) -> HandlerT:
        _QUERY_MODELS[handler] = model
        return handler

    return register


def problems(*errors: type[CaretimeError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status its errors give, naming their problem types."""
    by_status: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for error in errors:
        by_status[error.status].append((error.problem, error.title))
    return {status: problem_response(kinds) for status, kinds in sorted(by_status.items())}


def problem_response(kinds: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "description": f"Problem types: {_described(kinds)}",
        "content": {PROBLEM_JSON: {"schema": {"$ref": COMPONENTS.format(model="Problem")}}},
        "x-problem-types": [problem_type(slug) for slug, _ in kinds],
    }


def _described(kinds: list[tuple[str, str]]) -> str:
    return "; ".join(f"`{problem_type(slug)}`: {title}" for slug, title in kinds)


def complete_openapi(
    app: FastAPI, dependency_problems: Mapping[Callable[..., Any], Sequence[type[CaretimeError]]]
) -> None:
    """Make app.openapi() add what FastAPI cannot see from the handlers' signatures.
    `dependency_problems`: what a dependency can refuse with (the API key check: 401), for
    every operation that depends on it (and only those)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template=COMPONENTS)
            components.update(problem.pop("$defs", {}), Problem=problem)
            components.update(_EXTRA_SCHEMAS)
            for route, operation in _operations(app, schema):
                _query_model_parameters(route, operation)
                _add_shape_problems(route, operation, dependency_problems)
                _only_the_declared_body(operation)
                _parameter_examples(operation)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(app: FastAPI, schema: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each documented operation with its route (as included, router dependencies too)."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    yield route, operation


def _query_model_parameters(route: Any, operation: dict[str, Any]) -> None:
    """A query model's parameters for an operation whose handler reads it itself, after any
    FastAPI found (a path's), and the operation's keys in the order FastAPI writes them for
    an operation with parameters (openapi.utils.get_openapi_path; without parameters its
    document has `security` last)."""
    model = _QUERY_MODELS.get(route.dependant.call)
    if model is None:
        return
    parameters = [*operation.get("parameters", []), *copy.deepcopy(_parameters_of(model))]
    items = {**operation, "parameters": parameters}
    operation.clear()
    operation.update(sorted(items.items(), key=_written_at))


# The keys of an operation as FastAPI writes them; any other (openapi_extra's) after them.
_OPERATION_KEYS = (
    "tags",
    "summary",
    "description",
    "operationId",
    "deprecated",
    "security",
    "parameters",
    "requestBody",
    "callbacks",
    "responses",
)


def _written_at(item: tuple[str, Any]) -> int:
    key = item[0]
    return _OPERATION_KEYS.index(key) if key in _OPERATION_KEYS else len(_OPERATION_KEYS)


@functools.cache
def _parameters_of(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The parameters FastAPI documents for a handler taking `Annotated[model, Query()]`:
    the document of an app with such a handler alone."""

    def handler(**_query: Any) -> None:
        """Never called: its signature is what FastAPI documents."""

    query = inspect.Parameter(
        "query", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[model, Query()]
    )
    handler.__signature__ = inspect.Signature([query])  # type: ignore[attr-defined]
    app = FastAPI()
    app.get("/")(handler)
    parameters: list[dict[str, Any]] = app.openapi()["paths"]["/"]["get"]["parameters"]
    return parameters


def _add_shape_problems(
    route: Any,
    operation: dict[str, Any],
    dependency_problems: Mapping[Callable[..., Any], Sequence[type[CaretimeError]]],
) -> None:
    responses = operation.setdefault("responses", {})
    if operation.get("parameters") or operation.get("requestBody"):
        _merge(responses, 422, [_VALIDATION])
    if operation.get("requestBody"):
        _merge(responses, 400, [("malformed-body", "The body cannot be read as its media type")])
    for dependency, errors in dependency_problems.items():
        if _depends_on(route.dependant, dependency):
            for error in errors:
                _merge(responses, error.status, [(error.problem, error.title)])


def _merge(responses: dict[str, Any], status: int, kinds: list[tuple[str, str]]) -> None:
    """Add problem kinds to a status, keeping those the route declared (FastAPI's own
    default 422, which describes another body, is replaced)."""
    declared = responses.get(str(status), {})
    if "x-problem-types" not in declared:
        responses[str(status)] = problem_response(kinds)
        return
    declared["description"] += "; " + _described(kinds)
    declared["x-problem-types"] += [problem_type(slug) for slug, _ in kinds]


def _only_the_declared_body(operation: dict[str, Any]) -> None:
    """A body declared with json_body replaces the one FastAPI infers from a handler that
    reads the body itself (FastAPI merges both, leaving e.g. `items: {}` beside the $ref)."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        if "$ref" in schema:
            media["schema"] = {"$ref": schema["$ref"]}


def _parameter_examples(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        example = PARAMETER_EXAMPLES.get(parameter["name"])
        if example is not None and "example" not in parameter:
            parameter["example"] = example


def _depends_on(dependant: Dependant, target: Callable[..., Any]) -> bool:
    return any(sub.call is target or _depends_on(sub, target) for sub in dependant.dependencies)

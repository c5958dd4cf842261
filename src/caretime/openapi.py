"""The OpenAPI document, completed: schemas of bodies that handlers read themselves, the
Problem schema every error refers to, and each operation's possible error responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter

from caretime.errors import Problem

COMPONENTS = "#/components/schemas/{model}"
# Schemas referred to by hand-written request bodies, added to the components on first build.
_EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {}


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


def complete_openapi(app: FastAPI) -> None:
    """Make app.openapi() add what FastAPI cannot see from the handlers' signatures."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template=COMPONENTS)
            components.update(problem.pop("$defs", {}), Problem=problem)
            components.update(_EXTRA_SCHEMAS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""A query model read by its handler, as FastAPI reads a parameter `Annotated[Model, Query()]`
(same values, same validation, same errors), with what FastAPI works out about each field on
every request worked out once: for `GET /slots` FastAPI spent ~50 µs a request on its fields'
annotations, pydantic ~2 µs on validating them (docs/benchmarks.md, "slots4").

A handler that reads its query this way documents it with `openapi.documents_query(Model)`,
which gives the operation the parameters FastAPI would have given it.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi._compat import field_annotation_is_sequence
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

ModelT = TypeVar("ModelT", bound=BaseModel)


class QueryModel(Generic[ModelT]):
    """Reads `model` from a query string. Fields are looked up by name: a field with an alias
    is refused when built (FastAPI's alias rules are not mirrored here)."""

    def __init__(self, model: type[ModelT]) -> None:
        self.model = model
        for name, field in model.model_fields.items():
            if field.alias is not None or field.validation_alias is not None:
                raise TypeError(f"{model.__name__}.{name}: aliases are not read by QueryModel")
        # (name, repeatable): a repeatable field takes every value given for it, as a list.
        self._fields = tuple(
            (name, field_annotation_is_sequence(field.annotation))
            for name, field in model.model_fields.items()
        )

    def read(self, query: QueryParams) -> ModelT:
        """The model from `query`, or the RequestValidationError FastAPI would raise for it
        (each error located at `("query", field, ...)`)."""
        try:
            return self.model.model_validate(self._values(query), from_attributes=True)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**error, "loc": ("query", *error["loc"])} for error in errors]
            ) from None

    def _values(self, query: QueryParams) -> dict[str, Any]:
        """What FastAPI hands the model (dependencies.utils._request_param_model_to_args): a
        field's last value, or all of a repeatable field's; an absent or empty field left out
        (its default applies); every other key too, one value or a list of its repeats, for
        the model's `extra` setting to judge."""
        values: dict[str, Any] = {}
        for name, repeatable in self._fields:
            value = query.getlist(name) if repeatable else query.get(name)
            if value is not None and not (repeatable and len(value) == 0):
                values[name] = value
        if len(query) > len(values):
            others: dict[str, list[str]] = {}
            for key, value in query.multi_items():
                if key not in self.model.model_fields:
                    others.setdefault(key, []).append(value)
            values.update((k, v[0] if len(v) == 1 else v) for k, v in others.items())
        return values

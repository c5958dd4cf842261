"""Text a database column can hold. NUL is the one character none can (PostgreSQL refuses it
in text and JSON), so it is refused where it arrives, naming the field, not at the INSERT."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator


def storable(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    return value


Storable = AfterValidator(storable)
PathText = Annotated[str, Path(max_length=200), Storable]
QueryText = Annotated[str | None, Query(max_length=200), Storable]

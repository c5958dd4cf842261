"""Imports every module that defines tables, so metadata is complete for migrations and tests."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "caretime.tenancy.models",
    "caretime.dispatch.models",
)


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)

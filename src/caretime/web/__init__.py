"""The dashboard: server-rendered pages (Jinja2 + htmx) that call the same services as the API.

`create_app` includes `router`; every page lives under `/ui/` except the overview at `/`.
"""

from __future__ import annotations

from fastapi import APIRouter

from caretime.web import (
    activity,
    assets,
    batches,
    booking,
    calls,
    caregivers,
    jobs,
    overview,
    phone,
    preferences,
    reservations,
    shifts,
    signin,
    webhooks,
)

router = APIRouter(include_in_schema=False)
SECTIONS = (
    assets,
    signin,
    overview,
    preferences,
    jobs,
    calls,
    batches,
    booking,
    reservations,
    shifts,
    caregivers,
    phone,
    activity,
    webhooks,
)
for section in SECTIONS:
    router.include_router(section.router)

__all__ = ["router"]

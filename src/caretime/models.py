"""The modules that make up the product, imported in one place so that every process
(API, worker, migrations, tests) sees all tables and all job handlers."""

from __future__ import annotations

import importlib

# Modules that define tables (for migrations and metadata).
MODEL_MODULES = (
    "caretime.tenancy.models",
    "caretime.dispatch.models",
    "caretime.messaging.models",
    "caretime.booking.models",
    "caretime.shifts.models",
    "caretime.outreach.models",
    "caretime.events.models",
    "caretime.events.webhooks.models",
)

# Modules that register job handlers, message routers or status listeners on import.
HANDLER_MODULES: tuple[str, ...] = (
    "caretime.messaging.tasks",
    "caretime.messaging.batch",
    "caretime.messaging.queued",
    "caretime.booking.tasks",
    "caretime.booking.sms",
    "caretime.booking.reminders",
    "caretime.booking.followups",
    "caretime.booking.notices",
    "caretime.booking.waitlist_offers",
    "caretime.shifts.tasks",
    "caretime.shifts.hooks",
    "caretime.outreach.tasks",
    "caretime.events.webhooks.pump",
    "caretime.retention.prune",
    "caretime.retention.targets",
)


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)


def import_all_handlers() -> None:
    for module in HANDLER_MODULES:
        importlib.import_module(module)

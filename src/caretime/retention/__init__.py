"""Retention: what each tenant's policy lets go is deleted daily, in small batches.

Tables register what of theirs may be pruned (`register(Prunable(...))`); this package knows
the engines' tables and no domain.
"""

from caretime.retention.registry import Prunable, register

__all__ = ["Prunable", "register"]

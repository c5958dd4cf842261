"""Outreach problems, rendered as problem+json by the shared handler."""

from __future__ import annotations

from caretime.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound


class OutsideCallingWindow(InvalidInput):
    problem = "outside-calling-window"
    title = "Not allowed to call at that time"


class NotSchedulable(InvalidInput):
    problem = "not-schedulable"
    title = "The call cannot be scheduled"


class CallNotFound(NotFound):
    problem = "call-not-found"
    title = "No such call"


class BatchNotFound(NotFound):
    problem = "batch-not-found"
    title = "No such batch"


class CallAlreadyStarted(Conflict):
    problem = "call-already-started"
    title = "The call has already started or ended"


class BatchKeyReused(IdempotencyKeyReused):
    title = "Idempotency-Key already used for a different batch"


class DuplicateCall(Conflict):
    problem = "duplicate-call"
    title = "The number already has a live call for this purpose"


class OptedOut(InvalidInput):
    problem = "opted-out"
    title = "The recipient opted out of calls"


class CallNotInProgress(Conflict):
    problem = "call-not-in-progress"
    title = "The call has no attempt in progress"


class BatchTooLarge(InvalidInput):
    problem = "batch-too-large"
    title = "The batch has too many items"


class SeriesNotFound(NotFound):
    problem = "series-not-found"
    title = "No such call series"

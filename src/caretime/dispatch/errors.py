"""What a handler raises to steer its job: try again later, or give up now."""

from __future__ import annotations

from datetime import datetime, timedelta

from caretime.errors import Conflict, NotFound


class RetryLater(Exception):
    """Run this job again: after `delay`, or not before `at` (e.g. the next calling window).
    Counts as an attempt; the retry policy still gives up after max attempts."""

    def __init__(
        self, reason: str = "retry", *, delay: timedelta | None = None, at: datetime | None = None
    ) -> None:
        super().__init__(reason)
        self.delay = delay
        self.at = at


class LeaseLost(Exception):
    """Another worker took this job over (our lease expired); our work must not commit."""


class PermanentFailure(Exception):
    """Retrying cannot help (bad number, rejected by the provider): fail the job now."""


class JobNotFound(NotFound):
    problem = "job-not-found"
    title = "No such job"


class JobStateConflict(Conflict):
    problem = "job-state-conflict"
    title = "The job is not in a state that allows this"

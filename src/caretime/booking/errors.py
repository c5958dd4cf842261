"""Booking's failures, each with its HTTP status and problem type."""

from __future__ import annotations

from caretime.errors import CaretimeError, Conflict, IdempotencyKeyReused, InvalidInput, NotFound


class ProviderNotFound(NotFound):
    problem = "provider-not-found"
    title = "No such provider"


class ReservationNotFound(NotFound):
    problem = "reservation-not-found"
    title = "No such reservation"


class TemplateNotFound(NotFound):
    problem = "template-not-found"
    title = "No such availability template"


class ProviderExists(Conflict):
    problem = "provider-exists"
    title = "A provider with this id already exists"


class InvalidWindows(InvalidInput):
    problem = "invalid-availability"
    title = "Availability windows are not valid"


class RangeTooLong(CaretimeError):
    status = 400
    problem = "range-too-long"
    title = "The requested time range is too long"


class SlotTaken(Conflict):
    problem = "slot-taken"
    title = "The slot is already taken"


class TooLittleNotice(InvalidInput):
    problem = "too-little-notice"
    title = "The slot starts too soon"


class OffGrid(InvalidInput):
    problem = "off-grid"
    title = "The slot is not on the slot grid"


class OutsideAvailability(InvalidInput):
    problem = "outside-availability"
    title = "The provider is not available then"


class ReservationKeyReused(IdempotencyKeyReused):
    title = "The Idempotency-Key was used for a different reservation"


class InvalidTransition(Conflict):
    problem = "invalid-transition"
    title = "The reservation cannot make that change"


class AppointmentsInTheWay(Conflict):
    problem = "appointments-in-the-way"
    title = "Confirmed appointments fall in the time being removed"

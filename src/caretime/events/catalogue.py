"""Every event type caretime emits, with when it fires. docs/events.md mirrors this list."""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "call.scheduled": "a call was scheduled (single call or batch item)",
    "call.started": "a call attempt was handed to the voice provider",
    "call.completed": "a call was answered and finished",
    "call.failed": "a call ended without reaching anyone and will not be retried",
    "call.expired": "a call's window passed with retries spent",
    "call.cancelled": "a call was cancelled before it started",
    "call.no_answer": "a machine answered and the tenant's voicemail policy is to hang up: "
    "the call ended without a retry",
    "call.retry_scheduled": "an unsuccessful attempt was followed by a retry, planned inside "
    "the windows",
    "call.callback_scheduled": "the voice agent reported that the patient asked to be called "
    "back; the call was planned at the first allowed moment from then",
    "call_series.created": "a recurring call series was created (POST /calls or a batch item "
    "with recurrence)",
    "call_series.occurrence_skipped": "occurrences of a series were passed over: no allowed, "
    "free time before the next one, or the number had another live call for the purpose",
    "call_series.finished": "a series has no more occurrences, or stopped because the number "
    "opted out of calls",
    "call_series.cancelled": "a series was cancelled; its pending occurrence was cancelled",
    "appointment.held": "a slot was held for a patient",
    "appointment.confirmed": "a hold was confirmed",
    "appointment.expired": "a hold lapsed unconfirmed",
    "appointment.cancelled": "an appointment was cancelled",
    "appointment.denied": "a hold was denied by the clinic",
    "appointment.rescheduled": "a held or confirmed visit moved to another time or provider",
    "appointment.arrived": "the patient arrived for a confirmed visit (checked in)",
    "appointment.fulfilled": "the visit took place (checked out)",
    "appointment.no_show": "the patient did not come to a confirmed visit",
    "waitlist.joined": "a patient joined the waitlist",
    "waitlist.offered": "a freed time was texted to a wave of waitlisted patients",
    "waitlist.claimed": "a waitlisted patient's YES won a freed time (a hold was made)",
    "waitlist.removed": "a patient left the waitlist",
    "shift.fanout_started": "a shift's fan-out started",
    "shift.filled": "a caregiver took a shift",
    "shift.unfilled": "a shift's escalation ladder is spent and it is still open",
    "shift.expired": "a shift's start passed while it was open",
    "shift.cancelled": "a shift was cancelled",
    "shift.dropped": "an assigned caregiver dropped a shift, or a coordinator unassigned them",
    "shift.reopened": "a re-fill fan-out started for a dropped shift",
    "shift.question": "a caregiver answered an offer with a condition; a coordinator decides",
    "shift.updated": "a shift's time, place, role or notes changed before it started",
    "message.opted_out": "a phone number opted out of a channel",
    "message.opted_in": "a phone number opted back in",
    "message.in_doubt": "a message was in flight when its worker stopped: sent again or held",
    "batch.completed": "every call of an outreach batch reached a final status",
    "webhook.endpoint_disabled": "a webhook endpoint failed for 24 hours in a row and was disabled",
    "tenant.numbers_changed": "the numbers a tenant sends from (and gets replies on) were set",
}


def is_known(event_type: str) -> bool:
    return event_type in EVENT_TYPES

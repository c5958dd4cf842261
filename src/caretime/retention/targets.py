"""The engines' prunable tables: finished jobs, messages, events (a delivery and its
attempts go with their event). Domains register their own (calls, appointments)."""

from __future__ import annotations

from caretime.dispatch.models import Job
from caretime.events.models import Event
from caretime.messaging.models import Message
from caretime.retention.registry import Prunable, register

register(Prunable("finished_jobs", Job, Job.id, Job.finished_at, lambda p: p.finished_jobs,
                  Job.status.in_(("done", "failed", "cancelled"))))  # fmt: skip
register(Prunable("messages", Message, Message.id, Message.created_at, lambda p: p.messages))
register(Prunable("events", Event, Event.seq, Event.occurred_at, lambda p: p.events))

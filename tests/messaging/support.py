"""Builders and fakes for messaging tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from caretime.db import transaction
from caretime.dispatch.models import Job
from caretime.messaging import Message, RelatedEntity, send_message
from caretime.messaging.intent import Intent
from caretime.messaging.models import MessageEvent
from caretime.messaging.providers import Providers, providers_of
from caretime.messaging.providers.base import (
    OutboundRequest,
    PollRequest,
    ProviderError,
    SendReceipt,
    StatusReport,
)
from caretime.messaging.routing import OpenQuestion, RouteResult
from caretime.runtime import Runtime
from caretime.tenancy.service import find_tenant

PHONE = "+12065550100"
# Older than any question a test asks: a hinted question wins however old it is.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def default_tenant_id(runtime: Runtime) -> str:
    async with runtime.sessions() as session:
        tenant = await find_tenant(session, runtime.settings.default_tenant)
    assert tenant is not None
    return tenant.id


async def make_message(
    runtime: Runtime,
    *,
    tenant_id: str,
    to: str = PHONE,
    channel: str = "sms",
    body: str = "Shift open tomorrow 8-4. Reply YES to take it.",
    key: str = "test:1",
    related: RelatedEntity | None = None,
) -> Message:
    async with transaction(runtime.sessions) as session:
        return await send_message(
            session,
            tenant_id=tenant_id,
            channel=channel,
            to=to,
            body=body,
            idempotency_key=key,
            related=related,
        )


async def load_message(runtime: Runtime, message_id: str) -> Message:
    async with runtime.sessions() as session:
        message = await session.get(Message, message_id)
    assert message is not None
    return message


async def events_of(runtime: Runtime, message_id: str) -> list[MessageEvent]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        )
        return list(rows.all())


async def jobs_of(runtime: Runtime, kind: str) -> list[Job]:
    async with runtime.sessions() as session:
        rows = await session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id))
        return list(rows.all())


@dataclass
class ScriptedProvider:
    """A provider that answers from a script: each send pops the next error (or succeeds)."""

    name: str = "simulator"
    from_number: str | None = "+15550001000"
    rate_per_second: float = 1000.0
    errors: list[ProviderError] = field(default_factory=list)
    sent: list[OutboundRequest] = field(default_factory=list)

    async def send(self, request: OutboundRequest) -> SendReceipt:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(request)
        return SendReceipt(f"scripted-{len(self.sent)}", StatusReport("sent", "sent"))

    async def poll(self, request: PollRequest) -> StatusReport:
        return StatusReport(None)


def install_provider(runtime: Runtime, provider: Any, *, name: str = "simulator") -> Providers:
    providers = providers_of(runtime)
    providers.install(name, provider)
    return providers


@dataclass
class FakeRouter:
    """A router with one open question per phone, answering by a fixed table of intents."""

    name: str
    questions: dict[str, OpenQuestion] = field(default_factory=dict)
    hint_keys: Sequence[str] = ()
    answered: list[tuple[str, Intent, str]] = field(default_factory=list)

    def ask(self, phone: str, ref: str, asked_at: datetime) -> None:
        self.questions[phone] = OpenQuestion(self.name, ref, asked_at)

    async def open_question(
        self, session: Any, tenant_id: str, phone: str, hint: dict[str, str]
    ) -> OpenQuestion | None:
        for key in self.hint_keys:
            if key in hint:
                return OpenQuestion(self.name, hint[key], LONG_AGO)
        return self.questions.get(phone)

    async def answer(
        self, session: Any, tenant_id: str, question: OpenQuestion, intent: Intent, message: Message
    ) -> RouteResult:
        self.answered.append((question.ref, intent, message.id))
        action = {Intent.accept: "assigned", Intent.decline: "declined"}.get(intent, "clarify")
        reply = "Please reply YES or NO." if action == "clarify" else None
        return RouteResult(action, reply, {f"{self.name}_ref": question.ref})

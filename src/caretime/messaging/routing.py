"""Inbound routers: each domain that asks people questions registers one, and messaging
hands each reply to the router whose open question it answers."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.messaging.intent import Intent
from caretime.messaging.models import Message


@dataclass(frozen=True)
class OpenQuestion:
    router: str
    ref: str
    asked_at: datetime


@dataclass(frozen=True)
class RouteResult:
    action: str
    reply: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # The answer changed nothing a router's question lookup reads (a repeated "no", a "yes"
    # to a shift already filled): the number's next reply in the same batch may be routed
    # to the same question without reading it again (FoundQuestions).
    keeps_question: bool = False


class InboundRouter(Protocol):
    """A domain's side of inbound routing. A router may also have `hint_keys` (e.g.
    {"shift_id"}): when a reply's hint names one of them, that router's question wins over
    more recent questions from other routers. And it may have `question_asked_by(session,
    tenant_id, message) -> OpenQuestion | None`: the question one of its outbound messages
    asked, for a reply known to answer that message (a key pressed during a call)."""

    name: str

    async def open_question(
        self, session: AsyncSession, tenant_id: str, phone: str, hint: dict[str, str]
    ) -> OpenQuestion | None: ...

    async def answer(
        self,
        session: AsyncSession,
        tenant_id: str,
        question: OpenQuestion,
        intent: Intent,
        message: Message,
    ) -> RouteResult: ...


class RouterRegistry:
    def __init__(self) -> None:
        self._routers: dict[str, InboundRouter] = {}

    def register(self, router: InboundRouter) -> InboundRouter:
        """Add a router (a router with the same name is replaced)."""
        self._routers[router.name] = router
        return router

    def remove(self, name: str) -> None:
        self._routers.pop(name, None)

    def get(self, name: str) -> InboundRouter:
        return self._routers[name]

    async def find_question(
        self, session: AsyncSession, tenant_id: str, phone: str, hint: dict[str, str]
    ) -> OpenQuestion | None:
        """The question a reply answers: a hinted router's first, else the most recent. The
        other routers are not asked when a hinted one has found a question (their answers
        could not win)."""
        everyone = list(self._routers.values())
        hinted = [router for router in everyone if _recognises(router, hint)]
        others = [router for router in everyone if router not in hinted]
        for asked in (hinted, others):
            found = [await r.open_question(session, tenant_id, phone, hint) for r in asked]
            question = max(filter(None, found), key=lambda q: q.asked_at, default=None)
            if question is not None:
                return question
        return None

    async def question_asked_by(
        self, session: AsyncSession, tenant_id: str, message: Message
    ) -> OpenQuestion | None:
        """The question an outbound message asked, from the router that asked it."""
        for router in list(self._routers.values()):
            asked = getattr(router, "question_asked_by", None)
            question = None if asked is None else await asked(session, tenant_id, message)
            if question is not None:
                return cast(OpenQuestion, question)
        return None

    async def find_questions(
        self, session: AsyncSession, tenant_id: str, phones: Collection[str]
    ) -> dict[str, OpenQuestion | None] | None:
        """The questions replies without a hint from these numbers answer, one read per
        router for all of them (a router's `open_questions(session, tenant_id, phones)`);
        None if a router cannot look up many numbers at once."""
        routers = list(self._routers.values())
        lookups = [getattr(router, "open_questions", None) for router in routers]
        if not phones or any(lookup is None for lookup in lookups):
            return None
        found: dict[str, OpenQuestion | None] = dict.fromkeys(phones)
        for lookup in lookups:
            assert lookup is not None
            questions: dict[str, OpenQuestion] = await lookup(session, tenant_id, phones)
            for phone, question in questions.items():
                current = found.get(phone)
                if current is None or question.asked_at > current.asked_at:
                    found[phone] = question
        return found


class _NotFound:
    """No question was looked up in advance for this reply."""


NOT_FOUND = _NotFound()


class FoundQuestions:
    """The questions a batch's replies answer, found before they are routed: for each
    number's hint-less replies by the batch's one read (RouterRegistry.find_questions), and
    for a number's next reply with the same hint when the answer to its last one kept the
    question (`keep`). Each is good for one reply: the one after it reads again, after what
    that reply changed, unless its answer kept the question too; all are read again once
    any reply of the batch changes something (`forget`)."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str, tuple[tuple[str, str], ...]], OpenQuestion | None] = {}

    def add(self, tenant_id: str, found: dict[str, OpenQuestion | None]) -> None:
        for phone, question in found.items():
            self._found[(tenant_id, phone, ())] = question

    def take(
        self, tenant_id: str, phone: str, hint: Mapping[str, str]
    ) -> OpenQuestion | _NotFound | None:
        return self._found.pop((tenant_id, phone, _hint_key(hint)), NOT_FOUND)

    def keep(
        self, tenant_id: str, phone: str, hint: Mapping[str, str], question: OpenQuestion | None
    ) -> None:
        """The number's next reply with this hint answers `question` too (its answer to the
        last one changed nothing the lookups read), unless another reply changes something
        first (`forget`)."""
        self._found[(tenant_id, phone, _hint_key(hint))] = question

    def forget(self) -> None:
        """A reply changed what a lookup may find (a claim, a dropped shift refilled with
        new offers to other numbers, a consent): every reply after it reads its question
        again, as it would have alone."""
        self._found.clear()


def _hint_key(hint: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(hint.items()))


def _recognises(router: InboundRouter, hint: Mapping[str, str]) -> bool:
    keys: Collection[str] = getattr(router, "hint_keys", ())
    return any(key in hint for key in keys)


routers = RouterRegistry()


def register_inbound_router(router: InboundRouter) -> InboundRouter:
    return routers.register(router)

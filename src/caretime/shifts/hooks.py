"""What shifts registers with messaging: the router for caregivers' replies. (Offer message
statuses need no listener: the progress counts and the timeline read them from messaging.)"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from caretime.dispatch.wakeup import session_clock
from caretime.messaging import (
    Intent,
    Message,
    OpenQuestion,
    RouteResult,
    register_inbound_router,
)
from caretime.shifts.claims import answer_offer
from caretime.shifts.fanout import OFFER_KIND
from caretime.shifts.models import Offer, Shift
from caretime.shifts.repository import OfferRepository

# Answers that change nothing `open_question` reads (the shift's status and start, the
# offers' rounds, times and holds): the offer's own answer is not among them.
KEEPS_QUESTION = frozenset({"declined", "already_filled", "clarify"})


class ShiftReplies:
    """Routes a caregiver's reply to an offer. The question stays open until the shift
    starts: after it is filled, a late "yes" still finds it and hears "already filled"."""

    name = "shifts"
    hint_keys = frozenset({"shift_id"})

    async def open_question(
        self, session: AsyncSession, tenant_id: str, phone: str, hint: dict[str, str]
    ) -> OpenQuestion | None:
        shift_id = hint.get("shift_id")
        if shift_id is not None and "\x00" in shift_id:
            return None  # no shift id can contain NUL (and no database column can)
        offers = OfferRepository(session, tenant_id)
        asking = await offers.asking(phone, now=session_clock(session).now(), shift_id=shift_id)
        return None if asking is None else self._question(session, *asking)

    async def open_questions(
        self, session: AsyncSession, tenant_id: str, phones: Collection[str]
    ) -> dict[str, OpenQuestion]:
        """open_question for many numbers (replies without a hint), in two reads."""
        offers = OfferRepository(session, tenant_id)
        asking = await offers.asking_many(phones, now=session_clock(session).now())
        return {phone: self._question(session, *found) for phone, found in asking.items()}

    def _question(self, session: AsyncSession, offer: Offer, shift: Shift) -> OpenQuestion:
        _keep_for_the_answer(session, offer, shift)
        return OpenQuestion(self.name, offer.id, offer.sent_at)

    async def question_asked_by(
        self, session: AsyncSession, tenant_id: str, message: Message
    ) -> OpenQuestion | None:
        """The offer a call was about: a key pressed during it answers that offer, even if
        the caregiver has been offered other shifts since."""
        if message.related_kind != OFFER_KIND or message.related_id is None:
            return None
        offer = await OfferRepository(session, tenant_id).get(message.related_id)
        return None if offer is None else OpenQuestion(self.name, offer.id, offer.sent_at)

    async def answer(
        self,
        session: AsyncSession,
        tenant_id: str,
        question: OpenQuestion,
        intent: Intent,
        message: Message,
    ) -> RouteResult:
        now = session_clock(session).now()
        outcome = await answer_offer(
            session,
            tenant_id,
            question.ref,
            str(intent),
            now=now,
            message_id=message.id,
            text=message.body,
        )
        details = {"shift_id": outcome.shift_id, **outcome.details}
        keeps = outcome.action in KEEPS_QUESTION
        return RouteResult(outcome.action, outcome.reply, details, keeps_question=keeps)


def _keep_for_the_answer(session: AsyncSession, *loaded: Any) -> None:
    """The session's identity map holds objects weakly: without a reference the offer and
    shift this read loaded would be gone (and read again) when the answer asks for them."""
    session.info.setdefault("shifts.question_rows", []).extend(loaded)


register_inbound_router(ShiftReplies())

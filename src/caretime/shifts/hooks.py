"""What shifts registers with messaging: the router for caregivers' replies. (Offer message
statuses need no listener: the progress counts and the timeline read them from messaging.)"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ARRAY, String, any_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.bulk import where_one_of
from caretime.db import is_postgres
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
from caretime.shifts.models import Caregiver, Offer, Shift
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
        statement = self._offers_to(tenant_id, phone, session)
        if "shift_id" in hint:
            if "\x00" in hint["shift_id"]:
                return None  # no shift id can contain NUL (and no database column can)
            statement = statement.where(Offer.shift_id == hint["shift_id"])
        row = (await session.execute(statement.limit(1))).first()
        if row is None:
            return None
        _keep_for_the_answer(session, row.Offer, row.Shift)
        return OpenQuestion(self.name, row.Offer.id, row.Offer.sent_at)

    async def open_questions(
        self, session: AsyncSession, tenant_id: str, phones: Collection[str]
    ) -> dict[str, OpenQuestion]:
        """open_question for many numbers (replies without a hint): the numbers' caregivers,
        then their offers. Two reads, not one join: the join's plan, without statistics on a
        fan-out a moment old (autovacuum analyses within a minute, a burst comes sooner),
        scanned every caregiver once per offer (1,000 × 1,000 rows, 0.3-4 s a batch)."""
        caregivers = select(Caregiver.id, Caregiver.phone).where(Caregiver.tenant_id == tenant_id)
        # One parameter for all the numbers (bulk.where_one_of): one prepared statement and
        # plan whatever the batch's size, not one per count of numbers.
        caregivers = where_one_of(session, caregivers, Caregiver.phone, sorted(phones))
        phone_of = {id_: phone for id_, phone in await session.execute(caregivers)}
        if not phone_of:
            return {}
        statement = where_one_of(
            session, self._offers(tenant_id, session), Offer.caregiver_id, sorted(phone_of)
        )
        found: dict[str, OpenQuestion] = {}
        for row in await session.execute(statement):
            phone = phone_of[row.Offer.caregiver_id]
            if phone not in found:
                _keep_for_the_answer(session, row.Offer, row.Shift)
                found[phone] = OpenQuestion(self.name, row.Offer.id, row.Offer.sent_at)
        return found

    def _offers_to(self, tenant_id: str, phone: str, session: AsyncSession) -> Any:
        # The number's caregivers read first, as open_questions does and for its reason: on
        # PostgreSQL as one array (an InitPlan, run once: the planner cannot turn it into
        # the join it planned badly), elsewhere as a subquery.
        of_the_number = (Caregiver.tenant_id == tenant_id, Caregiver.phone == phone)
        if is_postgres(session):
            ids = select(func.array_agg(Caregiver.id)).where(*of_the_number).scalar_subquery()
            # Cast: `= ANY (SELECT ...)` would compare with each row; this is one array.
            mine = Offer.caregiver_id == any_(cast(ids, ARRAY(String)))
        else:
            mine = Offer.caregiver_id.in_(select(Caregiver.id).where(*of_the_number))
        return self._offers(tenant_id, session).where(mine)

    def _offers(self, tenant_id: str, session: AsyncSession) -> Any:
        # Prefer offers whose shift is still open; among those, the most recent. The offer
        # and its shift are loaded whole: this is the one read a reply to a filled shift
        # needs (see claims._accept).
        now = session_clock(session).now()
        still_open = case((Shift.status == "open", 0), else_=1)
        return (
            select(Offer, Shift)
            .join(Shift, (Shift.tenant_id == Offer.tenant_id) & (Shift.id == Offer.shift_id))
            .where(
                Offer.tenant_id == tenant_id,
                Shift.start_time > now,
                # An offer held for quiet hours has asked nothing yet.
                or_(Offer.held_until.is_(None), Offer.held_until <= now),
            )
            .order_by(still_open, Offer.sent_at.desc(), Offer.round.desc())
        )

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

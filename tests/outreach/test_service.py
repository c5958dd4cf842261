import pytest
from sqlalchemy import func, select

from caretime.db import transaction
from caretime.dispatch.models import Job
from caretime.outreach import service
from caretime.outreach.models import Call, Contact
from caretime.runtime import Runtime
from caretime.tenancy.policy import CallingPolicy
from tests.outreach.support import make_items
from tests.support import make_tenant


class Abort(Exception):
    pass


async def test_a_batch_whose_transaction_rolls_back_leaves_nothing(runtime: Runtime) -> None:
    tenant_id, _ = await make_tenant(runtime, name="clinic")
    request = service.BatchRequest(make_items(count=50))

    async def schedule_then_fail() -> None:
        async with transaction(runtime.sessions) as session:
            result = await service.schedule_batch(
                session, tenant_id, CallingPolicy(), request, now=runtime.clock.now()
            )
            assert len(result.items) == 50
            raise Abort

    with pytest.raises(Abort):
        await schedule_then_fail()
    async with runtime.sessions() as session:
        for table in (Call, Contact, Job):
            assert await session.scalar(select(func.count()).select_from(table)) == 0

"""Tenant scoping as the default: tenant-owned tables and the repository base that filters them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ForeignKey, Select, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column


class TenantOwned:
    """Mixin for every table whose rows belong to one tenant."""

    tenant_id: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.id", ondelete="CASCADE"))


ModelT = TypeVar("ModelT", bound=TenantOwned)


class TenantRepository(Generic[ModelT]):
    """Queries for one tenant-owned model. Every statement it builds is already scoped to the
    tenant, so a query cannot forget the filter; new rows are stamped with the tenant."""

    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def select(self) -> Select[Any]:
        return select(self.model).where(self.model.tenant_id == self.tenant_id)

    async def get(self, id_: str) -> ModelT | None:
        return await self.first(self.select().where(self.model.id == id_))

    async def first(self, statement: Select[Any]) -> ModelT | None:
        row: ModelT | None = (await self.session.scalars(statement.limit(1))).first()
        return row

    async def all(self, statement: Select[Any]) -> Sequence[ModelT]:
        rows: Sequence[ModelT] = (await self.session.scalars(statement)).all()
        return rows

    async def page(
        self, statement: Select[Any], *, limit: int, after: str | None
    ) -> tuple[Sequence[ModelT], str | None]:
        """Keyset pagination by id (ids are time-ordered). Returns rows and the next cursor."""
        if after is not None:
            statement = statement.where(self.model.id > after)
        rows = await self.all(statement.order_by(self.model.id).limit(limit + 1))
        if len(rows) > limit:
            last: Any = rows[limit - 1]
            return rows[:limit], last.id
        return rows, None

    def add(self, row: ModelT) -> ModelT:
        row.tenant_id = self.tenant_id
        self.session.add(row)
        return row

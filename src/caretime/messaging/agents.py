"""The tenant's AI voice agent: `PUT /tenants/me/agent {"url"}` sets where call requests go
and answers the signing secret once; the send job looks the endpoint up per request."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from caretime.deps import ClockDep, SessionDep, SettingsDep
from caretime.destinations import check_url
from caretime.errors import InvalidInput, NotFound
from caretime.messaging.models import AgentEndpoint
from caretime.messaging.providers.base import TenantEndpoint
from caretime.openapi import problems
from caretime.tenancy.auth import TenantDep

router = APIRouter(prefix="/tenants/me", tags=["tenants"])
SECRET_PREFIX = "whsec_"


class AgentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://agent.example.org/calls"}]},
    )
    url: str = Field(max_length=2000, description="Where caretime POSTs signed call requests.")
    rotate_secret: bool = Field(
        default=False, description="Make a new signing secret (the old one stops working)."
    )


class AgentOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://agent.example.org/calls",
                    "secret": None,
                    "secret_prefix": "whsec_Ab3d",
                    "created_at": "2026-03-02T14:00:00Z",
                    "updated_at": "2026-03-02T14:00:00Z",
                }
            ]
        }
    )
    url: str
    secret: str | None = Field(
        description="The signing secret (Standard Webhooks): shown only when it is made."
    )
    secret_prefix: str
    created_at: datetime
    updated_at: datetime


@router.put("/agent", responses=problems(InvalidInput))
async def put_agent(
    body: AgentIn, tenant: TenantDep, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> AgentOut:
    """Set the voice agent's URL (the same rules as webhook URLs: https in production, no
    credentials, never an internal address). The first time (or with rotate_secret) the
    answer carries the signing secret `whsec_...`; it is not shown again."""
    url = await check_url(body.url, env=settings.env)
    endpoint = await session.get(AgentEndpoint, tenant.id)
    now = clock.now()
    fresh = endpoint is None or body.rotate_secret
    if endpoint is None:
        endpoint = AgentEndpoint(tenant_id=tenant.id, url=url, secret="", created_at=now)
        session.add(endpoint)
    endpoint.url, endpoint.updated_at = url, now
    if fresh:
        endpoint.secret = new_secret()
    await session.flush()
    return _out(endpoint, show_secret=fresh)


@router.get("/agent", responses=problems(NotFound))
async def get_agent(tenant: TenantDep, session: SessionDep) -> AgentOut:
    """The voice agent's URL (the secret only by its prefix)."""
    endpoint = await session.get(AgentEndpoint, tenant.id)
    if endpoint is None:
        raise NotFound('no voice agent is set: PUT /tenants/me/agent {"url"}')
    return _out(endpoint, show_secret=False)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def endpoint_of(session: AsyncSession, tenant_id: str) -> TenantEndpoint | None:
    endpoint = await session.get(AgentEndpoint, tenant_id)
    return None if endpoint is None else TenantEndpoint(endpoint.url, endpoint.secret)


def _out(endpoint: AgentEndpoint, *, show_secret: bool) -> AgentOut:
    return AgentOut(
        url=endpoint.url,
        secret=endpoint.secret if show_secret else None,
        secret_prefix=endpoint.secret[:10],
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )

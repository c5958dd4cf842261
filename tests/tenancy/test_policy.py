"""Per-tenant policy: defaults, merge patches, and validation errors that say where."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from caretime.tenancy.policy import TenantPolicy, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0m", timedelta(0)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("90s", timedelta(seconds=90)),
        ("1d", timedelta(days=1)),
        (30, timedelta(seconds=30)),
    ],
)
def test_durations_parse(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("delta", "text"),
    [(timedelta(minutes=10), "10m"), (timedelta(hours=24), "1d"), (timedelta(seconds=90), "90s")],
)
def test_durations_format(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


def test_defaults_match_the_product_brief() -> None:
    policy = TenantPolicy()
    assert policy.calling.max_calls_per_minute == 100
    assert [(w.start.isoformat(), w.end.isoformat()) for w in policy.calling.windows["mon"]] == [
        ("09:00:00", "17:00:00")
    ]
    assert policy.booking.hold == timedelta(minutes=30)
    assert policy.booking.min_notice == timedelta(hours=24)
    assert [(r.channel, r.after) for r in policy.shifts.escalation] == [
        ("sms", timedelta(0)),
        ("voice", timedelta(minutes=10)),
    ]


async def test_patch_merges_and_keeps_other_sections(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/tenants/me/policy",
        json={"calling": {"max_calls_per_minute": 20, "windows": {"sun": []}}},
    )
    assert response.status_code == 200
    policy = response.json()
    assert policy["calling"]["max_calls_per_minute"] == 20
    assert policy["calling"]["windows"]["sun"] == []
    assert policy["booking"]["slot_minutes"] == 15


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"calling": {"max_calls_per_minute": 0}}, ["body", "calling", "max_calls_per_minute"]),
        ({"booking": {"hold": "soon"}}, ["body", "booking", "hold"]),
        ({"booking": {"slot_minutes": 7}}, ["body", "booking", "slot_minutes"]),
        ({"calling": {"default_tz": "Mars/Olympus"}}, ["body", "calling", "default_tz"]),
        (
            {
                "shifts": {
                    "escalation": [
                        {"channel": "voice", "after": "10m"},
                        {"channel": "sms", "after": "0m"},
                    ]
                }
            },
            ["body", "shifts", "escalation"],
        ),
        ({"nonsense": 1}, ["body", "nonsense"]),
    ],
)
async def test_invalid_policy_is_rejected_saying_where(
    client: httpx.AsyncClient, patch: dict[str, object], where: list[str]
) -> None:
    response = await client.patch("/tenants/me/policy", json=patch)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert where in [error["loc"] for error in response.json()["errors"]]
    unchanged = (await client.get("/tenants/me/policy")).json()
    assert unchanged == TenantPolicy().model_dump(mode="json")

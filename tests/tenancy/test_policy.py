"""Per-tenant policy: defaults, merge patches, and validation errors that say where."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import update

from caretime.db import transaction
from caretime.runtime import Runtime
from caretime.tenancy.models import Tenant
from caretime.tenancy.policy import TenantPolicy, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0m", timedelta(0)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("90s", timedelta(seconds=90)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("PT15M", timedelta(minutes=15)),
        ("pt1h30m", timedelta(minutes=90)),
        ("P1DT2H", timedelta(hours=26)),
        ("P1W", timedelta(days=7)),
        ("PT0.5S", timedelta(seconds=0.5)),
        (30, timedelta(seconds=30)),
    ],
)
def test_durations_parse(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "15", "P", "PT", "P1DT", "soon", "1e308", "-5m", "15 minutes", True, None, [1]]
)
def test_what_is_not_a_duration_says_so(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


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


DEFAULTS = TenantPolicy().model_dump(mode="json")


def _with(path: tuple[str, ...], value: object) -> dict[str, Any]:
    """The default policy document with one value changed (what a merge patch must give)."""
    expected = copy.deepcopy(DEFAULTS)
    target = expected
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return expected


def _nested(path: tuple[str, ...], value: object) -> dict[str, Any]:
    patch: Any = value
    for key in reversed(path):
        patch = {key: patch}
    return cast(dict[str, Any], patch)


THURSDAY = [{"start": "07:00", "end": "22:00"}]
ESCALATION = [{"channel": "sms", "after": "0s"}, {"channel": "voice", "after": "5m"}]


# One row per policy field: a patch naming only that field keeps every other key, defaults
# included (RFC 7396). Nested maps merge key by key: one weekday keeps the other six.
@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        (("calling", "windows", "thu"), THURSDAY, THURSDAY),
        (("calling", "windows", "sat"), [], []),
        (("calling", "skip_holidays"), False, False),
        (("calling", "holiday_country"), "ca", "CA"),
        (("calling", "holiday_subdivision"), "ca", "CA"),
        (("calling", "max_calls_per_minute"), 20, 20),
        (("calling", "strategy"), "spread", "spread"),
        (("calling", "horizon_days"), 30, 30),
        (("calling", "max_attempts"), 5, 5),
        (("calling", "retry_delay"), "PT1H", "1h"),
        (("calling", "max_attempts_per_day"), 2, 2),
        (("calling", "max_attempts_per_week"), 4, 4),
        (("calling", "default_tz"), "America/Chicago", "America/Chicago"),
        (("booking", "slot_minutes"), 30, 30),
        (("booking", "hold"), "15m", "15m"),
        (("booking", "min_notice"), "2h", "2h"),
        (("booking", "default_tz"), "Europe/Paris", "Europe/Paris"),
        (
            ("shifts", "escalation"),
            ESCALATION,
            [
                {"channel": "sms", "after": "0s", "tiers": None},
                {"channel": "voice", "after": "5m", "tiers": None},
            ],
        ),
        (("shifts", "default_tz"), "America/Denver", "America/Denver"),
        (("shifts", "refill"), "manual", "manual"),
        (
            ("shifts", "quiet_hours"),
            {"start": "22:00", "end": "07:00"},
            {"start": "22:00", "end": "07:00"},
        ),
    ],
)
async def test_a_patch_keeps_every_key_it_does_not_name(
    client: httpx.AsyncClient, path: tuple[str, ...], value: object, shown: object
) -> None:
    response = await client.patch("/tenants/me/policy", json=_nested(path, value))
    assert response.status_code == 200, response.text
    expected = _with(path, shown)
    assert response.json() == expected
    assert (await client.get("/tenants/me/policy")).json() == expected


async def test_successive_patches_accumulate(client: httpx.AsyncClient) -> None:
    await client.patch("/tenants/me/policy", json={"calling": {"windows": {"sat": [], "sun": []}}})
    await client.patch("/tenants/me/policy", json={"calling": {"windows": {"thu": THURSDAY}}})
    windows = (await client.get("/tenants/me/policy")).json()["calling"]["windows"]
    assert windows["mon"] == [{"start": "09:00", "end": "17:00"}]
    assert (windows["thu"], windows["sat"], windows["sun"]) == (THURSDAY, [], [])


async def test_null_puts_a_field_back_to_its_default(client: httpx.AsyncClient) -> None:
    await client.patch("/tenants/me/policy", json={"booking": {"hold": "10m", "slot_minutes": 30}})
    response = await client.patch("/tenants/me/policy", json={"booking": {"hold": None}})
    assert response.json()["booking"] == {**DEFAULTS["booking"], "slot_minutes": 30}


# Each absurd value is refused with the field named, on write (issue 19).
@pytest.mark.parametrize(
    ("patch", "where", "words"),
    [
        (
            {"calling": {"holiday_country": "XX"}},
            ["calling", "holiday_country"],
            "unknown holiday country",
        ),
        (
            {"calling": {"holiday_subdivision": "ZZ"}},
            ["calling", "holiday_subdivision"],
            "no subdivision",
        ),
        ({"booking": {"hold": "99999999999d"}}, ["booking", "hold"], "at most 7d"),
        ({"booking": {"hold": 1e308}}, ["booking", "hold"], "at most 7d"),
        ({"booking": {"hold": "0s"}}, ["booking", "hold"], "at least 1m"),
        ({"booking": {"min_notice": -3600}}, ["booking", "min_notice"], "cannot be negative"),
        ({"booking": {"min_notice": "400d"}}, ["booking", "min_notice"], "at most 90d"),
        ({"calling": {"retry_delay": 10**12}}, ["calling", "retry_delay"], "at most 7d"),
        ({"calling": {"retry_delay": "nan"}}, ["calling", "retry_delay"], "expected a duration"),
        (
            {"calling": {"max_attempts_per_day": 10**9}},
            ["calling", "max_attempts_per_day"],
            "less than or equal",
        ),
        (
            {"shifts": {"escalation": [{"channel": "sms", "after": "30d"}]}},
            ["shifts", "escalation", 0, "after"],
            "at most 7d",
        ),
    ],
)
async def test_absurd_values_are_refused_naming_the_field(
    client: httpx.AsyncClient, patch: dict[str, object], where: list[object], words: str
) -> None:
    response = await client.patch("/tenants/me/policy", json=patch)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [["body", *where]] == [error["loc"] for error in errors]
    assert words in errors[0]["msg"]
    assert not errors[0]["msg"].startswith("Value error")


async def _store_raw_policy(runtime: Runtime, document: dict[str, Any]) -> None:
    """A policy written before today's checks existed (as an older release could store)."""
    async with transaction(runtime.sessions) as session:
        await session.execute(update(Tenant).values(policy=document))


@pytest.mark.parametrize(
    ("request_line", "body"),
    [
        (("POST", "/calls"), {"name": "Ann", "phone": "+12125550100"}),
        (("POST", "/schedule"), [{"name": "Ann", "phone": "+12125550100"}]),
        (("GET", "/tenants/me/policy"), None),
        (("GET", "/slots"), None),
    ],
)
async def test_a_stored_invalid_policy_is_reported_not_a_crash(
    client: httpx.AsyncClient, runtime: Runtime, request_line: tuple[str, str], body: object
) -> None:
    await _store_raw_policy(runtime, {"calling": {"holiday_country": "XX"}})
    response = await client.request(*request_line, json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:caretime:problem:stored-policy-invalid"
    assert problem["errors"][0]["loc"] == ["policy", "calling", "holiday_country"]
    assert "PATCH /tenants/me/policy" in problem["detail"]


async def test_a_stored_invalid_policy_can_be_corrected(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _store_raw_policy(runtime, {"calling": {"holiday_country": "XX", "max_attempts": 4}})
    fixed = await client.patch("/tenants/me/policy", json={"calling": {"holiday_country": "US"}})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["calling"]["max_attempts"] == 4
    call = await client.post("/calls", json={"name": "Ann", "phone": "+12125550100"})
    assert call.status_code == 201, call.text

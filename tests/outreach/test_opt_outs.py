"""Opt-outs at scheduling: a number opted out of calls is rejected when scheduled, with when
and how, in /schedule, batches, POST /calls and the CSV preview."""

import httpx

from tests.support import TEST_API_KEY, bearer
from tests.web.support import sign_in

STOPPED = "212-555-0100"


async def stop(client: httpx.AsyncClient, phone: str = STOPPED) -> None:
    reply = await client.post("/messages/inbound", json={"from": phone, "body": "STOP"})
    assert reply.json()["action"] == "opted_out"


async def test_schedule_rejects_a_number_that_texted_stop(client: httpx.AsyncClient) -> None:
    await stop(client)
    response = await client.post(
        "/schedule",
        json=[
            {"name": "Ann", "phone": "+1 (212) 555-0100", "allow_duplicate": True},
            {"name": "Bob", "phone": "212-555-0101"},
        ],
    )
    ann, bob = response.json()
    assert ann == {
        "name": "Ann",
        "phone": "+1 (212) 555-0100",
        "status": "rejected",
        "error": "the recipient opted out of calls on 2026-03-02T15:00:00Z (replied STOP)",
    }
    assert bob["status"] == "scheduled"
    batch = await client.post(
        "/outreach/batches", json={"items": [{"name": "A", "phone": STOPPED}]}
    )
    assert batch.json()["rejections"] == {"opted_out": 1}


async def test_post_calls_refuses_an_opted_out_number(client: httpx.AsyncClient) -> None:
    await client.put(
        f"/contacts/{STOPPED}/consent",
        json={"channel": "voice", "opted_out": True, "note": "asked by letter"},
    )
    response = await client.post("/calls", json={"name": "Ann", "phone": STOPPED})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("opted-out")
    assert problem["detail"] == (
        "the recipient opted out of calls on 2026-03-02T15:00:00Z (recorded by the tenant)"
    )


async def test_an_sms_only_opt_out_does_not_stop_calls(client: httpx.AsyncClient) -> None:
    await client.put(
        f"/contacts/{STOPPED}/consent",
        json={"channel": "sms", "opted_out": True, "note": "texts only"},
    )
    assert (await client.post("/calls", json={"name": "A", "phone": STOPPED})).status_code == 201


async def test_opting_back_in_allows_calls_again(client: httpx.AsyncClient) -> None:
    await stop(client)
    await client.post("/messages/inbound", json={"from": STOPPED, "body": "START"})
    assert (await client.post("/calls", json={"name": "A", "phone": STOPPED})).status_code == 201


async def test_the_csv_preview_shows_the_opt_out(anon_client: httpx.AsyncClient) -> None:
    token = await sign_in(anon_client)
    reply = await anon_client.post(
        "/messages/inbound", json={"from": STOPPED, "body": "STOP"}, headers=bearer(TEST_API_KEY)
    )
    assert reply.status_code == 200
    preview = await anon_client.post(
        "/ui/batches/preview",
        data={"csrf_token": token},
        files={"file": ("p.csv", f"name,phone\nAnn,{STOPPED}\n".encode(), "text/csv")},
    )
    assert '<dd data-stat="rejected">1</dd>' in preview.text
    assert "opted out of calls on 2026-03-02T15:00:00Z (replied STOP)" in preview.text

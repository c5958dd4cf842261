import httpx
import pytest

from tests.outreach.support import make_items

CSV = (
    "Name,Phone,Scheduled,TZ\n"
    "Ann,212-555-0100,,\n"
    "Bob,2-(208)-555-5556,,\n"
    "Cy,312-555-0100,2026-03-02T16:00:00Z,\n"
)


async def test_a_json_batch_with_overrides_reports_a_summary(client: httpx.AsyncClient) -> None:
    items = [*make_items(count=3), {"name": "X", "phone": "nope"}]
    body = {"items": items, "max_attempts": 2, "retry_delay": "30m", "strategy": "spread"}
    response = await client.post("/outreach/batches", json=body)
    assert response.status_code == 201
    batch = response.json()
    assert (batch["total"], batch["scheduled"], batch["rejected"]) == (4, 3, 1)
    assert batch["rejections"] == {"invalid_phone": 1}
    assert batch["rejected_items"][0]["index"] == 3
    assert (batch["strategy"], batch["max_attempts"], batch["retry_delay"]) == ("spread", 2, "30m")
    calls = (await client.get("/calls", params={"batch_id": batch["id"]})).json()["items"]
    assert {(c["max_attempts"], c["retry_delay"]) for c in calls} == {(2, "30m")}
    fetched = (await client.get(f"/outreach/batches/{batch['id']}")).json()
    assert fetched["calls_by_status"] == {"scheduled": 3}


async def test_a_csv_upload(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/outreach/batches?max_attempts=4", files={"file": ("patients.csv", CSV, "text/csv")}
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert (batch["source"], batch["scheduled"], batch["rejected"], batch["max_attempts"]) == (
        "csv",
        2,
        1,
        4,
    )


async def test_a_csv_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/outreach/batches", content=CSV, headers={"Content-Type": "text/csv"}
    )
    assert response.json()["scheduled"] == 2


async def test_a_csv_without_a_phone_column_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/outreach/batches", content="name\nAnn\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 422
    assert "phone" in response.json()["detail"]


async def test_the_same_batch_twice_returns_the_same_batch(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "upload-7"}
    body = {"items": make_items(count=4)}
    first = await client.post("/outreach/batches", json=body, headers=headers)
    again = await client.post("/outreach/batches", json=body, headers=headers)
    assert first.json() == again.json()
    assert len((await client.get("/calls")).json()["items"]) == 4


async def test_an_unknown_batch_is_a_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/outreach/batches/bat_nope")).status_code == 404


async def test_a_dry_run_batch_returns_the_plan_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/outreach/batches?dry_run=true", json={"items": make_items(count=2)}
    )
    assert response.status_code == 200
    assert [item["status"] for item in response.json()["items"]] == ["scheduled"] * 2
    assert (await client.get("/calls")).json()["items"] == []


@pytest.mark.parametrize("retry_delay", [10**12, "99999999999d", 1e308, -1])
async def test_absurd_per_batch_overrides_are_refused_naming_the_field(
    client: httpx.AsyncClient, retry_delay: object
) -> None:
    body = {"items": make_items(count=1), "retry_delay": retry_delay}
    json_batch = await client.post("/outreach/batches", json=body)
    csv_batch = await client.post(
        "/outreach/batches",
        params={"retry_delay": str(retry_delay)},
        content=CSV,
        headers={"content-type": "text/csv"},
    )
    for response in (json_batch, csv_batch):
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][-1] == "retry_delay"


async def test_csv_rejections_name_csv_lines(client: httpx.AsyncClient) -> None:
    csv_text = (
        "name,phone\n"  # line 1
        "Ann,212-555-0100\n"  # line 2
        '"Bob\nthe second",not a phone\n'  # lines 3-4: a quoted name spans two lines
        "\n"  # line 5: blank, skipped
        "Cy,212-555-0100\n"  # line 6: Ann's number again
    )
    response = await client.post(
        "/outreach/batches", content=csv_text, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    rejected = response.json()["rejected_items"]
    assert [(r["index"], r["line"]) for r in rejected] == [(1, 3), (2, 6)]
    assert rejected[1]["error"] == (
        "the same number is already in this batch at line 2 "
        '(send "allow_duplicate": true to call it twice)'
    )


async def test_a_json_duplicate_names_the_item_it_repeats(client: httpx.AsyncClient) -> None:
    items = [{"name": "X"}, {"name": "Ann", "phone": "212-555-0100"}, "junk",
             {"name": "Cy", "phone": "+1 212 555 0100"}]  # fmt: skip
    response = await client.post("/schedule", json=items)
    assert response.status_code == 200, response.text
    assert response.json()[3]["error"] == (
        "the same number is already in this batch at item 1 "
        '(send "allow_duplicate": true to call it twice)'
    )


async def test_a_csv_the_csv_module_cannot_read_is_a_422_naming_the_line(
    client: httpx.AsyncClient,
) -> None:
    text = "name,phone\nAnn,212-555-0100\nB\rob,212-555-0101\n"
    response = await client.post(
        "/outreach/batches", content=text, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422, response.text
    assert "line" in response.json()["detail"]

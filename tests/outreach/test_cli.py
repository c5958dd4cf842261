import csv
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from caretime.cli import app
from tests.outreach.support import set_calling_policy

PATIENTS = (
    "name,phone,scheduled,tz\n"
    "John Doe,1-206-555-5555,,\n"
    "Jane Doe,2-(208)-555-5556,2023-04-01T10:00:00Z,\n"
    "Ann,212-555-0100,,\n"
    "Toll,800-555-0100,,\n"
)


def test_plan_writes_a_schedule_and_summarises_it(tmp_path: Path) -> None:
    patients, out = tmp_path / "patients.csv", tmp_path / "schedule.csv"
    patients.write_text(PATIENTS)
    result = CliRunner().invoke(
        app,
        ["plan", str(patients), "--out", str(out), "--now", "2026-03-02T15:00:00Z",
         "--default-tz", "America/Chicago", "--strategy", "spread"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["phone_e164"], r["status"]) for r in rows] == [
        ("+12065555555", "scheduled"),
        ("", "rejected"),
        ("+12125550100", "scheduled"),
        ("+18005550100", "scheduled"),
    ]
    assert rows[1]["error"] == "not a valid phone number"
    assert rows[3]["tz"] == "America/Chicago"
    assert "rejected: invalid_phone" in result.output
    assert "Calls per hour per time zone" in result.output


def test_plan_refuses_a_csv_without_phones(tmp_path: Path) -> None:
    patients = tmp_path / "patients.csv"
    patients.write_text("name\nAnn\n")
    result = CliRunner().invoke(app, ["plan", str(patients)])
    assert result.exit_code == 2
    assert "lacks column(s): phone" in result.output


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["missing.csv"], "no such file: missing.csv"),
        (["{csv}", "--now", "tomorrow"], "--now 'tomorrow' is not an ISO 8601 instant"),
        (["{csv}", "--now", "2026-03-02T10:00"], "has no UTC offset"),
        (["{csv}", "--default-tz", "Mars/Base"], "unknown IANA time zone 'Mars/Base'"),
        (["{csv}", "--strategy", "fastest"], "calling.strategy: Input should be 'earliest'"),
        (["{csv}", "--policy", "{bad_json}"], "is not JSON: Expecting value at line 1"),
        (["{csv}", "--policy", "{bad_policy}"], "calling.windows.mon.0: Value error, a window"),
        (["{csv}", "--policy", "nowhere.json"], "no such policy file: nowhere.json"),
        (["{csv}", "--policy", "{bad_json}", "--tenant", "x"], "give --policy or --tenant"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], error: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.csv").write_text(PATIENTS)
    (tmp_path / "bad.json").write_text("not json")
    window = {"start": "17:00", "end": "09:00"}
    (tmp_path / "policy.json").write_text(json.dumps({"calling": {"windows": {"mon": [window]}}}))
    names = {"csv": "p.csv", "bad_json": "bad.json", "bad_policy": "policy.json"}
    result = CliRunner().invoke(app, ["plan", *(a.format(**names) for a in args)])
    assert result.exit_code == 2
    assert error in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output


def test_the_per_hour_table_fits_80_columns_and_counts_every_zone(tmp_path: Path) -> None:
    areas = [212, 206, 312, 303, 907, 808, 602, 305, 415, 808]
    rows = [f"P{a}{i},{a}-555-{i:04d}" for a in areas for i in range(3)]
    patients = tmp_path / "p.csv"
    patients.write_text("name,phone\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(
        app, ["plan", str(patients), "--now", "2026-03-02T15:00:00Z"], terminal_width=80
    )
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "more zones" in result.output
    assert "New_York" in result.output


async def test_plan_with_the_tenants_policy_file_matches_a_dry_run(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    windows = {
        "mon": [{"start": "10:30", "end": "12:00"}],
        "tue": [{"start": "13:00", "end": "14:00"}],
    }
    await set_calling_policy(client, max_calls_per_minute=2, strategy="spread", windows=windows)
    policy = tmp_path / "policy.json"
    policy.write_text((await client.get("/tenants/me/policy")).text)
    items = [
        {"name": f"P{i}", "phone": f"{a}-555-{i:04d}"} for a in (212, 206, 808) for i in range(40)
    ]
    items += [{"name": "Bad", "phone": "123"}, {"name": "Pin", "phone": "212-555-0999",
                                                 "scheduled": "2026-03-02T16:00:00Z"}]  # fmt: skip
    patients, out = tmp_path / "p.csv", tmp_path / "out.csv"
    lines = [f"{i['name']},{i['phone']},{i.get('scheduled', '')}" for i in items]
    patients.write_text("name,phone,scheduled\n" + "\n".join(lines) + "\n")
    args = ["--policy", str(policy), "--now", "2026-03-02T15:00:00Z", "--out", str(out)]
    result = CliRunner().invoke(app, ["plan", str(patients), *args])
    assert result.exit_code == 0, result.output
    offline = [(r["status"], r["tz"] or None, r["scheduled"] or None, r["error"] or None)
               for r in csv.DictReader(out.open())]  # fmt: skip
    dry_run = (await client.post("/schedule", params={"dry_run": "true"}, json=items)).json()
    served = [(i["status"], i.get("tz"), i.get("scheduled"), i.get("error")) for i in dry_run]
    assert offline == served
    assert {s for s, *_ in served} == {"scheduled", "rejected"}

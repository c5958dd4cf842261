import csv
from pathlib import Path

from typer.testing import CliRunner

from caretime.cli import app

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
    assert "missing column(s) phone" in result.output

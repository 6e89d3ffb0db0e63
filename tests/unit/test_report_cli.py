"""`callcenter report queues` (callcenter/report_cli.py) on a real data directory, in-process.

The parser is built the way callcenter/cli.py wires helpers (``add_parsers(subparsers, common)``
then ``HANDLERS[action](args)``); the scenario and its hand-computed figures are
tests/unit/test_queue_metrics.py's.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import pytest

from callcenter import report_cli
from callcenter.storage.db import Database
from callcenter.storage.repos import EventRepo
from routing.metrics import iso
from tests.unit.test_queue_metrics import at, write_scenario

RANGE = ["--from", "2026-12-01T01:00", "--to", "2026-12-01T02:00Z"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callcenter")
    sub = p.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report").add_subparsers(dest="action", required=True)

    def common(x: argparse.ArgumentParser) -> None:
        x.add_argument("--config", type=Path)
        x.add_argument("--data-dir", type=Path)

    report_cli.add_parsers(report, common)
    return p


def run(data: Path, *argv: str, now: float | None = None) -> int:
    args = parser().parse_args(["report", "queues", "--data-dir", str(data), *argv])
    return report_cli.HANDLERS[args.action](args) if now is None else report_cli.queues(args, now=now)


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    db = await Database.open(tmp_path)
    await write_scenario(db)
    await db.close()
    return tmp_path


def cells(text: str, first: str) -> list[str]:
    """The cells of the table row starting with ``first`` (cells are separated by two or more spaces)."""
    line = next(ln for ln in text.splitlines() if ln.startswith(first + " "))
    return [c.strip() for c in line.split("  ") if c.strip()]


async def test_tables(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(data, *RANGE, "--interval", "30m", now=at("13:00:00")) == 0
    out = capsys.readouterr().out
    assert out.startswith("Queues, 2026-12-01 01:00:00 to 2026-12-01 02:00:00 UTC\n")
    header = next(ln for ln in out.splitlines() if ln.startswith("QUEUE"))
    sales = next(ln for ln in out.splitlines() if ln.startswith("sales "))
    assert len(header) == len(sales.rstrip())          # aligned: numbers end under their headers' ends
    # offered answered abandoned short overflowed called-back SL T ASA AHT abandon% longest waiting
    assert cells(out, "sales") == ["sales", "10", "3", "3", "2", "2", "1", "14.3% (1/7)", "20s", "26.7s", "6:18",
                                   "30.0%", "3:00", "2"]
    assert cells(out, "(all)")[:8] == ["(all)", "10", "3", "3", "2", "2", "1", "14.3% (1/7)"]
    assert cells(out, "support")[1:8] == ["0", "0", "0", "0", "0", "0", "- (0/0)"]
    # answered completed no-answer available reserved talk wrap-up break occupancy state reasons
    assert cells(out, "bob") == ["bob", "2", "1", "0", "18:30", "15.0s", "11:00", "15.0s", "30:00", "37.5%",
                                 "on_call", "lunch 30:00"]
    assert cells(out, "alice")[1:4] == ["2", "2", "1"] and cells(out, "alice")[9] == "26.1%"
    assert "sales, every 30:00" in out
    assert cells(out, "2026-12-01 01:30:00")[1:3] == ["6", "1"]


async def test_csv_on_stdout_and_in_files(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(data, *RANGE, "--format", "csv", now=at("13:00:00")) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["queue"] for r in rows] == ["sales", "support", "(all)"]
    s = rows[0]
    assert (s["from"], s["to"]) == ("2026-12-01T01:00:00.000+00:00", "2026-12-01T02:00:00.000+00:00")
    assert (s["offered"], s["answered"], s["short_abandoned"], s["overflowed_timeout"], s["overflowed_full"]) == (
        "10", "3", "2", "1", "1")
    assert (s["sl_met"], s["sl_base"], s["service_level"], s["asa_s"], s["aht_s"]) == (
        "1", "7", "0.143", "26.667", "378.367")
    assert rows[1]["service_level"] == "" and rows[1]["service_level_s"] == "60"

    assert run(data, *RANGE, "--format", "csv", "--agents", now=at("13:00:00")) == 0
    agents = {r["agent"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert (agents["bob"]["break_by_reason"], agents["bob"]["occupancy"], agents["bob"]["on_call_s"]) == (
        "lunch=1800", "0.375", "660")

    out = tmp_path / "out" / "day.csv"
    out.parent.mkdir()
    assert run(data, *RANGE, "--interval", "1800", "--csv", str(out), now=at("13:00:00")) == 0
    err = capsys.readouterr().err
    assert "day-agents.csv" in err and "day-intervals.csv" in err
    intervals = list(csv.DictReader((out.parent / "day-intervals.csv").open(encoding="utf-8")))
    assert [(r["queue"], r["from"][11:16], r["offered"]) for r in intervals] == [
        ("sales", "01:00", "4"), ("sales", "01:30", "6"), ("support", "01:00", "0"), ("support", "01:30", "0")]
    assert [r["agent"] for r in csv.DictReader((out.parent / "day-agents.csv").open(encoding="utf-8"))] == [
        "alice", "bob", "dave"]
    assert list(csv.DictReader(out.open(encoding="utf-8")))[0]["offered"] == "10"


async def test_defaults_to_today_so_far(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(data, "--queue", "sales", now=at("01:58:00")) == 0
    out = capsys.readouterr().out
    assert out.startswith("Queues, 2026-12-01 00:00:00 to 2026-12-02 00:00:00 UTC (counted until "
                          "2026-12-01 01:58:00, now)")
    # By 01:58 the day has c0 too (entered 00:59:50, answered in 15 s); c8 has waited 60 s; c7 is not there yet.
    assert cells(out, "sales")[1:3] == ["10", "3"] and cells(out, "sales")[7] == "25.0% (2/8)"
    assert "(all)" not in out and "dave" not in out


async def test_bad_input_is_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--from", "last tuesday"], "'last tuesday' is not an ISO date or datetime"),
        (["--from", "2026-12-02", "--to", "2026-12-01T12:00"], "the range must end after it starts"),
        ([*RANGE, "--interval", "often"], "--interval 'often' is not a duration"),
        ([*RANGE, "--interval", "0.1s"], "at most 10000"),
        ([*RANGE, "--csv", str(tmp_path / "no" / "such" / "dir.csv")], "cannot write"),
    ]
    for argv, text in cases:
        assert run(data, *argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("callcenter: error: ") and text in err, err
    assert run(tmp_path / "empty", *RANGE) == 2
    assert "no database at" in capsys.readouterr().err
    with pytest.raises(SystemExit):   # argparse: --csv and --format together
        parser().parse_args(["report", "queues", "--csv", "x.csv", "--format", "csv"])


async def test_reads_while_the_server_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = await Database.open(tmp_path)   # the "server": its writer connection stays open throughout
    try:
        await write_scenario(db)
        assert run(tmp_path, *RANGE, "--format", "csv") == 0
        assert list(csv.DictReader(io.StringIO(capsys.readouterr().out)))[0]["offered"] == "10"
        await EventRepo(db).append("ENTERQUEUE", call_id="late", queue="sales", at=iso(at("01:59:59")))
        assert run(tmp_path, *RANGE, "--format", "csv") == 0
        assert list(csv.DictReader(io.StringIO(capsys.readouterr().out)))[0]["offered"] == "11"
    finally:
        await db.close()

"""`callcenter report keywords|qa` (callcenter/qa_report_cli.py) on a real SQLite database with inserted rows."""

from __future__ import annotations

import argparse
import csv
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callcenter import qa_report_cli
from callcenter.storage.db import DB_NAME, Database

CALLS = [  # id, started_at, queue, agent
    ("c1", "2026-03-01T09:00:00.000+00:00", "sales", "alice"),
    ("c2", "2026-03-01T10:00:00.000+00:00", "support", "bob"),
    ("c3", "2026-03-02T11:00:00.000+00:00", "support", "alice"),
    ("c4", "2026-03-03T23:59:59.000+00:00", "sales", "bob"),
    ("c5", "2026-02-20T12:00:00.000+00:00", "support", "alice"),     # before the range
    ("c6", "2026-03-04T00:00:00.000+00:00", "sales", "alice"),       # the first instant after it
]
HITS = [  # call, rule, category, source, repeat
    ("c1", "cancel_intent", "cancellation", "transcript", 2),
    ("c1", "refund_request", "refund", "spotting", 1),
    ("c2", "complaint", "complaint", "transcript", 1),
    ("c2", "cancel_intent", "cancellation", "transcript", 1),
    ("c3", "refund_request", "refund", "transcript", 1),
    ("c3", "competitor", "competitor", "transcript", 1),
    ("c4", "cancel_intent", "cancellation", "transcript", 1),
    ("c5", "cancel_intent", "cancellation", "transcript", 5),
    ("c6", "cancel_intent", "cancellation", "transcript", 3),
    ("file1", "legal_threat", "legal", "transcript", 1),                # a file transcribed outside a call
]
SCORES = [  # call, item, weight, auto_score, score (override)
    ("c1", "greeting", 2, 1.0, None), ("c1", "disclosure", 3, 0.0, None), ("c1", "empathy", 1, None, None),
    ("c2", "greeting", 2, 1.0, None), ("c2", "disclosure", 3, 1.0, None), ("c2", "empathy", 1, None, 0.5),
    ("c3", "greeting", 2, 0.0, 1.0), ("c3", "disclosure", 3, 1.0, None), ("c3", "empathy", 1, None, None),
    ("c4", "greeting", 2, 0.0, None), ("c4", "disclosure", 3, 0.0, None), ("c4", "empathy", 1, None, 0.0),
    ("c5", "greeting", 2, 1.0, None), ("c5", "disclosure", 3, 1.0, None), ("c5", "empathy", 1, None, None),
]


@pytest.fixture
async def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    db = await Database.open(d)          # the real migrations
    await db.close()
    conn = sqlite3.connect(d / DB_NAME)
    with conn:
        for cid, at, queue, agent in CALLS:
            conn.execute("INSERT INTO calls (id, sip_call_id, caller, callee, started_at, queue, agent) "
                         "VALUES (?, ?, '+15550100', '100', ?, ?, ?)", (cid, f"sip-{cid}", at, queue, agent))
        for cid, rule, cat, source, n in HITS:
            for i in range(n):
                conn.execute("INSERT INTO keyword_hits (call_id, rule, category, speaker, start_s, end_s, phrase, "
                             "source, created_at) VALUES (?, ?, ?, 'customer', ?, ?, 'x', ?, ?)",
                             (cid, rule, cat, i, i + 1, source, "2026-03-02T08:00:00.000+00:00"))
        for cid, item, weight, auto, score in SCORES:
            conn.execute("INSERT INTO qa_scores (call_id, scorecard, item, weight, auto_score, score, reviewer, "
                         "updated_at) VALUES (?, 'standard', ?, ?, ?, ?, ?, '2026-03-05T00:00:00.000+00:00')",
                         (cid, item, weight, auto, score, "qa1" if score is not None else ""))
    conn.close()
    return d


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callcenter report")
    sub = parser.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path)
        p.add_argument("--data-dir", type=Path)

    qa_report_cli.add_parsers(sub, common)
    args = parser.parse_args(list(argv))
    return qa_report_cli.HANDLERS[args.action](args)


def table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check_charts(out: Path, names: list[str]) -> None:
    for name in names:
        png, svg = (out / f"{name}.png").read_bytes(), (out / f"{name}.svg").read_text(encoding="utf-8")
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000, name
        assert "<svg" in svg and "</svg>" in svg, name


RANGE = ("--from", "2026-03-01", "--to", "2026-03-03")


def test_keywords_report(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "kw"
    assert run("keywords", "--data-dir", str(data_dir), *RANGE, "--out", str(out)) == 0
    cats = {r["category"]: (int(r["hits"]), int(r["calls"])) for r in table(out / "keywords_by_category.csv")}
    assert cats == {"cancellation": (4, 3), "refund": (2, 2), "complaint": (1, 1), "competitor": (1, 1),
                    "legal": (1, 1)}
    rules = {r["rule"]: r for r in table(out / "keywords_by_rule.csv")}
    assert (rules["cancel_intent"]["hits"], rules["cancel_intent"]["calls"]) == ("4", "3")
    assert (rules["refund_request"]["transcript"], rules["refund_request"]["spotting"]) == ("1", "1")
    days = {(r["day"], r["category"]): (int(r["hits"]), int(r["calls"])) for r in table(out / "keywords_by_day.csv")}
    assert days == {("2026-03-01", "cancellation"): (3, 2), ("2026-03-01", "refund"): (1, 1),
                    ("2026-03-01", "complaint"): (1, 1), ("2026-03-02", "refund"): (1, 1),
                    ("2026-03-02", "competitor"): (1, 1), ("2026-03-02", "legal"): (1, 1),
                    ("2026-03-03", "cancellation"): (1, 1)}
    queues = {(r["queue"], r["category"]): int(r["hits"]) for r in table(out / "keywords_by_queue.csv")}
    assert queues == {("sales", "cancellation"): 3, ("sales", "refund"): 1, ("support", "cancellation"): 1,
                      ("support", "complaint"): 1, ("support", "refund"): 1, ("support", "competitor"): 1,
                      ("(none)", "legal"): 1}
    agents = {(r["agent"], r["category"]): int(r["hits"]) for r in table(out / "keywords_by_agent.csv")}
    assert agents == {("alice", "cancellation"): 2, ("alice", "refund"): 2, ("alice", "competitor"): 1,
                      ("bob", "cancellation"): 2, ("bob", "complaint"): 1, ("(none)", "legal"): 1}
    check_charts(out, ["keywords_top", "keywords_categories_by_day", "keywords_by_queue", "keywords_by_agent"])
    printed = capsys.readouterr().out
    assert printed.startswith("9 keyword hits in 5 calls, 2026-03-01 00:00 to 2026-03-03 23:59 UTC")
    assert "cancellation" in printed and "CATEGORY" in printed


def test_keywords_report_filtered_by_queue(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "kw"
    assert run("keywords", "--data-dir", str(data_dir), *RANGE, "--queue", "sales", "--out", str(out)) == 0
    cats = {r["category"]: int(r["hits"]) for r in table(out / "keywords_by_category.csv")}
    assert cats == {"cancellation": 3, "refund": 1}


def test_qa_report(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "qa"
    assert run("qa", "--data-dir", str(data_dir), *RANGE, "--out", str(out)) == 0
    calls = {r["call_id"]: r for r in table(out / "qa_calls.csv")}
    assert {k: round(float(v["score"]), 4) for k, v in calls.items()} == {
        "c1": 0.4, "c2": round(5.5 / 6, 4), "c3": 1.0, "c4": 0.0}                 # overrides applied
    assert (calls["c2"]["items"], calls["c2"]["overridden"], calls["c3"]["agent"]) == ("3", "1", "alice")
    agents = {r["agent"]: r for r in table(out / "qa_by_agent.csv")}
    assert float(agents["alice"]["mean"]) == pytest.approx(0.7) and agents["alice"]["calls"] == "2"
    assert float(agents["bob"]["mean"]) == pytest.approx((5.5 / 6) / 2, abs=1e-4)
    assert (agents["alice"]["min"], agents["alice"]["max"], agents["bob"]["overridden"]) == ("0.4", "1", "2")
    hist = {(r["day"], r["agent"]): float(r["mean"]) for r in table(out / "qa_agent_by_day.csv")}
    assert hist == {("2026-03-01", "alice"): 0.4, ("2026-03-01", "bob"): pytest.approx(0.9167, abs=1e-4),
                    ("2026-03-02", "alice"): 1.0, ("2026-03-03", "bob"): 0.0}
    items = {r["item"]: r for r in table(out / "qa_items.csv")}
    assert (items["greeting"]["scored"], items["greeting"]["mean"], items["greeting"]["overridden"]) == ("4", "0.75",
                                                                                                       "1")
    assert (items["empathy"]["scored"], items["empathy"]["mean"]) == ("2", "0.25")
    queues = {r["queue"]: float(r["mean"]) for r in table(out / "qa_by_queue.csv")}
    assert queues == {"sales": pytest.approx(0.2), "support": pytest.approx((5.5 / 6 + 1) / 2, abs=1e-4)}
    check_charts(out, ["qa_history", "qa_by_agent", "qa_items"])
    printed = capsys.readouterr().out
    assert printed.startswith("4 scored calls") and "70.0%" in printed


def test_an_empty_range_still_writes_headers_and_charts(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "none"
    assert run("qa", "--data-dir", str(data_dir), "--from", "2025-01-01", "--to", "2025-01-02", "--out", str(out)) == 0
    assert (out / "qa_calls.csv").read_text(encoding="utf-8").strip() == (
        "call_id,day,queue,agent,scorecard,score,items,overridden")
    check_charts(out, ["qa_history", "qa_by_agent", "qa_items"])
    assert run("keywords", "--data-dir", str(data_dir), "--from", "2025-01-01", "--to", "2025-01-02",
               "--out", str(out)) == 0
    assert table(out / "keywords_by_rule.csv") == []


def test_bad_input_is_one_line_and_exit_2(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("keywords", "--data-dir", str(empty), "--out", str(tmp_path / "o")) == 2
    assert "no database at" in capsys.readouterr().err
    assert run("qa", "--data-dir", str(data_dir), "--from", "March", "--out", str(tmp_path / "o")) == 2
    assert "'March' is not an ISO date" in capsys.readouterr().err
    assert run("qa", "--data-dir", str(data_dir), "--from", "2026-03-05", "--to", "2026-03-01",
               "--out", str(tmp_path / "o")) == 2
    assert "is not before --to" in capsys.readouterr().err


def test_time_range_semantics() -> None:
    ns = argparse.Namespace(start=None, end=None)
    now = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    assert qa_report_cli.time_range(ns, now) == (datetime(2026, 2, 9, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))
    ns = argparse.Namespace(start="2026-03-01T08:00", end="2026-03-01T10:00+01:00")
    assert qa_report_cli.time_range(ns) == (datetime(2026, 3, 1, 8, tzinfo=UTC), datetime(2026, 3, 1, 9, tzinfo=UTC))

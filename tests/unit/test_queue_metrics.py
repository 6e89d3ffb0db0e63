"""Queue and agent metrics (routing/metrics.py) from real SQLite files, checked against hand-computed values.

The scenario (``write_scenario``) is one hour, 01:00-02:00 UTC on 2026-12-01, of queue "sales"
(T = 20 s, short abandons under 5 s) with agents alice, bob (still on a callback at 02:00), dave
(available since the day before, no calls) and eve (logged out before the range). Every figure the
tests expect is worked out by hand in the comments next to it. GET /api/queues/stats is exercised
in-process over the same file.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from callcenter.api import ApiContext
from callcenter.stats_api import build_router
from callcenter.storage.db import Database
from callcenter.storage.metrics_repo import MetricsRepo, read_rows
from callcenter.storage.repos import CallRepo, EventRepo, UserRepo
from routing import metrics
from routing.metrics import EventRow, compute, iso, parse_time

T0 = parse_time("2026-12-01")
START, END = T0 + 3600, T0 + 7200


def at(hms: str) -> float:
    """"01:00:10" (or "-1 23:00:00": the day before) as epoch seconds on 2026-12-01."""
    day = 0
    if " " in hms:
        d, hms = hms.split()
        day = int(d)
    h, m, s = hms.split(":")
    return T0 + day * 86400 + int(h) * 3600 + int(m) * 60 + float(s)


# (time, event, call, queue, agent, data)
SCENARIO: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
    ("-1 09:00:00", "AGENTSTATE", "", "", "dave", {"state": "available", "previous": "logged_out"}),
    ("00:10:00", "AGENTSTATE", "", "", "eve", {"state": "logged_out", "previous": "available"}),
    ("00:30:00", "AGENTSTATE", "", "", "alice", {"state": "available", "previous": "logged_out"}),
    ("00:50:00", "AGENTSTATE", "", "", "bob", {"state": "available", "previous": "logged_out"}),
    # c0 entered before the range, answered (by bob) inside it
    ("00:59:50", "ENTERQUEUE", "c0", "sales", "", {"callback": False, "position": 1}),
    ("00:59:58", "OFFER", "c0", "sales", "bob", {"reservation": "r0"}),
    ("00:59:58", "AGENTSTATE", "", "", "bob", {"state": "reserved", "previous": "available"}),
    ("01:00:05", "CONNECT", "c0", "sales", "bob", {"holdtime": 15, "ring_s": 7, "callback": False}),
    ("01:00:05", "AGENTSTATE", "", "", "bob", {"state": "on_call", "previous": "reserved"}),
    ("01:03:05", "COMPLETECALLER", "c0", "sales", "bob", {"holdtime": 15, "calltime": 180}),
    ("01:03:05", "AGENTSTATE", "", "", "bob", {"state": "wrap_up", "previous": "on_call"}),
    ("01:03:20", "AGENTSTATE", "", "", "bob", {"state": "available", "previous": "wrap_up"}),
    # c11 exactly at the range's start (no fraction in its time), a short abandon
    ("01:00:00", "ENTERQUEUE", "c11", "sales", "", {"callback": False}),
    ("01:00:02.5", "ABANDON", "c11", "sales", "", {"waittime": 2.5, "position": 1, "origposition": 1}),
    # c1: answered by alice within T
    ("01:00:10", "ENTERQUEUE", "c1", "sales", "", {"callback": False}),
    ("01:00:12", "OFFER", "c1", "sales", "alice", {"reservation": "r1"}),
    ("01:00:12", "AGENTSTATE", "", "", "alice", {"state": "reserved", "previous": "available"}),
    ("01:00:25", "CONNECT", "c1", "sales", "alice", {"holdtime": 15, "ring_s": 13, "callback": False}),
    ("01:00:25", "AGENTSTATE", "", "", "alice", {"state": "on_call", "previous": "reserved"}),
    # (the wrap-up state logged a moment before the COMPLETE: still this call's wrap-up)
    ("01:05:24.9", "AGENTSTATE", "", "", "alice", {"state": "wrap_up", "previous": "on_call"}),
    ("01:05:25", "COMPLETECALLER", "c1", "sales", "alice", {"holdtime": 15, "calltime": 300}),
    ("01:05:55", "AGENTSTATE", "", "", "alice", {"state": "available", "previous": "wrap_up"}),
    # c2 short abandon, c3 long abandon
    ("01:10:00", "ENTERQUEUE", "c2", "sales", "", {"callback": False}),
    ("01:10:03", "ABANDON", "c2", "sales", "", {"waittime": 3}),
    ("01:10:00", "AGENTSTATE", "", "", "bob", {"state": "break", "previous": "available", "reason": "lunch"}),
    ("01:20:00", "ENTERQUEUE", "c3", "sales", "", {"callback": False}),
    ("01:20:40", "ABANDON", "c3", "sales", "", {"waittime": 40}),
    # c4: alice lets it ring out once, then answers after 50 s (a miss)
    ("01:30:00", "ENTERQUEUE", "c4", "sales", "", {"callback": False}),
    ("01:30:02", "OFFER", "c4", "sales", "alice", {"reservation": "r2"}),
    ("01:30:02", "AGENTSTATE", "", "", "alice", {"state": "reserved", "previous": "available"}),
    ("01:30:17", "RINGNOANSWER", "c4", "sales", "alice", {"reservation": "r2", "reason": "timeout", "ring_s": 15}),
    ("01:30:17", "AGENTSTATE", "", "", "alice", {"state": "available", "previous": "reserved"}),
    ("01:30:45", "OFFER", "c4", "sales", "alice", {"reservation": "r3"}),
    ("01:30:45", "AGENTSTATE", "", "", "alice", {"state": "reserved", "previous": "available"}),
    ("01:30:50", "CONNECT", "c4", "sales", "alice", {"holdtime": 50, "ring_s": 5, "callback": False}),
    ("01:30:50", "AGENTSTATE", "", "", "alice", {"state": "on_call", "previous": "reserved"}),
    ("01:40:00", "AGENTSTATE", "", "", "bob", {"state": "available", "previous": "break"}),
    ("01:40:50", "COMPLETEAGENT", "c4", "sales", "alice", {"holdtime": 50, "calltime": 600}),
    ("01:40:50", "AGENTSTATE", "", "", "alice", {"state": "wrap_up", "previous": "on_call"}),
    ("01:41:00", "AGENTSTATE", "", "", "alice", {"state": "available", "previous": "wrap_up"}),
    # c5 times out to another queue; c9 finds the queue full
    ("01:45:00", "ENTERQUEUE", "c5", "sales", "", {"callback": False}),
    ("01:47:00", "EXITWITHTIMEOUT", "c5", "sales", "", {"waittime": 120, "target": "queue:b"}),
    ("01:55:00", "ENTERQUEUE", "c9", "sales", "", {"callback": False}),
    ("01:55:00", "EXITFULL", "c9", "sales", "", {"target": ""}),
    # c6 asks for a callback; bob takes it and is still on it at 02:00
    ("01:50:00", "ENTERQUEUE", "c6", "sales", "", {"callback": False}),
    ("01:50:30", "CALLBACKREQ", "c6", "sales", "", {"waittime": 30, "position": 1, "number": "+15550001"}),
    ("01:51:50", "OFFER", "c6", "sales", "bob", {"reservation": "r4"}),
    ("01:51:50", "AGENTSTATE", "", "", "bob", {"state": "reserved", "previous": "available"}),
    ("01:52:00", "CONNECT", "c6", "sales", "bob", {"holdtime": 120, "ring_s": 10, "callback": True}),
    ("01:52:00", "AGENTSTATE", "", "", "bob", {"state": "on_call", "previous": "reserved"}),
    ("01:52:10", "CALLBACKANSWER", "c6", "sales", "bob", {}),
    # c8 and c7 still waiting at 02:00, for 180 s (a miss already) and 10 s (undecided)
    ("01:57:00", "ENTERQUEUE", "c8", "sales", "", {"callback": False}),
    ("01:59:50", "ENTERQUEUE", "c7", "sales", "", {"callback": False}),
    # exactly at the end: not in the range
    ("02:00:00", "ENTERQUEUE", "c10", "sales", "", {"callback": False}),
    ("02:03:00", "AGENTSTATE", "", "", "bob", {"state": "wrap_up", "previous": "on_call"}),
    # other events of the table are ignored
    ("01:15:00", "IVR_NODE", "c3", "", "", {"node": "menu"}),
]


def rows(scenario: list[tuple[str, str, str, str, str, dict[str, Any]]] = SCENARIO) -> list[EventRow]:
    return [EventRow(at=at(t), event=e, call_id=c, queue=q, agent=a, data=d, id=i)
            for i, (t, e, c, q, a, d) in enumerate(scenario, 1)]


async def write_scenario(db: Database, scenario: list[tuple[str, str, str, str, str, dict[str, Any]]] = SCENARIO,
                         *, queues: dict[str, str] | None = None) -> None:
    events = EventRepo(db)
    for t, e, c, q, a, d in scenario:
        # the table's own style (milliseconds), except c11 which has no fraction
        stamp = iso(at(t)) if c != "c11" or e != "ENTERQUEUE" else iso(at(t)).replace(".000", "")
        await events.append(e, call_id=c, queue=q, agent=a, at=stamp, **d)
    for name, config in (queues or {"sales": '{"service_level_s": 20, "short_abandon_s": 5}',
                                    "support": '{"service_level_s": 60}'}).items():
        await db.write("INSERT INTO queues (name, config, created_at, updated_at) VALUES (?, ?, ?, ?)",
                       (name, config, iso(T0), iso(T0)))


def check_sales(m: metrics.QueueMetrics) -> None:
    assert (m.queue, m.start, m.end) == ("sales", START, END)
    assert m.offered == 10            # c11 c1 c2 c3 c4 c5 c6 c7 c8 c9 (not c0: before; not c10: at the end)
    assert m.answered == 3            # c0 c1 c4 (c6's CONNECT is a callback's)
    assert (m.abandoned, m.short_abandoned) == (3, 2)     # c11 2.5 s, c2 3 s, c3 40 s
    assert m.overflowed == 2 and m.overflowed_by == {"full": 1, "timeout": 1}
    assert (m.callback_requests, m.called_back, m.callback_failed) == (1, 1, 0)
    assert m.completed == 3           # c0 c1 c4
    # Offered in range: c1 met (15 s); c3 c4 c5 c6 c8 c9 missed; c11 c2 short; c7 undecided (10 s < T at 02:00)
    assert (m.sl_met, m.sl_base, m.service_level_s) == (1, 7, 20.0)
    assert m.service_level == pytest.approx(1 / 7)
    assert m.asa_s == pytest.approx((15 + 15 + 50) / 3)
    # talk + the wrap-up that followed: c0 180 + 15, c1 300 + 30.1 (from 01:05:24.9), c4 600 + 10
    assert m.aht_s == pytest.approx((195 + 330.1 + 610) / 3)
    assert m.avg_talk_s == pytest.approx(360)
    assert m.avg_wrap_up_s == pytest.approx(55.1 / 3)
    assert m.abandon_rate == pytest.approx(3 / 10)
    assert m.longest_wait_s == pytest.approx(180)          # c8, still waiting at 02:00 (c5 left after 120)
    assert m.waiting_at_end == 2                            # c7 c8


def check_agents(agents: dict[str, metrics.AgentMetrics]) -> None:
    assert list(agents) == ["alice", "bob", "dave"]         # eve was logged out all along
    a = agents["alice"]
    assert (a.offers, a.no_answer, a.answered, a.completed) == (3, 1, 2, 2)
    # available 12 + (01:05:55..01:30:02 = 1447) + 28 + 1140; reserved 13 + 15 + 5; on call 300 + 600;
    # wrap-up 29.9 + 0.1... : from 01:05:24.9 to 01:05:55 (30.1) and 10
    assert a.available_s == pytest.approx(12 + 1447 + 28 + 1140)
    assert a.reserved_s == pytest.approx(33)
    assert a.on_call_s == pytest.approx(299.9 + 600)
    assert a.wrap_up_s == pytest.approx(30.1 + 10)
    assert a.break_s == 0 and a.break_by_reason == {}
    assert a.logged_in_s == pytest.approx(3600)
    assert a.occupancy == pytest.approx((899.9 + 40.1) / 3600)
    assert a.state_at_end == "available"
    b = agents["bob"]
    assert (b.offers, b.no_answer, b.answered, b.completed) == (1, 0, 2, 1)   # c0's offer was before 01:00
    # reserved 5 (from 00:59:58) + 10; on call 180 + 480 (still on c6's callback at 02:00: clipped);
    # wrap-up 15 (its wrap-up from 02:03 is outside); available 400 + 710; lunch 1800
    assert (b.reserved_s, b.on_call_s, b.wrap_up_s) == pytest.approx((15, 660, 15))
    assert b.available_s == pytest.approx(1110)
    assert b.break_s == pytest.approx(1800) and b.break_by_reason == {"lunch": pytest.approx(1800)}
    assert b.logged_in_s == pytest.approx(3600)
    assert b.occupancy == pytest.approx(675 / 1800)          # break time is not in the denominator
    assert b.state_at_end == "on_call"
    d = agents["dave"]
    assert (d.available_s, d.occupancy, d.answered, d.state_at_end) == (3600, 0.0, 0, "available")


def test_the_scenario_by_hand() -> None:
    report = compute(rows(), START, END, service_level_s={"sales": 20}, short_abandon_s={"sales": 5})
    assert list(report.queues) == ["sales"]
    check_sales(report.queues["sales"])
    check_agents(report.agents)
    assert report.horizon == END
    t = report.total
    assert (t.queue, t.offered, t.answered, t.sl_met, t.sl_base, t.service_level_s) == ("", 10, 3, 1, 7, None)
    assert t.aht_s == report.queues["sales"].aht_s and t.longest_wait_s == 180


def test_hourly_and_half_hourly_buckets_add_up() -> None:
    report = compute(rows(), START, END, bucket_s=1800)
    first, second = report.buckets["sales"]
    assert (first.start, first.end, second.start, second.end) == (START, START + 1800, START + 1800, END)
    # 01:00-01:30: c11 c1 c2 c3 offered; c0 c1 answered; c11 c2 c3 abandoned; cohort c1 met, c3 missed
    assert (first.offered, first.answered, first.abandoned, first.short_abandoned) == (4, 2, 3, 2)
    assert (first.sl_met, first.sl_base, first.completed) == (1, 2, 2)     # c0 c1 completed
    # 01:30-02:00: c4 c5 c6 c7 c8 c9; c4 answered; cohort c4 c5 c6 c8 c9 missed, c7 undecided
    assert (second.offered, second.answered, second.overflowed, second.sl_met, second.sl_base) == (6, 1, 2, 0, 5)
    assert (second.completed, second.waiting_at_end, second.longest_wait_s) == (1, 2, 180)
    assert second.asa_s == 50 and first.asa_s == 15
    hourly = compute(rows(), START, END, bucket_s=3600).buckets["sales"]
    assert len(hourly) == 1 and hourly[0].offered == 10 and hourly[0].sl_base == 7
    # Buckets align to multiples of the interval since the epoch; the range's ends clip them.
    odd = compute(rows(), START + 600, END, bucket_s=1800).buckets["sales"]
    assert [(b.start - T0, b.end - T0) for b in odd] == [(4200, 5400), (5400, 7200)]


def test_thresholds_per_queue_change_the_service_level() -> None:
    # T = 50 s: c4 (50 s) is met too; short abandons under 3 s: only c11 (2.5 s) is short, c2 (3 s) a miss.
    m = compute(rows(), START, END, service_level_s={"sales": 50}, short_abandon_s={"sales": 3}).queues["sales"]
    assert (m.sl_met, m.sl_base, m.short_abandoned) == (2, 8, 1)
    # The defaults apply to queues the mappings do not name.
    m = compute(rows(), START, END, default_service_level_s=15, default_short_abandon_s=0).queues["sales"]
    assert (m.sl_met, m.sl_base, m.short_abandoned) == (1, 9, 0)   # c1 at 15 s is met (<= T); c7 undecided


def test_now_inside_the_range_ends_open_intervals_and_waits() -> None:
    # At 01:58:00 c8 has waited 60 s (a miss), c7 has not arrived; bob's call counts up to now.
    now = at("01:58:00")
    early = [r for r in rows() if r.at < now]
    report = compute(early, START, END + 3600, now=now)
    m = report.queues["sales"]
    assert report.horizon == now
    assert (m.waiting_at_end, m.longest_wait_s, m.sl_base) == (1, 120, 7)   # c5's 120 s beats c8's 60 s
    assert report.agents["bob"].on_call_s == pytest.approx(180 + 360)
    assert report.agents["alice"].available_s == pytest.approx(12 + 1447 + 28 + 1020)


def test_a_wrap_up_past_the_end_counts_whole_in_aht_and_clipped_in_agent_time() -> None:
    scenario: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
        ("01:40:00", "AGENTSTATE", "", "", "carol", {"state": "on_call", "previous": "reserved"}),
        ("01:59:50", "COMPLETEAGENT", "x1", "help", "carol", {"holdtime": 5, "calltime": 1190}),
        ("01:59:50", "AGENTSTATE", "", "", "carol", {"state": "wrap_up", "previous": "on_call"}),
        ("02:00:20", "AGENTSTATE", "", "", "carol", {"state": "available", "previous": "wrap_up"}),
    ]
    report = compute(rows(scenario), START, END)
    assert report.queues["help"].aht_s == pytest.approx(1190 + 30)
    c = report.agents["carol"]
    assert (c.on_call_s, c.wrap_up_s, c.occupancy, c.completed) == (1190, 10, 1.0, 1)
    # Without the closing row (still in wrap-up), the wrap-up runs to the horizon.
    assert compute(rows(scenario[:3]), START, END).queues["help"].aht_s == pytest.approx(1200)
    # A call with no wrap-up after it (straight back to available) adds none.
    none = [*scenario[:2], ("01:59:50", "AGENTSTATE", "", "", "carol", {"state": "available", "previous": "on_call"})]
    assert compute(rows(none), START, END).queues["help"].aht_s == pytest.approx(1190)


def test_no_events() -> None:
    report = compute([], START, END, queues=["sales"])
    m = report.queues["sales"]
    assert (m.offered, m.answered, m.sl_base, m.longest_wait_s, m.waiting_at_end) == (0, 0, 0, 0.0, 0)
    assert (m.service_level, m.asa_s, m.aht_s, m.abandon_rate) == (None, None, None, None)
    assert report.agents == {} and report.total.offered == 0
    assert compute([], START, END).queues == {}


def test_only_queue_keeps_its_agents() -> None:
    report = compute(rows(), START, END, queues=["sales", "support"], only_queue="sales")
    assert list(report.queues) == ["sales"]
    assert list(report.agents) == ["alice", "bob"]          # dave did no work in sales
    other = compute(rows(), START, END, queues=["sales", "support"], only_queue="support")
    assert list(other.queues) == ["support"] and other.queues["support"].offered == 0 and other.agents == {}


def test_bad_ranges_and_times() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        compute([], END, START)
    with pytest.raises(ValueError, match="must be times"):
        compute([], math.nan, END)
    with pytest.raises(ValueError, match="at most 10000"):
        compute([], START, START + 86400 * 30, bucket_s=60)
    with pytest.raises(ValueError, match="positive"):
        compute([], START, END, bucket_s=0)
    with pytest.raises(ValueError, match="not an ISO date"):
        parse_time("yesterday")
    assert parse_time("2026-12-01", end=True) == T0 + 86400
    assert parse_time("2026-12-01T01:00") == START == parse_time("2026-12-01T02:00+01:00")
    assert parse_time("2026-12-01 01:00:00Z") == START
    assert metrics.today_utc(START + 5) == (T0, T0 + 86400)


# -- from SQLite files -----------------------------------------------------------------------------------

async def test_from_a_sqlite_file(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        await write_scenario(db)
        await EventRepo(db).append("ENTERQUEUE", call_id="bad", queue="sales", at="2026-12-01T01:30:00 not a time")
        report, got = await MetricsRepo.for_database(db).report(START, END)
    finally:
        await db.close()
    assert got.skipped == 1
    assert got.service_level_s == {"sales": 20.0, "support": 60.0} and got.short_abandon_s == {"sales": 5.0}
    # Rows outside the range: only each agent's AGENTSTATE just before it and just after it.
    outside = sorted((r.agent, iso(r.at)[11:19]) for r in got.rows if not START <= r.at < END)
    assert outside == [("alice", "00:30:00"), ("bob", "00:59:58"), ("bob", "02:03:00"), ("dave", "09:00:00"),
                       ("eve", "00:10:00")]
    assert list(report.queues) == ["sales", "support"]
    check_sales(report.queues["sales"])
    check_agents(report.agents)
    s = report.queues["support"]
    assert (s.offered, s.service_level_s, s.service_level) == (0, 60.0, None)


async def test_queue_filter_reads_through_the_queue_index(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        await write_scenario(db)
        await EventRepo(db).append("ENTERQUEUE", call_id="o1", queue="other", at=iso(at("01:30:00")))
        report, _ = MetricsRepo.for_data_dir(tmp_path).report_sync(START, END, queue="sales", bucket_s=None)
        names = sorted(metrics.QUEUE_EVENTS)
        plain = sqlite3.connect(tmp_path / "callcenter.db")
        plan = " ".join(r[3] for r in plain.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE queue = ? AND at >= ? AND at < ? "
            f"AND event IN ({', '.join('?' * len(names))})", ("sales", "a", "b", *names)))
        plain.close()
    finally:
        await db.close()
    assert "events_queue_at" in plan
    assert list(report.queues) == ["sales"] and report.buckets == {}
    check_sales(report.queues["sales"])
    assert list(report.agents) == ["alice", "bob"]


async def test_an_empty_database_and_a_missing_one(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    await db.close()
    report, got = MetricsRepo.for_data_dir(tmp_path).report_sync(START, END)
    assert (report.queues, report.agents, got.rows) == ({}, {}, [])
    from callcenter.exceptions import ConfigError

    with pytest.raises(ConfigError, match="no database at"):
        MetricsRepo.for_data_dir(tmp_path / "nowhere").report_sync(START, END)


async def test_read_rows_before_the_acd_migration_uses_default_thresholds(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, at TEXT, call_id TEXT, queue TEXT, agent TEXT, "
                 "event TEXT, data TEXT)")
    conn.execute("INSERT INTO events (at, call_id, queue, agent, event, data) VALUES (?, 'c', 'q', '', "
                 "'ENTERQUEUE', '{}')", (iso(at("01:10:00")),))
    got = read_rows(conn, START, END)
    conn.close()
    assert (len(got.rows), got.queues, got.service_level_s) == (1, [], {})
    assert compute(got.rows, START, END).queues["q"].offered == 1


# -- GET /api/queues/stats ---------------------------------------------------------------------------------

class FakeAcd:
    """The live ACD (callcenter/acd.py, the lead's) is not part of this test: only its snapshot() is used."""

    def snapshot(self) -> dict[str, Any]:
        return {"at": 1234.5,
                "queues": {"sales": {"waiting": 2, "longest_wait_s": 31.5, "agents": {"available": 1, "on_call": 1}},
                           "vip": {"waiting": 0, "longest_wait_s": 0.0, "agents": {}}},
                "agents": {"alice": {"id": "alice", "state": "available", "reason": "", "since": 1.0,
                                     "pending": "", "contact": ""}}}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ApiContext]]:
    db = await Database.open(tmp_path)
    users = UserRepo(db)
    await users.add("root", "admin", "tok-admin")
    await users.add("sv", "supervisor", "tok-sup")
    await users.add("ag", "agent", "tok-agent")
    await write_scenario(db)
    ctx = ApiContext(calls=CallRepo(db), users=users, data_dir=tmp_path.resolve(), active_calls=lambda: 0)
    app = FastAPI()
    app.state.ctx = ctx
    app.include_router(build_router(ctx))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c, ctx
    await db.close()


SUP = {"Authorization": "Bearer tok-sup"}
RANGE = {"from": "2026-12-01T01:00:00Z", "to": "2026-12-01T02:00:00Z"}


async def test_stats_api_roles_and_figures(client: tuple[httpx.AsyncClient, ApiContext]) -> None:
    c, ctx = client
    assert (await c.get("/api/queues/stats", params=RANGE)).status_code == 401
    assert (await c.get("/api/queues/stats", params=RANGE, headers={"Authorization": "Bearer tok-agent"})
            ).status_code == 403
    r = await c.get("/api/queues/stats", params={**RANGE, "interval": 1800}, headers=SUP)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["start"], body["end"], body["acd_running"], body["skipped_rows"]) == (
        "2026-12-01T01:00:00.000+00:00", "2026-12-01T02:00:00.000+00:00", False, 0)
    sales = next(q for q in body["queues"] if q["queue"] == "sales")
    assert sales["waiting"] is None
    check_sales(metrics.QueueMetrics(**sales["metrics"]))
    assert [a["agent"] for a in body["agents"]] == ["alice", "bob", "dave"]
    assert [b["offered"] for b in body["intervals"]["sales"]] == [4, 6]
    assert (await c.get("/api/queues/stats", params={**RANGE, "queue": "support"}, headers={
        "Authorization": "Bearer tok-admin"})).json()["agents"] == []
    ctx.acd = FakeAcd()
    body = (await c.get("/api/queues/stats", params=RANGE, headers=SUP)).json()
    assert body["acd_running"] and body["live_at"] == 1234.5
    by = {q["queue"]: q for q in body["queues"]}
    assert list(by) == ["sales", "support", "vip"]          # vip: known to the live ACD only
    assert (by["sales"]["waiting"], by["sales"]["longest_wait_now_s"], by["sales"]["agents_now"]) == (
        2, 31.5, {"available": 1, "on_call": 1})
    assert by["support"]["waiting"] is None and by["vip"]["metrics"]["offered"] == 0
    agents = {a["agent"]: a for a in body["agents"]}
    assert agents["alice"]["state_now"] == "available" and agents["bob"]["state_now"] is None


async def test_stats_api_bad_input(client: tuple[httpx.AsyncClient, ApiContext]) -> None:
    c, _ = client
    cases: list[tuple[dict[str, str], str]] = [
        ({"from": "soon"}, "'soon' is not an ISO date"),
        ({"from": "2026-12-02", "to": "2026-12-01T05:00"}, "must end after it starts"),
        ({**RANGE, "interval": "0.01"}, "at most 10000")]
    for params, text in cases:
        r = await c.get("/api/queues/stats", params=params, headers=SUP)
        assert r.status_code == 400 and text in r.json()["detail"], r.text
    assert (await c.get("/api/queues/stats", params={"interval": -5}, headers=SUP)).status_code == 422
    # The default range is today so far: an empty one here (the scenario is in 2026... or today, if it is).
    r = await c.get("/api/queues/stats", headers=SUP)
    assert r.status_code == 200 and r.json()["horizon"] <= r.json()["end"]

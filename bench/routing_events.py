"""Events persisted per second into SQLite through the server's own path (issue 10's target: >= 10,000/s).

    .venv/bin/python bench/routing_events.py [--events 200000] [--rounds 3] [--yield-every 64]

What a busy ACD does: a stream of queue_log rows (ENTERQUEUE, OFFER, AGENTSTATE, CONNECT,
COMPLETECALLER..., with realistic queue/agent/call ids and JSON data) queued with
``EventRepo.append_nowait`` (callcenter.storage.db.Database.write_nowait: batches of up to
``max_batch`` statements, one transaction each, on aiosqlite's thread) as fast as the event loop
allows, yielding to it every ``--yield-every`` events (as many concurrent coroutines would), until
``--events`` are queued; then ``flush()``. The figure is events / (first append .. flush done), the
median of ``--rounds``, each on a fresh database file with the real migrations (so the four indexes
on events, call / queue+at / agent+at / event+at, are maintained too). Every round checks the row
count in the file after close.

Printed alongside, to show where the time goes (same process, same run):

* ``prepare``: building the rows only (``utcnow()`` + ``json.dumps``), no database: the producer's share;
* ``executemany``: the same rows with ``sqlite3.executemany`` in transactions of 256 on a plain
  connection (no event loop, no thread hop): what SQLite itself costs, the ceiling of any writer;
* ``report``: reading those rows back and computing every queue and agent figure over them
  (callcenter/storage/metrics_repo.py + routing/metrics.py, hourly intervals), in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcenter.storage.db import MAX_BATCH, Database, utcnow  # noqa: E402
from callcenter.storage.metrics_repo import MetricsRepo  # noqa: E402
from callcenter.storage.repos import EventRepo  # noqa: E402

QUEUES = [f"q{i:03d}" for i in range(200)]
AGENTS = [f"agent{i:05d}" for i in range(10_000)]
# One answered call's rows, in order (queue_log style; docs/metrics.md says which ones the metrics read).
CALL: list[tuple[str, bool, dict[str, Any]]] = [
    ("ENTERQUEUE", False, {"priority": 0, "position": 3, "skills": {"en": 1}, "caller": "+15551234567",
                           "callback": False}),
    ("OFFER", True, {"reservation": "r", "ring_timeout_s": 15}),
    ("AGENTSTATE", True, {"state": "reserved", "previous": "available", "reason": ""}),
    ("CONNECT", True, {"holdtime": 12.5, "ring_s": 3.2, "callback": False}),
    ("AGENTSTATE", True, {"state": "on_call", "previous": "reserved", "reason": ""}),
    ("COMPLETECALLER", True, {"holdtime": 12.5, "calltime": 245.0}),
    ("AGENTSTATE", True, {"state": "wrap_up", "previous": "on_call", "reason": ""}),
    ("AGENTSTATE", True, {"state": "available", "previous": "wrap_up", "reason": ""}),
]


def event(i: int) -> tuple[str, str, str, str, dict[str, Any]]:
    """The i-th event of the stream: (event, call_id, queue, agent, data)."""
    call, step = divmod(i, len(CALL))
    name, with_agent, data = CALL[step]
    return (name, f"call{call:09d}", QUEUES[call % len(QUEUES)], AGENTS[(call * 7919) % len(AGENTS)] if with_agent
            else "", data)


async def through_database(path: Path, n: int, yield_every: int) -> tuple[float, Database]:
    db = await Database.open(path)
    events = EventRepo(db)
    t0 = time.perf_counter()
    for i in range(n):
        name, call_id, queue, agent, data = event(i)
        events.append_nowait(name, call_id=call_id, queue=queue, agent=agent, **data)
        if i % yield_every == yield_every - 1:
            await asyncio.sleep(0)
    await db.flush()
    elapsed = time.perf_counter() - t0
    await db.close()
    return elapsed, db


def prepare(n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        name, call_id, queue, agent, data = event(i)
        (utcnow(), call_id, queue, agent, name, json.dumps(data, sort_keys=True))
    return time.perf_counter() - t0


def executemany(path: Path, n: int) -> float:
    asyncio.run(_migrate(path))  # (the same schema and indexes)
    conn = sqlite3.connect(path / "callcenter.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    t0 = time.perf_counter()
    for lo in range(0, n, MAX_BATCH):
        rows = []
        for i in range(lo, min(n, lo + MAX_BATCH)):
            name, call_id, queue, agent, data = event(i)
            rows.append((utcnow(), call_id, queue, agent, name, json.dumps(data, sort_keys=True)))
        conn.execute("BEGIN")
        conn.executemany(EventRepo.SQL, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


async def _migrate(path: Path) -> None:
    db = await Database.open(path)
    await db.close()


def count(path: Path) -> int:
    conn = sqlite3.connect(path / "callcenter.db")
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--yield-every", type=int, default=64)
    args = ap.parse_args()
    n = args.events
    rates: dict[str, list[float]] = {"database": [], "prepare": [], "executemany": []}
    batches: list[float] = []
    reports: list[float] = []
    figures = ""
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
            elapsed, db = asyncio.run(through_database(Path(tmp), n, args.yield_every))
            stored = count(Path(tmp))
            if stored != n or db.stats.failed:
                print(f"round {r + 1}: stored {stored} of {n} events, {db.stats.failed} failed", file=sys.stderr)
                return 1
            rates["database"].append(n / elapsed)
            batches.append(db.stats.statements / max(1, db.stats.batches))
            t0 = time.perf_counter()
            now = time.time()
            report, _ = MetricsRepo.for_data_dir(Path(tmp)).report_sync(now - 3600, now + 60, now=now)
            reports.append(time.perf_counter() - t0)
            figures = (f"{sum(q.offered for q in report.queues.values()):,} offered in {len(report.queues)} queues, "
                       f"{len(report.agents):,} agents")
        rates["prepare"].append(n / prepare(n))
        with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
            rates["executemany"].append(n / executemany(Path(tmp), n))
            if count(Path(tmp)) != n:
                print("executemany: rows missing", file=sys.stderr)
                return 1
        print(f"round {r + 1}: database {rates['database'][-1]:,.0f}/s, prepare {rates['prepare'][-1]:,.0f}/s, "
              f"executemany {rates['executemany'][-1]:,.0f}/s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"events persisted per second, {n:,} events, median of {args.rounds} rounds:")
    print(f"  Database.write_nowait (EventRepo.append_nowait): {med['database']:>10,.0f} events/s "
          f"({statistics.median(batches):.0f} statements per batch)  target >= 10,000: "
          f"{'met' if med['database'] >= 10_000 else 'NOT met'}")
    print(f"  building the rows only (utcnow + json.dumps):    {med['prepare']:>10,.0f} events/s")
    print(f"  plain sqlite3 executemany, 256 per transaction:  {med['executemany']:>10,.0f} events/s "
          f"(the writer path reaches {med['database'] / med['executemany']:.0%} of it)")
    print(f"  report over them (read + compute, hourly):        {statistics.median(reports):>10.2f} s ({figures})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

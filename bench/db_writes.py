"""Database write cost per call: commit per write (the old repositories) against group commit.

    .venv/bin/python bench/db_writes.py [--rate 100] [--seconds 10] [--call-s 2] [--rounds 2] [--linger-ms 2]

Simulated calls arrive at ``--rate`` per second for ``--seconds`` and each lasts ``--call-s``, doing
the database writes of callcenter/calls.py plus the IVR trace the flow runtime adds: create the
row, CALLSTART, answered update, ANSWER, codec + recording path update, six IVR events spread over
the call, the end update, CALLEND (7 writes awaited as calls.py does, 6 more events). Modes, run in
alternation in one process so background load hits all alike, each on a fresh database:

* ``no-db``: the same simulated calls with every write replaced by ``await asyncio.sleep(0)``: the
  cost of the simulation itself (tasks, sleeps), subtracted to give the database's share;
* ``commit``: the baseline, every write executed and committed on its own (the repositories before
  group commit: ``await conn.execute(...)`` then ``await conn.commit()``);
* ``batched``: the repositories as they are (every write awaited, committed in batches);
* ``nowait``: as batched, but the events go through ``EventRepo.append_nowait`` (not awaited);
* ``all-nowait``: every write queued without waiting (``create_nowait``, ``update_nowait``,
  ``append_nowait``); the run flushes once at its end.

Printed per mode: CPU seconds per call (process CPU, every thread: ``time.process_time``), the
database's share (minus no-db), write latency median and p99 (awaited writes: from the call to its
return), batches and statements per batch; then the ratios against ``commit``. Every run checks
that each call's row and its 9 events are in the file after close, and counts failed writes.
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
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcenter.storage.db import LINGER_S, NOWAIT_LINGER_S, Database, utcnow  # noqa: E402
from callcenter.storage.repos import CallRepo, EventRepo  # noqa: E402

IVR_EVENTS = 6
MODES = ("no-db", "commit", "batched", "nowait", "all-nowait")


class CommitPerWrite:
    """The baseline: the repositories' SQL, each statement executed and committed on its own."""

    def __init__(self, db: Database) -> None:
        self.conn = db.conn

    async def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        await self.conn.execute(sql, params)
        await self.conn.commit()

    async def create(self, call_id: str, sip_call_id: str, caller: str, callee: str,
                     remote_address: str, flow: str) -> None:
        await self._write("INSERT INTO calls (id, sip_call_id, caller, callee, remote_address, flow, started_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (call_id, sip_call_id, caller, callee, remote_address, flow, utcnow()))

    async def update(self, call_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        await self._write(f"UPDATE calls SET {cols} WHERE id = ?", (*fields.values(), call_id))

    async def append(self, event: str, call_id: str = "", **data: Any) -> None:
        await self._write(EventRepo.SQL, (utcnow(), call_id, "", "", event, json.dumps(data, sort_keys=True)))


class NoDb:
    """The simulation alone: every write is one trip through the event loop."""

    async def create(self, *args: Any) -> None:
        await asyncio.sleep(0)

    async def update(self, call_id: str, **fields: Any) -> None:
        await asyncio.sleep(0)

    async def append(self, event: str, call_id: str = "", **data: Any) -> None:
        await asyncio.sleep(0)


@dataclass
class Run:
    mode: str
    calls: int = 0
    cpu_s: float = 0.0
    loop_cpu_s: float = 0.0  # the event loop's thread alone (the rest: aiosqlite's thread)
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    batches: int = 0
    statements: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def cpu_per_call_ms(self) -> float:
        return 1000 * self.cpu_s / self.calls

    @property
    def loop_per_call_ms(self) -> float:
        return 1000 * self.loop_cpu_s / self.calls


async def one_call(i: int, call_s: float, calls: Any, events: Any, nowait: Callable[..., None] | None,
                   res: Run, all_nowait: bool = False) -> None:
    cid = uuid.uuid4().hex
    if all_nowait:
        calls = _NowaitCalls(calls)

    async def timed(w: Awaitable[None]) -> None:
        t = time.perf_counter()
        try:
            await w
        except Exception as exc:  # as calls.py does: log and go on (here: count it)
            res.failures.append(repr(exc))
        if not all_nowait:
            res.latencies.append(time.perf_counter() - t)

    async def event(name: str, **data: Any) -> None:
        if nowait is not None:
            nowait(name, cid, **data)
        else:
            await timed(events.append(name, cid, **data))

    await timed(calls.create(cid, f"sip-{i}", f"<sip:caller{i}@127.0.0.1>", "<sip:ivr@127.0.0.1>",
                             "127.0.0.1:5062", "demo"))
    await event("CALLSTART", caller=f"<sip:caller{i}@127.0.0.1>", callee="<sip:ivr@127.0.0.1>",
                sip_call_id=f"sip-{i}")
    await asyncio.sleep(0.02)
    await timed(calls.update(cid, answered_at=utcnow()))
    await event("ANSWER")
    await timed(calls.update(cid, codec="PCMU", recording_path=f"recordings/2026/01/01/{cid}-caller.wav"))
    step = (call_s - 0.1) / IVR_EVENTS
    for n in range(IVR_EVENTS):
        await asyncio.sleep(step)
        await event("IVR_NODE", node=f"node{n}", digits="1" if n % 2 else "")
    await timed(calls.update(cid, ended_at=utcnow(), disposition="completed", hangup_cause="200 OK",
                             recording_sha256="0" * 64, recording_bytes=32044, recording_seconds=2.0))
    await event("CALLEND", disposition="completed", cause="200 OK")


class _NowaitCalls:
    """CallRepo's nowait methods behind the awaitable names (each returns a finished awaitable)."""

    def __init__(self, calls: CallRepo) -> None:
        self.calls = calls

    async def create(self, *args: Any) -> None:
        self.calls.create_nowait(*args)

    async def update(self, call_id: str, **fields: Any) -> None:
        self.calls.update_nowait(call_id, **fields)


async def run(mode: str, rate: float, seconds: float, call_s: float, linger_s: float, nowait_s: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="db-writes-") as tmp:
        db = await Database.open(Path(tmp), linger_s=linger_s, nowait_linger_s=nowait_s)
        calls: Any
        events: Any
        nowait = None
        if mode == "no-db":
            calls = events = NoDb()
        elif mode == "commit":
            calls = events = CommitPerWrite(db)
        else:
            calls, events = CallRepo(db), EventRepo(db)
            if mode in ("nowait", "all-nowait"):
                nowait = events.append_nowait
        res = Run(mode)
        n = int(rate * seconds)
        tasks: set[asyncio.Task[None]] = set()
        await asyncio.sleep(0.2)
        t0, c0, l0 = time.perf_counter(), time.process_time(), time.thread_time()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one_call(i, call_s, calls, events, nowait, res, mode == "all-nowait"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(set(tasks))
        await db.flush()
        res.cpu_s, res.wall_s, res.calls = time.process_time() - c0, time.perf_counter() - t0, n
        res.loop_cpu_s = time.thread_time() - l0
        res.batches, res.statements = db.stats.batches, db.stats.statements
        await db.close()
        if mode != "no-db":
            check(Path(tmp) / "callcenter.db", n)
        return res


def check(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM calls WHERE disposition = 'completed'").fetchone()[0]
        evs = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    want = n * (3 + IVR_EVENTS)
    if rows != n or evs != want:
        raise SystemExit(f"lost writes: {rows}/{n} call rows, {evs}/{want} events")


def pctl(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100.0, help="new calls per second")
    p.add_argument("--seconds", type=float, default=10.0, help="how long calls keep arriving")
    p.add_argument("--call-s", type=float, default=2.0, help="length of each call")
    p.add_argument("--rounds", type=int, default=2, help="runs of each mode (alternating); medians are printed")
    p.add_argument("--linger-ms", type=float, default=1000 * LINGER_S, help="linger of a batch with awaited writes")
    p.add_argument("--nowait-linger-ms", type=float, default=1000 * NOWAIT_LINGER_S,
                   help="linger of a batch of nowait writes only")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    args = p.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if bad := [m for m in modes if m not in MODES]:
        p.error(f"unknown mode(s) {bad}")
    if args.rate <= 0 or args.seconds <= 0 or args.call_s < 0.2 or args.rounds < 1:
        p.error("--rate and --seconds must be > 0, --call-s >= 0.2, --rounds >= 1")
    linger, nowait_linger = args.linger_ms / 1000, args.nowait_linger_ms / 1000
    print(f"{args.rate:g} calls/s for {args.seconds:g} s, {args.call_s:g} s calls, linger {args.linger_ms:g} ms "
          f"(nowait only: {args.nowait_linger_ms:g} ms), "
          f"{args.rounds} round(s); SQLite {sqlite3.sqlite_version}", flush=True)
    runs: dict[str, list[Run]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for m in modes:
            res = asyncio.run(run(m, args.rate, args.seconds, args.call_s, linger, nowait_linger))
            runs[m].append(res)
            print(f"  round {r + 1} {m:10} {res.cpu_per_call_ms:6.3f} ms CPU/call (event loop thread "
                  f"{res.loop_per_call_ms:.3f})  wall {res.wall_s:5.1f} s", flush=True)
    report(runs)
    return 1 if any(r.failures for rs in runs.values() for r in rs) else 0


def report(runs: dict[str, list[Run]]) -> None:
    med = {m: statistics.median(x.cpu_per_call_ms for x in rs) for m, rs in runs.items()}
    floor = med.get("no-db")
    print("\nmedians; DB share = CPU/call - no-db; latency of the awaited writes, from the call to its return")
    cols = ("CPU/call", 10), ("DB share", 10), ("lat p50", 9), ("lat p99", 9), ("stmts/batch", 12), ("failed", 7)
    print(f"{'mode':10} " + " ".join(f"{name:>{width}}" for name, width in cols))
    for m, rs in runs.items():
        lat = [x for r in rs for x in r.latencies] if m != "no-db" else []
        batches = sum(r.batches for r in rs)
        per_batch = f"{sum(r.statements for r in rs) / batches:.1f}" if batches else "-"
        share = f"{med[m] - floor:.3f}ms" if floor is not None and m != "no-db" else "-"
        lat50 = f"{1000 * statistics.median(lat):.2f}ms" if lat else "-"
        lat99 = f"{1000 * pctl(lat, 0.99):.2f}ms" if lat else "-"
        failed = sum(len(r.failures) for r in rs)
        print(f"{m:10} {med[m]:8.3f}ms {share:>10} {lat50:>9} {lat99:>9} {per_batch:>12} {failed:>7}")
        for r in rs:
            for f in r.failures[:3]:
                print(f"    failed write: {f}")
    if "commit" not in med:
        return
    base = med["commit"]
    print()
    for m in ("batched", "nowait", "all-nowait"):
        if m in med:
            line = f"{m}/commit CPU per call: {med[m] / base:.2f}x"
            if floor is not None and base > floor:
                line += f"  (database share: {(med[m] - floor) / (base - floor):.2f}x)"
            print(line)

if __name__ == "__main__":
    raise SystemExit(main())

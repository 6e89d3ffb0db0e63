"""Reads the event rows a metrics range needs (routing/metrics.py computes the figures from them).

For [start, end) that is: every row of the events routing.metrics reads (``metrics.EVENTS``) with
``at`` in the range, through the ``events (event, at)`` index (``events (queue, at)`` with a queue
filter); per agent, the last AGENTSTATE before ``start`` (the state the agent was in at ``start``)
and the first at or after ``end`` (it ends a wrap-up that runs past ``end``), each one backward or
forward step in ``events (agent, at)``; the agents themselves by a skip-scan of that index (one
probe per distinct agent, not a scan of the table); the queues' thresholds (service level T and
short-abandon time) from the ``queues`` table.

Reads use their own read-only sqlite3 connection on a worker thread: a report over a month never
holds up the server's writer connection, and WAL lets it read while the server writes. Through
:meth:`MetricsRepo.for_database` the server's queued writes are flushed first, so a report sees
every event logged before it was asked for.

``at`` is compared as text in SQL (ISO 8601 UTC sorts by time when the offsets are all +00:00, as
the events table writes them) over a window widened by a second at each end, then filtered exactly
on the parsed times; rows whose ``at`` does not parse are counted in ``MetricsRows.skipped``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routing import metrics
from routing.metrics import EventRow

from ..exceptions import ConfigError
from .db import DB_NAME

if TYPE_CHECKING:
    from .db import Database

COLUMNS = "id, at, call_id, queue, agent, event, data"
_DISTINCT_AGENTS = """
WITH RECURSIVE a(name) AS (
    SELECT MIN(agent) FROM events WHERE agent > ''
    UNION ALL
    SELECT (SELECT MIN(agent) FROM events WHERE agent > a.name) FROM a WHERE a.name IS NOT NULL
)
SELECT name FROM a WHERE name IS NOT NULL"""
_BEFORE = (f"SELECT {COLUMNS} FROM events WHERE agent = ? AND at < ? AND +event = 'AGENTSTATE' "
           "ORDER BY at DESC, id DESC LIMIT 1")
_AFTER = (f"SELECT {COLUMNS} FROM events WHERE agent = ? AND at >= ? AND +event = 'AGENTSTATE' "
          "ORDER BY at, id LIMIT 1")


@dataclass(slots=True)
class MetricsRows:
    """What routing.metrics.compute needs for one range."""

    rows: list[EventRow] = field(default_factory=list)
    service_level_s: dict[str, float] = field(default_factory=dict)
    short_abandon_s: dict[str, float] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)   # configured queues (listed even with no events)
    skipped: int = 0                                   # rows whose ``at`` is not an ISO 8601 time


def sql_time(t: float, *, up: bool) -> str:
    """A text bound for ``at`` comparisons: whole seconds, a second beyond ``t`` (see the module doc)."""
    s = math.ceil(t) + 1 if up else math.floor(t) - 1
    return datetime.fromtimestamp(s, UTC).isoformat()


def _row(r: tuple[Any, ...]) -> EventRow | None:
    rid, at, call_id, queue, agent, event, data = r
    try:
        t = metrics.parse_at(at)
    except (TypeError, ValueError):
        return None
    try:
        d = json.loads(data) if data else {}
    except ValueError:
        d = {}
    return EventRow(at=t, event=event, call_id=call_id, queue=queue, agent=agent,
                    data=d if isinstance(d, dict) else {}, id=rid)


def read_rows(conn: sqlite3.Connection, start: float, end: float, queue: str | None = None) -> MetricsRows:
    """The rows for [start, end) from an open connection (plain sqlite3; any thread that owns it)."""
    out = MetricsRows()
    lo, hi = sql_time(start, up=False), sql_time(end, up=True)
    raw: list[tuple[Any, ...]] = []
    names = sorted(metrics.QUEUE_EVENTS)
    marks = ", ".join("?" * len(names))
    if queue is None:
        raw += conn.execute(f"SELECT {COLUMNS} FROM events WHERE event IN ({marks}, 'AGENTSTATE') "
                            "AND at >= ? AND at < ?", (*names, lo, hi)).fetchall()
    else:
        raw += conn.execute(f"SELECT {COLUMNS} FROM events WHERE queue = ? AND at >= ? AND at < ? "
                            f"AND event IN ({marks})", (queue, lo, hi, *names)).fetchall()
        raw += conn.execute(f"SELECT {COLUMNS} FROM events WHERE event = 'AGENTSTATE' AND at >= ? AND at < ?",
                            (lo, hi)).fetchall()
    agents = [r[0] for r in conn.execute(_DISTINCT_AGENTS)]
    for agent in agents:
        raw += conn.execute(_BEFORE, (agent, lo)).fetchall()
        raw += conn.execute(_AFTER, (agent, hi)).fetchall()
    seen: set[int] = set()
    for r in raw:
        if r[0] in seen:
            continue
        seen.add(r[0])
        row = _row(r)
        if row is None:
            out.skipped += 1
        elif row.event != "AGENTSTATE" and not start <= row.at < end:
            continue
        else:
            out.rows.append(row)
    _thresholds(conn, out)
    return out


def _thresholds(conn: sqlite3.Connection, out: MetricsRows) -> None:
    try:
        rows = conn.execute("SELECT name, config FROM queues ORDER BY name").fetchall()
    except sqlite3.OperationalError:   # a database from before the ACD (migration 004): defaults
        return
    for name, config in rows:
        out.queues.append(name)
        try:
            cfg = json.loads(config) if config else {}
        except ValueError:
            cfg = {}
        if not isinstance(cfg, dict):
            continue
        for key, dest in (("service_level_s", out.service_level_s), ("short_abandon_s", out.short_abandon_s)):
            v = cfg.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
                dest[name] = float(v)


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing database file; ConfigError (one line) if there is none."""
    if not path.is_file():
        raise ConfigError(f"no database at {path} (has the server run with this data directory?)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("SELECT 1 FROM events LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the events of {path}: {exc}") from None
    return conn


class MetricsRepo:
    """Event rows and reports for a range, from a database file (``data_dir/callcenter.db``)."""

    def __init__(self, path: Path, db: Database | None = None) -> None:
        self.path = path
        self.db = db

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> MetricsRepo:
        return cls(data_dir / DB_NAME)

    @classmethod
    def for_database(cls, db: Database) -> MetricsRepo:
        """Reads the server's database; its queued writes are flushed before each read."""
        return cls(db.path, db)

    def rows_sync(self, start: float, end: float, queue: str | None = None) -> MetricsRows:
        conn = open_readonly(self.path)
        try:
            return read_rows(conn, start, end, queue)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the events of {self.path}: {exc}") from None
        finally:
            conn.close()

    async def rows(self, start: float, end: float, queue: str | None = None) -> MetricsRows:
        if self.db is not None:
            await self.db.flush()
        return await asyncio.to_thread(self.rows_sync, start, end, queue)

    def report_sync(self, start: float, end: float, *, queue: str | None = None, bucket_s: float | None = 3600.0,
                    now: float | None = None) -> tuple[metrics.Report, MetricsRows]:
        """(the figures, the rows they came from); ValueError for a bad range or interval, before reading."""
        check_range(start, end, bucket_s)
        got = self.rows_sync(start, end, queue)
        return compute(got, start, end, queue=queue, bucket_s=bucket_s, now=now), got

    async def report(self, start: float, end: float, *, queue: str | None = None, bucket_s: float | None = 3600.0,
                     now: float | None = None) -> tuple[metrics.Report, MetricsRows]:
        """As :meth:`report_sync`, the reading and the computing on worker threads."""
        check_range(start, end, bucket_s)
        got = await self.rows(start, end, queue)
        report = await asyncio.to_thread(compute, got, start, end, queue=queue, bucket_s=bucket_s, now=now)
        return report, got


def check_range(start: float, end: float, bucket_s: float | None) -> None:
    """ValueError (one line) unless [start, end) is a range and ``bucket_s`` cuts it into few enough intervals."""
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"the range's ends must be times (got {start!r}, {end!r})")
    if end <= start:
        raise ValueError(f"the range must end after it starts (from {metrics.iso(start)} to {metrics.iso(end)})")
    if bucket_s is not None:
        metrics.bucket_edges(start, end, bucket_s)


def compute(got: MetricsRows, start: float, end: float, *, queue: str | None = None, bucket_s: float | None = 3600.0,
            now: float | None = None) -> metrics.Report:
    """routing.metrics.compute over rows read by :func:`read_rows`, with the queues' thresholds."""
    queues: Iterable[str] = got.queues
    return metrics.compute(got.rows, start, end, service_level_s=got.service_level_s,
                           short_abandon_s=got.short_abandon_s, queues=queues, only_queue=queue,
                           bucket_s=bucket_s, now=now)

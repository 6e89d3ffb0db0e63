"""The database: one aiosqlite writer connection in WAL mode, migrated on open, with group commit.

Writes go through :meth:`Database.write` (awaited) or :meth:`Database.write_nowait` (fire and
forget). They are queued in order and executed by one writer task in batches: each batch is one
hop to aiosqlite's thread and one transaction, so a busy server pays one commit (one WAL append)
and one thread round trip per batch instead of per statement. The writer starts when a write is
queued and ends when the queue is empty, so an idle database runs no task.

A batch starts ``linger_s`` after the first awaited write in it was queued (``nowait_linger_s``
if it holds only nowait writes), at once when ``max_batch`` writes wait or someone flushes. The
linger trades latency for CPU: fewer, larger commits (see bench/db_writes.py for the figures).

* "Written" still means committed: an awaited write returns once its batch has committed.
* Batches run in submission order; statements run in order within a batch.
* Error isolation: if a batch fails (a constraint, a full disk), it is rolled back and its
  statements are retried one by one, each in its own transaction, so one bad write fails only
  its own caller (awaited: the ``sqlite3.Error`` is raised to it; nowait: it is logged).
* ``flush()`` waits until every write queued before it has committed or failed; the repositories
  flush before each read, so a reader sees its own earlier writes. ``close()`` flushes, waits
  for the writer to end, then closes the connection.
* A write once queued is executed even if its awaiting caller is cancelled.

``db.conn`` stays usable for code that does ``await db.conn.execute(...)`` then
``await db.conn.commit()``. A batch never runs between two statements of its own, but it may run
between someone else's ``execute`` and ``commit``: it then commits that open transaction too (as
any commit on a shared connection always did), and on a failed statement rolls back only its own
work (a savepoint); only a failed commit (a full disk) rolls back everything open, theirs included.
Prefer ``db.write()``: it orders with the other queued writes and reports its own error.

aiosqlite has no public way to run a function on its connection thread; the batch uses its
private ``Connection._execute`` (present since aiosqlite 0.1, checked on open) so that a batch
costs one thread hop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ..exceptions import ConfigError

DB_NAME = "callcenter.db"
LINGER_S = 0.005         # how long an awaited write may wait for more writes to share its commit
NOWAIT_LINGER_S = 0.025  # the same for a batch of nowait writes only (nobody waits on them)
MAX_BATCH = 256          # statements per batch; a full batch runs at once

log = logging.getLogger("callcenter.storage")

Params = Sequence[Any]
# One queued write: sql, parameters, the awaiting caller's future (None: nowait), what (for the log), call id.
_Write = tuple[str, Params, "asyncio.Future[int | None] | None", str, str]


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_utc(epoch: float) -> str:
    """Epoch seconds as the events table writes times (like ``utcnow``)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("callcenter.storage").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


@dataclass(slots=True)
class WriterStats:
    """Counters of the group-commit writer (for tests and benchmarks)."""

    batches: int = 0        # transactions committed or attempted as a whole
    statements: int = 0     # statements executed (successfully or not)
    split_batches: int = 0  # batches that failed and were retried one statement at a time
    failed: int = 0         # statements that failed on their own


# -- on aiosqlite's thread ----------------------------------------------------------------------------
def _abandon(c: sqlite3.Connection, savepoint: str) -> None:
    """Undo our savepoint after a failure; a failed commit leaves only a full rollback."""
    if not c.in_transaction:
        return
    try:
        c.execute(f"ROLLBACK TO {savepoint}")
        c.execute(f"RELEASE {savepoint}")
    except sqlite3.Error:
        c.rollback()


def _run_one(c: sqlite3.Connection, sql: str, params: Params) -> int | None | Exception:
    try:
        c.execute("SAVEPOINT cc_one")
        rowid = c.execute(sql, params).lastrowid
        c.execute("RELEASE cc_one")
        if c.in_transaction:
            c.commit()
        return rowid
    except Exception as exc:  # a bad parameter (TypeError...) must fail only its own write too
        _abandon(c, "cc_one")
        return exc


Result = int | None | Exception  # an INSERT's row id, or the statement's own error


def _run_batch(conn: aiosqlite.Connection, stmts: list[tuple[str, Params]]) -> tuple[bool, list[Result]]:
    """On aiosqlite's thread: run ``stmts`` in one transaction; if that fails, one by one.

    Returns (whether the batch was split, one result per statement).
    """
    c = conn._conn
    try:
        c.execute("SAVEPOINT cc_batch")
        out: list[Result] = [c.execute(sql, params).lastrowid for sql, params in stmts]
        c.execute("RELEASE cc_batch")
        if c.in_transaction:  # someone's execute-then-commit was open around us: commit it with ours
            c.commit()
        return False, out
    except Exception:
        _abandon(c, "cc_batch")
    return True, [_run_one(c, sql, params) for sql, params in stmts]


# -- on the event loop ---------------------------------------------------------------------------------
def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: Path, *, linger_s: float = LINGER_S,
                 nowait_linger_s: float = NOWAIT_LINGER_S, max_batch: int = MAX_BATCH) -> None:
        if linger_s < 0 or nowait_linger_s < 0 or max_batch < 1:
            raise ValueError("linger_s and nowait_linger_s must be >= 0 and max_batch >= 1 "
                             f"(got {linger_s}, {nowait_linger_s}, {max_batch})")
        if not callable(getattr(conn, "_execute", None)):
            raise ConfigError(f"aiosqlite {aiosqlite.__version__} has no Connection._execute (the batched writer "
                              "needs it): install aiosqlite 0.20 to 0.22")
        self.conn = conn
        self.path = path
        self.linger_s = linger_s
        self.nowait_linger_s = max(linger_s, nowait_linger_s)
        self.max_batch = max_batch
        self.stats = WriterStats()
        self._queue: deque[_Write] = deque()
        self._submitted = 0       # writes queued so far
        self._finished = 0        # writes committed or failed so far (they finish in order)
        self._awaited = 0         # awaited writes in the queue
        self._awaited_since = 0.0  # loop time the oldest of them was queued (when _awaited > 0)
        self._flushers: list[tuple[int, asyncio.Future[None]]] = []
        self._linger: asyncio.Future[None] | None = None  # set while the writer lingers
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, data_dir: Path, *, linger_s: float = LINGER_S, nowait_linger_s: float = NOWAIT_LINGER_S,
                   max_batch: int = MAX_BATCH) -> Database:
        """Open (creating and migrating) ``data_dir/callcenter.db``; ConfigError if it cannot be used."""
        path = data_dir / DB_NAME
        try:
            conn = await aiosqlite.connect(path)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open database {path}: {exc}") from None
        try:
            db = cls(conn, path, linger_s=linger_s, nowait_linger_s=nowait_linger_s, max_batch=max_batch)
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await db._migrate()
        except (ConfigError, ValueError):
            await conn.close()
            raise
        except sqlite3.Error as exc:
            await conn.close()
            raise ConfigError(f"database {path} is unusable: {exc}") from None
        return db

    async def _migrate(self) -> None:
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)"
        )
        async with self.conn.execute("SELECT version FROM schema_migrations") as cur:
            done = {row[0] async for row in cur}
        for version, name, sql in _migrations():
            if version in done:
                continue
            await self.conn.executescript(f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES "
                                          f"({version}, '{name}', '{utcnow()}');\nCOMMIT;")

    # -- writes ----------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Writes queued or in a batch that has not committed yet."""
        return self._submitted - self._finished

    async def write(self, sql: str, params: Params = ()) -> int | None:
        """Queue one statement and wait until its batch commits; returns the row id of an INSERT.

        Raises the statement's own error (``sqlite3.Error``; other writes in its batch are unaffected),
        or ``sqlite3.ProgrammingError`` once the database is closing.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int | None] = loop.create_future()
        self._enqueue((sql, params, fut, "", ""))
        if self._awaited == 0:
            self._awaited_since = loop.time()
            _wake(self._linger)  # the writer may be lingering for nowait writes only: wait less
        self._awaited += 1
        return await fut

    def write_nowait(self, sql: str, params: Params = (), *, what: str = "write", call_id: str = "") -> None:
        """Queue one statement without waiting for it; a failure is logged (``what``, ``call_id``) and dropped.

        ``await flush()`` or ``close()`` waits for it. Raises ``sqlite3.ProgrammingError`` once closing.
        """
        self._enqueue((sql, params, None, what, call_id))

    def _enqueue(self, item: _Write) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError(f"database {self.path} is closed")
        self._queue.append(item)
        self._submitted += 1
        if self._task is None:
            self._task = asyncio.create_task(self._writer(), name="db-writer")
        elif len(self._queue) >= self.max_batch:
            _wake(self._linger)

    async def flush(self) -> None:
        """Wait until every write queued before this call has committed (or failed)."""
        if self._finished >= self._submitted:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushers.append((self._submitted, fut))
        _wake(self._linger)
        await fut

    async def close(self) -> None:
        """Refuse new writes, flush the queued ones, stop the writer, close the connection."""
        self._closed = True
        await self.flush()
        if self._task is not None:
            await asyncio.wait([self._task])
        await self.conn.close()

    # -- the writer task -------------------------------------------------------------------------------
    async def _writer(self) -> None:
        batch: list[_Write] = []
        try:
            while self._queue:
                await self._linger_for_more()
                n = min(len(self._queue), self.max_batch)
                batch = [self._queue.popleft() for _ in range(n)]
                awaited = sum(1 for w in batch if w[2] is not None)
                self._awaited -= awaited  # any left (a full batch) are older still: the next batch runs at once
                split, results = await self.conn._execute(_run_batch, self.conn, [(w[0], w[1]) for w in batch])
                self._resolve(batch, split, results)
                batch = []
        except BaseException as exc:
            # The connection is gone (closed under us) or the writer was cancelled: nothing queued
            # can be written any more; fail every waiting caller rather than leave it hanging.
            lost = [*batch, *self._queue]
            self._queue.clear()
            self._awaited = 0
            self._fail(lost, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._task = None

    async def _linger_for_more(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while len(self._queue) < self.max_batch and not self._flushers:
            deadline = started + self.nowait_linger_s
            if self._awaited:  # (its oldest may have waited through the previous batch already)
                deadline = min(deadline, self._awaited_since + self.linger_s)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._linger = loop.create_future()
            timer = loop.call_later(remaining, _wake, self._linger)
            try:
                await self._linger
            finally:
                timer.cancel()
                self._linger = None

    def _resolve(self, batch: list[_Write], split: bool, results: list[Result]) -> None:
        self.stats.batches += 1
        self.stats.statements += len(batch)
        self.stats.split_batches += split
        for (_, _, fut, what, call_id), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                self.stats.failed += 1
                if fut is None:
                    log.error("could not store %s", what, extra={"call_id": call_id, "error": repr(result)})
                elif not fut.done():
                    fut.set_exception(result)
            elif fut is not None and not fut.done():
                fut.set_result(result)
        self._finished += len(batch)
        self._release_flushers()

    def _fail(self, lost: list[_Write], exc: BaseException) -> None:
        if lost:
            log.error("database writer stopped: %d writes lost", len(lost), extra={"error": repr(exc)})
        for _, _, fut, _, _ in lost:
            if fut is not None and not fut.done():
                if isinstance(exc, Exception):
                    fut.set_exception(sqlite3.OperationalError(f"write not stored: {exc!r}"))
                else:
                    fut.cancel()
        self._finished += len(lost)
        self._release_flushers()

    def _release_flushers(self) -> None:
        if not self._flushers:
            return
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for target, fut in self._flushers:
            if target <= self._finished:
                _wake(fut)
            else:
                keep.append((target, fut))
        self._flushers = keep


T = TypeVar("T")


def run_with_database(data_dir: Path, fn: Callable[[Database], Awaitable[T]]) -> T:
    """From synchronous code (the CLI): open the data directory's database, run ``fn`` on it, close it."""
    async def go() -> T:
        db = await Database.open(data_dir)
        try:
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(go())


"""The group-commit writer (callcenter/storage/db.py) on real SQLite files: order, durability,
error isolation within a batch, read-your-writes, flush on close, many writers, a full database."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.storage.db import DB_NAME, Database
from callcenter.storage.repos import CallRepo, EventRepo, UserRepo


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    yield database
    await database.close()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read the file with a connection of its own (what another process, or the next run, sees)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _writers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "db-writer" and not t.done()]


async def _page_count(db: Database) -> int:
    async with db.conn.execute("PRAGMA page_count") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_writes_are_batched_and_the_writer_ends_when_idle(db: Database) -> None:
    calls = CallRepo(db)
    await asyncio.gather(*(calls.create(f"c{i}", f"s{i}", "a", "b", "", "demo") for i in range(50)))
    assert db.stats.statements == 50 and db.stats.batches == 1  # one transaction for all fifty
    assert db.pending == 0 and _writers() == []  # an idle database runs no task


async def test_order_of_writes_is_kept(db: Database) -> None:
    calls, events = CallRepo(db), EventRepo(db)
    calls.create_nowait("c1", "s1", "a", "b", "", "demo")  # queued before its updates, in one batch
    for i in range(30):
        events.append_nowait("STEP", "c1", n=i)
        calls.update_nowait("c1", codec=f"codec{i}")
    await events.append("CALLEND", "c1")
    assert [e["data"].get("n") for e in await events.for_call("c1")] == [*range(30), None]
    assert (await calls.get("c1"))["codec"] == "codec29"  # type: ignore[index]
    assert db.stats.batches == 1


async def test_close_flushes_and_every_row_is_in_the_file(tmp_path: Path) -> None:
    db = await Database.open(tmp_path, nowait_linger_s=30.0)  # only close() can make these land in time
    calls, events = CallRepo(db), EventRepo(db)
    await calls.create("c0", "s0", "a", "b", "", "demo")
    for i in range(1, 100):
        calls.create_nowait(f"c{i}", f"s{i}", "a", "b", "", "demo")
    for i in range(100):
        events.append_nowait("CALLSTART", f"c{i}")
    calls.update_nowait("c7", disposition="completed")
    started = time.monotonic()
    await db.close()
    assert time.monotonic() - started < 5
    assert _writers() == []
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await calls.update("c1", codec="x")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        events.append_nowait("LATE", "c1")
    path = tmp_path / DB_NAME
    assert _rows(path, "SELECT COUNT(*) FROM calls") == [(100,)]
    assert _rows(path, "SELECT COUNT(*) FROM events WHERE event = 'CALLSTART'") == [(100,)]
    assert _rows(path, "SELECT disposition FROM calls WHERE id = 'c7'") == [("completed",)]


async def test_an_awaited_write_is_committed_when_it_returns(db: Database) -> None:
    await CallRepo(db).create("c1", "s1", "a", "b", "", "demo")
    # another connection (the CLI, say) sees it at once: committed, not only queued
    assert _rows(db.path, "SELECT id FROM calls") == [("c1",)]


async def test_one_bad_write_fails_alone(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    calls, events, users = CallRepo(db), EventRepo(db), UserRepo(db)
    await calls.create("dup", "s0", "a", "b", "", "demo")
    await users.add("ann", "qa", "tok")
    before = db.stats.batches
    calls.update_nowait("ghost-ok", codec="PCMU")  # matches no row: not an error
    events.append_nowait("BAD", "c9", at=object())  # type: ignore[arg-type]  # cannot be bound: logged
    results = await asyncio.gather(
        calls.create("new1", "s1", "a", "b", "", "demo"),
        calls.create("dup", "s2", "a", "b", "", "demo"),      # primary key taken
        users.add("ann", "qa", "tok2"),                       # name taken
        events.append("ANSWER", "new1"),
        calls.update("dup", codec="PCMA"),
        return_exceptions=True,
    )
    assert db.stats.batches - before == 1 and db.stats.split_batches == 1  # one batch, split after it failed
    assert results[0] is None and results[3] is None and results[4] is None
    assert isinstance(results[1], sqlite3.IntegrityError) and "calls.id" in str(results[1])
    assert isinstance(results[2], sqlite3.IntegrityError) and "users.name" in str(results[2])
    assert db.stats.failed == 3
    assert [e["event"] for e in await events.for_call("new1")] == ["ANSWER"]
    assert (await calls.get("dup"))["codec"] == "PCMA"  # type: ignore[index]
    assert (await calls.get("dup"))["sip_call_id"] == "s0"  # type: ignore[index]
    assert await events.for_call("c9") == []
    bad = [r for r in caplog.records if r.levelno == logging.ERROR and "BAD" in r.getMessage()]
    assert bad and bad[0].call_id == "c9"  # type: ignore[attr-defined]


async def test_reads_see_earlier_writes(db: Database) -> None:
    db.nowait_linger_s = 30.0  # nowait writes would sit in the queue: the read must flush them
    calls, events, users = CallRepo(db), EventRepo(db), UserRepo(db)
    calls.create_nowait("c1", "s1", "a", "b", "", "demo")
    events.append_nowait("CALLSTART", "c1")
    calls.update_nowait("c1", answered_at="2026-01-01T00:00:00.000+00:00")
    started = time.monotonic()
    assert (await calls.get("c1"))["answered_at"] == "2026-01-01T00:00:00.000+00:00"  # type: ignore[index]
    assert [e["event"] for e in await events.for_call("c1")] == ["CALLSTART"]
    calls.update_nowait("c1", ended_at="2026-01-01T00:00:05.000+00:00")
    assert await calls.open_calls() == []
    assert [c["id"] for c in await calls.latest(5)] == ["c1"]
    user = await users.add("bo", "agent", "t")
    assert user.id > 0 and await users.by_token("t") == user and await users.all() == [user]
    assert time.monotonic() - started < 5


async def test_an_awaited_write_does_not_wait_out_the_nowait_linger(tmp_path: Path) -> None:
    db = await Database.open(tmp_path, linger_s=0.005, nowait_linger_s=30.0)
    try:
        events = EventRepo(db)
        events.append_nowait("QUIET", "c1")  # the writer now lingers up to 30 s for more
        await asyncio.sleep(0.05)
        await asyncio.wait_for(events.append("LOUD", "c1"), 2.0)  # it cuts the wait to linger_s
        assert db.stats.batches == 1 and db.stats.statements == 2
    finally:
        await db.close()


async def test_full_batches_run_at_once(tmp_path: Path) -> None:
    db = await Database.open(tmp_path, linger_s=30.0, max_batch=10)
    try:
        calls = CallRepo(db)
        await asyncio.wait_for(
            asyncio.gather(*(calls.create(f"c{i}", "s", "a", "b", "", "demo") for i in range(30))), 2.0)
        assert db.stats.batches == 3 and db.stats.statements == 30
    finally:
        await db.close()


async def test_many_concurrent_calls(db: Database) -> None:
    calls, events = CallRepo(db), EventRepo(db)

    async def call(i: int) -> None:
        cid = f"c{i}"
        await calls.create(cid, f"s{i}", "a", "b", "", "demo")
        await events.append("CALLSTART", cid)
        await asyncio.sleep(0.001 * (i % 7))
        await calls.update(cid, answered_at="2026-01-01T00:00:00.000+00:00")
        for n in range(4):
            events.append_nowait("IVR", cid, n=n)
            await asyncio.sleep(0)
        await calls.update(cid, ended_at="2026-01-01T00:00:02.000+00:00", disposition="completed")
        await events.append("CALLEND", cid)

    await asyncio.gather(*(call(i) for i in range(200)))
    await db.flush()
    assert _rows(db.path, "SELECT COUNT(*) FROM calls WHERE disposition = 'completed'") == [(200,)]
    for i in (0, 77, 199):
        got = [(e["event"], e["data"].get("n")) for e in await EventRepo(db).for_call(f"c{i}")]
        assert got == [("CALLSTART", None), *(("IVR", n) for n in range(4)), ("CALLEND", None)]
    assert db.stats.statements == 200 * 9 and db.stats.failed == 0
    assert db.stats.statements / db.stats.batches > 5  # group commit, not a commit per write


async def test_a_full_database_fails_its_writes_and_the_writer_goes_on(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    calls, events = CallRepo(db), EventRepo(db)
    await calls.create("c1", "s1", "a", "b", "", "demo")
    pages = await _page_count(db)
    await db.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite now reports the disk full
    big = "x" * 100_000
    events.append_nowait("BIG", "c1", blob=big)
    results = await asyncio.gather(
        events.append("BIGGER", "c1", blob=big),
        calls.update("c1", codec="PCMU"),  # fits in its page: stored
        return_exceptions=True,
    )
    assert isinstance(results[0], sqlite3.OperationalError) and "full" in str(results[0])
    assert results[1] is None
    assert any("BIG" in r.getMessage() and "full" in getattr(r, "error", "") for r in caplog.records)
    assert (await calls.get("c1"))["codec"] == "PCMU"  # type: ignore[index]
    await db.conn.execute(f"PRAGMA max_page_count = {pages + 1000}")  # space again
    await events.append("BIG", "c1", blob=big)
    assert [e["event"] for e in await events.for_call("c1")] == ["BIG"]


async def test_a_batch_keeps_someone_elses_open_transaction(db: Database) -> None:
    """A repo that does ``await db.conn.execute(...)`` then ``await db.conn.commit()`` loses nothing."""
    calls = CallRepo(db)
    await calls.create("dup", "s0", "a", "b", "", "demo")
    await db.conn.execute("INSERT INTO users (name, role, token_sha256, created_at) VALUES ('x', 'qa', 'h', 'now')")
    results = await asyncio.gather(calls.create("dup", "s1", "a", "b", "", "demo"),
                                   calls.create("ok", "s2", "a", "b", "", "demo"), return_exceptions=True)
    assert isinstance(results[0], sqlite3.IntegrityError) and results[1] is None
    assert _rows(db.path, "SELECT id FROM calls ORDER BY id") == [("dup",), ("ok",)]  # committed on return
    await db.conn.commit()
    assert _rows(db.path, "SELECT name FROM users") == [("x",)]
    await db.conn.execute("INSERT INTO users (name, role, token_sha256, created_at) VALUES ('y', 'qa', 'h2', 'now')")
    await calls.create("ok2", "s3", "a", "b", "", "demo")  # a batch that succeeds commits what is open too
    assert _rows(db.path, "SELECT id FROM calls WHERE id = 'ok2'") == [("ok2",)]
    await db.conn.commit()
    assert _rows(db.path, "SELECT name FROM users ORDER BY name") == [("x",), ("y",)]


async def test_a_cancelled_caller_still_has_its_write_stored(db: Database) -> None:
    calls = CallRepo(db)
    task = asyncio.create_task(calls.create("c1", "s1", "a", "b", "", "demo"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await calls.get("c1")) is not None


async def test_a_lost_connection_fails_the_callers_instead_of_hanging(db: Database) -> None:
    calls = CallRepo(db)
    await calls.create("c1", "s1", "a", "b", "", "demo")
    await db.conn.close()  # closed under the writer
    with pytest.raises(sqlite3.OperationalError, match="not stored"):
        await asyncio.wait_for(calls.update("c1", codec="x"), 2.0)
    assert _writers() == []


async def test_bad_arguments_are_clear_errors(tmp_path: Path, db: Database) -> None:
    calls = CallRepo(db)
    with pytest.raises(ValueError, match="at least one column"):
        await calls.update("c1")
    with pytest.raises(ValueError, match="cannot set column 'id'"):
        calls.update_nowait("c1", id="c2")
    with pytest.raises(ValueError, match="cannot set column"):
        await calls.update("c1", **{"codec = 'x', caller": "y"})
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        await calls.update("c1", colour="red")
    with pytest.raises(ValueError, match="linger_s"):
        await Database.open(tmp_path, linger_s=-1)
    assert db.pending == 0

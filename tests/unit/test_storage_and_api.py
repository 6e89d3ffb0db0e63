"""Storage on a real SQLite file, and the API's auth in-process (real database, no SIP)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from callcenter.api import ApiContext, create_app
from callcenter.recovery import recover
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, EventRepo, UserRepo


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    yield database
    await database.close()


async def test_migrations_wal_and_reopen(tmp_path: Path, db: Database) -> None:
    async with db.conn.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"  # type: ignore[index]
    await CallRepo(db).create("c1", "sip-1", "a", "b", "1.2.3.4:5", "demo")
    await db.close()
    again = await Database.open(tmp_path)  # migrations are not applied twice
    try:
        assert (await CallRepo(again).get("c1"))["caller"] == "a"  # type: ignore[index]
    finally:
        await again.close()
    db.conn = (await Database.open(tmp_path)).conn  # so the fixture can close something


async def test_calls_newest_first_and_interrupted(db: Database) -> None:
    calls = CallRepo(db)
    for i in range(3):
        await calls.create(f"c{i}", f"s{i}", "a", "b", "", "demo")
    await calls.update("c0", ended_at="2026-01-01T00:00:00+00:00", disposition="completed")
    assert [c["id"] for c in await calls.latest(2)] == ["c2", "c1"]
    events = EventRepo(db)
    await events.append("ANSWER", "c1", at="2030-01-01T00:00:01.000+00:00")
    assert await recover(calls, events, db.path.parent) == 2
    c1 = await calls.get("c1")
    assert c1 is not None and c1["disposition"] == "interrupted" and "interrupted" in c1["hangup_cause"]
    assert c1["ended_at"] == "2030-01-01T00:00:01.000+00:00"  # the last moment it was known alive
    assert (await calls.get("c0"))["disposition"] == "completed"  # type: ignore[index]
    assert [e["event"] for e in await events.for_call("c2")] == ["CALLEND"]
    assert await recover(calls, events, db.path.parent) == 0  # nothing left open


async def test_events_are_append_only(db: Database) -> None:
    events = EventRepo(db)
    await events.append("CALLSTART", "c1", caller="a")
    await events.append("CALLEND", "c1", disposition="completed")
    assert [e["event"] for e in await events.for_call("c1")] == ["CALLSTART", "CALLEND"]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        await db.conn.execute("DELETE FROM events")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        await db.conn.execute("UPDATE events SET event = 'X'")


async def test_tokens_are_stored_hashed(db: Database) -> None:
    users = UserRepo(db)
    await users.add("ann", "qa", "secret-token")
    assert (await users.by_token("secret-token")).name == "ann"  # type: ignore[union-attr]
    assert await users.by_token("secret-tokeN") is None
    async with db.conn.execute("SELECT token_sha256 FROM users") as cur:
        assert "secret-token" not in (await cur.fetchone())[0]  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown role"):
        await users.add("bob", "boss", "t2")


async def test_api_auth_in_process(db: Database, tmp_path: Path) -> None:
    users = UserRepo(db)
    await users.add("ag", "agent", "tok-agent")
    await users.add("sv", "supervisor", "tok-sup")
    calls = CallRepo(db)
    await calls.create("c1", "s1", "<sip:a@x>", "<sip:b@y>", "", "demo")
    rec = tmp_path / "recordings" / "c1.wav"
    rec.parent.mkdir()
    rec.write_bytes(b"RIFF....")
    await calls.update("c1", recording_path="recordings/c1.wav", ended_at="2026-01-01T00:00:00+00:00")
    app = create_app(ApiContext(calls=calls, users=users, data_dir=tmp_path.resolve(), active_calls=lambda: 7))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "active_calls": 7, "sip_calls": None,
                                                         "max_calls": None}
        assert (await client.get("/api/calls")).status_code == 401
        assert (await client.get("/api/calls", headers={"Authorization": "Basic abc"})).status_code == 401
        h_agent = {"Authorization": "Bearer tok-agent"}
        h_sup = {"Authorization": "Bearer tok-sup"}
        assert (await client.get("/api/calls", headers=h_agent)).status_code == 403
        body = (await client.get("/api/calls", headers=h_sup)).json()
        assert body[0]["id"] == "c1" and body[0]["recording_url"] == "/api/calls/c1/recording"
        got = await client.get("/api/calls/c1/recording", headers=h_sup)
        assert got.status_code == 200 and got.content == b"RIFF...."
        rec.unlink()
        assert (await client.get("/api/calls/c1/recording", headers=h_sup)).status_code == 410

"""Thin repositories over the tables: calls, events, users. SQL stays here.

Writes go through the database's group-commit writer (``Database.write``: one transaction per batch
of queued writes, see db.py); an awaited write returns once committed and raises its own error.
``EventRepo.append_nowait`` queues an event without waiting (failures are logged). Every read
flushes the queue first, so it sees the writes queued before it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .db import Database, utcnow

ROLES = ("admin", "supervisor", "agent", "qa")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CallRepo:
    COLUMNS = (
        "id, sip_call_id, caller, callee, remote_address, flow, codec, started_at, answered_at, ended_at, "
        "disposition, hangup_cause, recording_path, recording_sha256, recording_bytes, recording_seconds, "
        "caller_name, caller_uri"
    )

    def __init__(self, db: Database) -> None:
        self.db = db

    INSERT = ("INSERT INTO calls (id, sip_call_id, caller, callee, remote_address, flow, started_at, "
              "caller_name, caller_uri, flow_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    async def create(self, call_id: str, sip_call_id: str, caller: str, callee: str,
                     remote_address: str, flow: str, *, caller_name: str = "", caller_uri: str = "",
                     flow_version: int | None = None) -> None:
        """Insert the call's row (``started_at`` now) and wait until it is committed."""
        await self.db.write(self.INSERT, (call_id, sip_call_id, caller, callee, remote_address, flow, utcnow(),
                                          caller_name, caller_uri, flow_version))

    def create_nowait(self, call_id: str, sip_call_id: str, caller: str, callee: str,
                      remote_address: str, flow: str, *, caller_name: str = "", caller_uri: str = "",
                      flow_version: int | None = None) -> None:
        """As :meth:`create` without waiting; a failure is logged with the call id."""
        self.db.write_nowait(self.INSERT, (call_id, sip_call_id, caller, callee, remote_address, flow, utcnow(),
                                           caller_name, caller_uri, flow_version), what="call row", call_id=call_id)

    async def update(self, call_id: str, **fields: Any) -> None:
        """Set columns of the call's row and wait until committed (ValueError for no or bad column names)."""
        await self.db.write(*self._update_sql(call_id, fields))

    def update_nowait(self, call_id: str, **fields: Any) -> None:
        """As :meth:`update` without waiting (bad column names still raise ValueError now)."""
        self.db.write_nowait(*self._update_sql(call_id, fields), what="call update", call_id=call_id)

    def _update_sql(self, call_id: str, fields: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        if not fields:
            raise ValueError("CallRepo.update needs at least one column to set")
        bad = sorted(k for k in fields if not k.isidentifier() or k == "id")
        if bad:
            raise ValueError(f"CallRepo.update cannot set column {', '.join(map(repr, bad))}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        return f"UPDATE calls SET {cols} WHERE id = ?", (*fields.values(), call_id)

    async def get(self, call_id: str) -> dict[str, Any] | None:
        await self.db.flush()
        async with self.db.conn.execute(f"SELECT {self.COLUMNS} FROM calls WHERE id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        return dict(row) if row else None

    async def latest(self, limit: int) -> list[dict[str, Any]]:
        await self.db.flush()
        async with self.db.conn.execute(
            f"SELECT {self.COLUMNS} FROM calls ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def open_calls(self) -> list[dict[str, Any]]:
        """Calls with no end: a previous run was killed during them (see callcenter/recovery.py)."""
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT c.id, c.started_at, c.answered_at, c.recording_path, "
            "(SELECT MAX(at) FROM events e WHERE e.call_id = c.id) AS last_event_at "
            "FROM calls c WHERE c.ended_at IS NULL ORDER BY c.started_at"
        ) as cur:
            return [dict(r) for r in await cur.fetchall()]


class EventRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    SQL = "INSERT INTO events (at, call_id, queue, agent, event, data) VALUES (?, ?, ?, ?, ?, ?)"

    async def append(self, event: str, call_id: str = "", queue: str = "", agent: str = "",
                     at: str | None = None, **data: Any) -> None:
        """Append one event and wait until it is committed; ``at`` (ISO 8601 UTC) defaults to now."""
        await self.db.write(self.SQL, (at or utcnow(), call_id, queue, agent, event, json.dumps(data, sort_keys=True)))

    def append_nowait(self, event: str, call_id: str = "", queue: str = "", agent: str = "",
                      at: str | None = None, **data: Any) -> None:
        """Queue one event without waiting (``at`` is taken now); a failure to store it is logged.

        It is committed in order with the other writes; ``await db.flush()`` or ``db.close()`` waits for it.
        """
        self.db.write_nowait(self.SQL, (at or utcnow(), call_id, queue, agent, event, json.dumps(data, sort_keys=True)),
                             what=event, call_id=call_id)

    async def for_call(self, call_id: str) -> list[dict[str, Any]]:
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT at, event, queue, agent, data FROM events WHERE call_id = ? ORDER BY id", (call_id,)
        ) as cur:
            return [{**dict(r), "data": json.loads(r["data"])} for r in await cur.fetchall()]


class UserRepo:
    """API and page users: a bearer token each (stored hashed) and, for people, a password hash.

    Password hashes are made and checked by callcenter/auth.py; this class only stores them.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, name: str, role: str, token: str, *, password_hash: str | None = None) -> User:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (use one of: {', '.join(ROLES)})")
        now = utcnow()
        rowid = await self.db.write(
            "INSERT INTO users (name, role, token_sha256, created_at, password_hash, password_set_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, role, token_hash(token), now, password_hash, now if password_hash else None),
        )
        return User(int(rowid or 0), name, role)

    async def by_token(self, token: str) -> User | None:
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT id, name, role FROM users WHERE token_sha256 = ?", (token_hash(token),)
        ) as cur:
            row = await cur.fetchone()
        return User(row["id"], row["name"], row["role"]) if row else None

    async def by_name(self, name: str) -> User | None:
        got = await self.credentials(name)
        return got[0] if got else None

    async def credentials(self, name: str) -> tuple[User, str | None] | None:
        """The user called ``name`` and their password hash (None: token only); None if no such user."""
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT id, name, role, password_hash FROM users WHERE name = ?", (name,)
        ) as cur:
            row = await cur.fetchone()
        return (User(row["id"], row["name"], row["role"]), row["password_hash"]) if row else None

    async def set_password(self, name: str, password_hash: str) -> User | None:
        """Store a new password hash and sign the user out of every session; None if no such user."""
        user = await self.by_name(name)
        if user is None:
            return None
        await self.db.write("UPDATE users SET password_hash = ?, password_set_at = ? WHERE id = ?",
                            (password_hash, utcnow(), user.id))
        await self.db.write("DELETE FROM sessions WHERE user_id = ?", (user.id,))
        return user

    async def all(self) -> list[User]:
        await self.db.flush()
        async with self.db.conn.execute("SELECT id, name, role FROM users ORDER BY id") as cur:
            return [User(r["id"], r["name"], r["role"]) for r in await cur.fetchall()]

    async def password_set_at(self) -> dict[int, str | None]:
        """user id -> when their password was set (None: a token-only user)."""
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT id, CASE WHEN password_hash IS NULL THEN NULL ELSE password_set_at END AS at FROM users"
        ) as cur:
            return {r["id"]: r["at"] for r in await cur.fetchall()}

"""The ``sessions`` table (migration 007): signed-in browsers, keyed by the SHA-256 of their cookie.

SQL only; callcenter/auth.py decides lifetimes and hashes the cookie value (the value itself never
reaches this module). Times are ISO 8601 UTC strings of one fixed width (``iso_utc``), so they
compare as text.
"""

from __future__ import annotations

from dataclasses import dataclass

from .db import Database
from .repos import User


@dataclass(frozen=True, slots=True)
class SessionRow:
    user: User
    created_at: str
    last_seen_at: str
    expires_at: str


class SessionRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, digest: str, user_id: int, *, now: str, expires_at: str, address: str = "",
                     user_agent: str = "") -> None:
        await self.db.write(
            "INSERT INTO sessions (id_sha256, user_id, created_at, last_seen_at, expires_at, address, user_agent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (digest, user_id, now, now, expires_at, address, user_agent))

    async def get(self, digest: str, now: str) -> SessionRow | None:
        """The unexpired session with this digest and its user (None: unknown, expired or signed out)."""
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT u.id, u.name, u.role, s.created_at, s.last_seen_at, s.expires_at FROM sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.id_sha256 = ? AND s.expires_at > ?", (digest, now)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return SessionRow(User(row["id"], row["name"], row["role"]), row["created_at"], row["last_seen_at"],
                          row["expires_at"])

    async def touch(self, digest: str, *, last_seen_at: str, expires_at: str) -> None:
        await self.db.write("UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id_sha256 = ?",
                            (last_seen_at, expires_at, digest))

    async def delete(self, digest: str) -> None:
        await self.db.write("DELETE FROM sessions WHERE id_sha256 = ?", (digest,))

    async def delete_for_user(self, user_id: int) -> None:
        """Sign the user out everywhere (after a password change)."""
        await self.db.write("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    async def purge(self, now: str) -> None:
        """Forget the sessions that have expired."""
        await self.db.write("DELETE FROM sessions WHERE expires_at <= ?", (now,))

    async def count(self, user_id: int | None = None) -> int:
        """How many session rows there are, expired ones not purged yet included (all users, or one)."""
        await self.db.flush()
        where, params = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
        async with self.db.conn.execute(f"SELECT COUNT(*) FROM sessions {where}", params) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

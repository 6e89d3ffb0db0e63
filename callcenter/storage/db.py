"""The database: one aiosqlite writer connection in WAL mode, migrated on open."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import aiosqlite

from ..exceptions import ConfigError

DB_NAME = "callcenter.db"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("callcenter.storage").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    async def open(cls, data_dir: Path) -> Database:
        path = data_dir / DB_NAME
        try:
            conn = await aiosqlite.connect(path)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open database {path}: {exc}") from None
        db = cls(conn, path)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await db._migrate()
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

    async def close(self) -> None:
        await self.conn.close()

"""The agent desk's rows: a call's wrap-up (migration 008) and who handled a call."""

from __future__ import annotations

from typing import Any

from .db import Database, utcnow


class WrapUpRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def call(self, call_id: str) -> dict[str, Any] | None:
        """{id, agent, queue, answered_at, ended_at, wrap_up_disposition, wrap_up_note, wrap_up_at} or None."""
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT id, agent, queue, answered_at, ended_at, wrap_up_disposition, wrap_up_note, wrap_up_at "
            "FROM calls WHERE id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        return dict(row) if row else None

    async def save(self, call_id: str, disposition: str, note: str) -> str:
        """Store the wrap-up on the call's row (committed when this returns); its time (ISO 8601 UTC)."""
        at = utcnow()
        await self.db.write("UPDATE calls SET wrap_up_disposition = ?, wrap_up_note = ?, wrap_up_at = ? WHERE id = ?",
                            (disposition, note, at, call_id))
        return at

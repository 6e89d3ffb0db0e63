"""A desk session and the WebSocket connection attached to it (the rules are in docs/desk.md).

A :class:`DeskSession` belongs to one principal: an agent (``agent:ID``) or a supervisor with no
agent of their own (``user:NAME``). It outlives its connections: a reconnect within the grace
period (or a second connection, which takes over) attaches to the same session, keeping its last
accepted ``seq`` and its calls. Resume tokens are random, shown once (in ``welcome``), kept only as
SHA-256 hashes, and a new one is issued at every attach; the last few stay valid so that a page
can prove with ``resume`` that it is the page that had the session.

A :class:`Connection` sends in order from one writer task through a bounded queue (a client that
stops reading is closed, never waited for) and counts unanswered pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket

from .desk_protocol import Error, ServerMessage, encode
from .storage.repos import User

log = logging.getLogger("callcenter.desk")

MAX_OUTBOX = 256                 # messages waiting for a slow client before it is closed
TOKENS_KEPT = 4                  # resume tokens of a session that stay valid
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_TAKEN_OVER, CLOSE_GONE, CLOSE_UNAVAILABLE = 4401, 4403, 4409, 4408, 1013


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Connection:
    """One accepted WebSocket: ``send`` never blocks; ``close`` sends what is queued, then closes."""

    def __init__(self, ws: WebSocket, *, max_outbox: int = MAX_OUTBOX) -> None:
        self.ws = ws
        self._out: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue(max_outbox + 1)
        self.max_outbox = max_outbox
        self.closing = False
        self.missed_pings = 0
        self.sent = 0
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name="desk-ws-writer")

    def send(self, msg: ServerMessage) -> bool:
        if self.closing:
            return False
        if self._out.qsize() >= self.max_outbox:
            log.warning("desk client reads too slowly: closed", extra={"pending": self._out.qsize()})
            self.close(CLOSE_GONE, "too slow: reconnect")
            return False
        self._out.put_nowait(encode(msg))
        return True

    def close(self, code: int = 1000, reason: str = "", error: Error | None = None) -> None:
        """Queue ``error`` (if any) and a close frame; later sends are dropped."""
        if self.closing:
            return
        if error is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._out.put_nowait(encode(error))
        self.closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._out.put_nowait((code, reason[:120]))
        if self._out.full():  # (no room for the close frame: close now)
            self._close_now(code, reason)

    def _close_now(self, code: int, reason: str) -> None:
        if self._writer is not None:
            self._writer.cancel()
        asyncio.get_running_loop().create_task(_close_quietly(self.ws, code, reason))

    async def _write(self) -> None:
        try:
            while True:
                item = await self._out.get()
                if isinstance(item, tuple):
                    await _close_quietly(self.ws, *item)
                    return
                await self.ws.send_text(item)
                self.sent += 1
        except (RuntimeError, OSError, asyncio.CancelledError):
            return
        except Exception:  # websockets' ConnectionClosed and the like: the client is gone
            log.debug("desk connection write failed", exc_info=True)
            return

    async def stop(self, drain_s: float = 1.0) -> None:
        """End the writer (after the connection ended), letting it send what was queued for ``drain_s``."""
        self.closing = True
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._writer), drain_s)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer


async def _close_quietly(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=code, reason=reason)


@dataclass(eq=False)
class DeskSession:
    key: str                         # "agent:ID" or "user:NAME"
    user: User
    agent: str | None                # the agent this session acts as (None: a supervisor only)
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    last_seq: int = -1
    conn: Connection | None = None
    detached_at: float | None = None
    grace: asyncio.TimerHandle | None = None
    monitors: dict[str, Any] = field(default_factory=dict)   # call id -> the supervisor's monitor (agent_calls)
    _tokens: deque[str] = field(default_factory=lambda: deque(maxlen=TOKENS_KEPT))

    @property
    def supervisor(self) -> bool:
        return self.user.role in ("admin", "supervisor")

    @property
    def live(self) -> bool:
        return self.conn is not None and not self.conn.closing

    def new_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens.append(_hash(token))
        return token

    def token_ok(self, token: str) -> bool:
        h = _hash(token)
        return any(secrets.compare_digest(h, t) for t in self._tokens)

    def accept_seq(self, seq: int) -> bool:
        """True (and remembered) if ``seq`` is above every seq accepted before."""
        if seq <= self.last_seq:
            return False
        self.last_seq = seq
        return True

    def send(self, msg: ServerMessage) -> bool:
        """To the attached connection; False if none (the message is dropped: an attach sends a fresh view)."""
        return self.conn.send(msg) if self.conn is not None else False

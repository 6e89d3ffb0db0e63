"""The live event stream over HTTP: server-sent events at GET /api/events, a WebSocket at /api/events/ws.

Both carry the bus's JSON events (callcenter/live_events.py; the wire format is in docs/agents.md),
a ``heartbeat`` as soon as the stream is live and then every ``heartbeat_s`` (15 s) of silence, and
end after an ``overflow`` event when the client reads too slowly.

Authentication never puts a token in a URL (it would end up in access logs):
* SSE: ``Authorization: Bearer <token>`` (use fetch() streaming in a page; EventSource cannot send it);
* WebSocket: the same header at connect, or else a first message ``{"type": "auth", "token": "..."}``
  within ``auth_timeout_s`` (5 s). A refused token closes with code 4401, a role that may not watch
  with 4403, after an ``{"type": "error", "detail": ...}`` message.

Roles: admin and supervisor see every event; an agent sees the events of their own agent id(s)
(``agents.user_name`` = their user name; the event's ``agent`` field) plus the queue-level events
(:data:`QUEUE_LEVEL`), with heartbeats and overflow. ``?types=a,b`` narrows the stream further.
"""

# (No `from __future__ import annotations`: FastAPI must resolve Depends() on names local to build_router.)
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from routing.config import did_you_mean

from .api import ApiContext, require
from .auth import COOKIE, user_from_websocket
from .live_events import WIRE_TYPES, Event, EventBus, Subscription
from .storage.acd import AgentRepo
from .storage.repos import User

HEARTBEAT_S = 15.0
AUTH_TIMEOUT_S = 5.0
WATCHERS = ("supervisor", "agent")          # (admin always)
QUEUE_LEVEL = frozenset({"queue_joined", "queue_left", "callback_requested", "heartbeat", "overflow"})
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_UNAVAILABLE = 4401, 4403, 1013
_TYPES_QUERY = Query(max_length=1000, description="Comma-separated event types (default: all)",
                     examples=["agent_state,queue_joined"])


class BadTypes(ValueError):
    pass


def parse_types(text: str | None) -> frozenset[str] | None:
    """``"a,b"`` -> {"a", "b"} (None for none given); BadTypes naming an unknown type."""
    if text is None or not text.strip():
        return None
    types = frozenset(t.strip() for t in text.split(",") if t.strip())
    for t in sorted(types):
        if t not in WIRE_TYPES:
            raise BadTypes(f"unknown event type {t!r}{did_you_mean(t, WIRE_TYPES)}; types are: {', '.join(WIRE_TYPES)}")
    return types


def heartbeat() -> Event:
    return {"type": "heartbeat", "at": time.time()}


def sse_frame(event: Event) -> bytes:
    """One server-sent event: a ``data:`` line of JSON (no ``event:`` field, so ``onmessage`` gets all)."""
    return f"data: {json.dumps(event, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def build_router(ctx: ApiContext, *, heartbeat_s: float = HEARTBEAT_S,
                 auth_timeout_s: float = AUTH_TIMEOUT_S) -> APIRouter:
    agents = AgentRepo(ctx.db or ctx.calls.db)
    watchers = require(*WATCHERS)
    router = APIRouter()

    async def visibility(user: User) -> Callable[[Event], bool] | None:
        if user.role in ("admin", "supervisor"):
            return None
        mine = frozenset(a.spec.id for a in await agents.all(user=user.name))
        return lambda e: e["type"] in QUEUE_LEVEL or e.get("agent") in mine

    def bus() -> EventBus | None:
        b: EventBus | None = ctx.bus
        return b

    async def events(sub: Subscription) -> AsyncIterator[Event]:
        """A heartbeat now, then the subscription's events with heartbeats in silences; ends after overflow."""
        yield heartbeat()
        while True:
            event = await sub.get(wait_s=heartbeat_s)
            if event is None:
                if sub.finished:
                    return
                event = heartbeat()
            yield event

    @router.get("/api/events", tags=["events"], response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "Server-sent events: `data: {json}` per event (docs/agents.md)"},
                           503: {"description": "The live event stream is not enabled"}})
    async def sse(user: Annotated[User, Depends(watchers)],
                  types: Annotated[str | None, _TYPES_QUERY] = None) -> StreamingResponse:
        """The live event stream as server-sent events (``Authorization: Bearer`` header)."""
        b = bus()
        if b is None:
            raise HTTPException(503, "the live event stream is not running")
        try:
            wanted = parse_types(types)
        except BadTypes as exc:
            raise HTTPException(400, str(exc)) from None
        accept = await visibility(user)

        async def body() -> AsyncIterator[bytes]:
            with b.subscribe(wanted, accept=accept) as sub:   # (subscribed once the client reads: no leak)
                async for event in events(sub):
                    yield sse_frame(event)

        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def refuse(ws: WebSocket, code: int, detail: str) -> None:
        with contextlib.suppress(Exception):
            await ws.send_text(json.dumps({"type": "error", "detail": detail}))
            await ws.close(code=code, reason=detail[:120])

    async def authenticate(ws: WebSocket) -> User | None:
        header = ws.headers.get("authorization", "")
        if not header and COOKIE in ws.cookies:  # a signed-in page (callcenter/auth.py checks its Origin)
            user = await user_from_websocket(ws, ctx)
            if user is None:
                await refuse(ws, CLOSE_UNAUTHORIZED, "the session has ended, or the page is from another site: "
                                                     "sign in again")
                return None
            if user.role not in ("admin", *WATCHERS):
                await refuse(ws, CLOSE_FORBIDDEN, f"role {user.role!r} may not watch live events")
                return None
            return user
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                await refuse(ws, CLOSE_UNAUTHORIZED, "the Authorization header must be 'Bearer <token>'")
                return None
        else:
            try:
                async with asyncio.timeout(auth_timeout_s):
                    first = await ws.receive_text()
            except TimeoutError:
                await refuse(ws, CLOSE_UNAUTHORIZED, f"no auth message within {auth_timeout_s:g} s: send "
                                                     '{"type": "auth", "token": "..."} first')
                return None
            try:
                msg: Any = json.loads(first)
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or msg.get("type") != "auth" or not isinstance(msg.get("token"), str):
                await refuse(ws, CLOSE_UNAUTHORIZED, 'the first message must be {"type": "auth", "token": "..."}')
                return None
            token = msg["token"]
        user = await ctx.users.by_token(token.strip())
        if user is None:
            await refuse(ws, CLOSE_UNAUTHORIZED, "unknown or revoked token")
            return None
        if user.role not in ("admin", *WATCHERS):
            await refuse(ws, CLOSE_FORBIDDEN, f"role {user.role!r} may not watch live events "
                                              "(needs admin, supervisor or agent)")
            return None
        return user

    @router.websocket("/api/events/ws")
    async def ws_events(ws: WebSocket, types: Annotated[str | None, _TYPES_QUERY] = None) -> None:
        await ws.accept()
        b = bus()
        if b is None:
            await refuse(ws, CLOSE_UNAVAILABLE, "the live event stream is not running")
            return
        try:
            wanted = parse_types(types)
        except BadTypes as exc:
            await refuse(ws, 1008, str(exc))
            return
        try:
            user = await authenticate(ws)
        except WebSocketDisconnect:
            return
        if user is None:
            return
        accept = await visibility(user)
        with b.subscribe(wanted, accept=accept) as sub:
            # Client messages are read (and ignored) so that a hang-up ends the subscription at once.
            reader = asyncio.create_task(_drain(ws, sub), name="events-ws-reader")
            try:
                async for event in events(sub):
                    await ws.send_text(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
                if sub.overflowed:
                    await ws.close(code=1000, reason="overflow: reconnect")
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass  # the client went away while we were sending
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    return router


async def _drain(ws: WebSocket, sub: Subscription) -> None:
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sub.close()

"""The agent desk's server: the ``/api/desk/ws`` WebSocket and its sessions (docs/desk.md).

:class:`DeskHub` authenticates each connection (the session cookie or a bearer header at
connect, else a first ``auth`` message within ``auth_timeout_s``), finds who it acts for (the
agent whose ``user`` is the user; supervisors and admins may also act with no agent of their
own), and attaches it to that principal's one :class:`~callcenter.desk_session.DeskSession`: a
second connection takes over (the first gets ``error`` ``taken_over`` and is closed), a
reconnect within ``grace_s`` finds the session and its call still there. It pings every
``heartbeat_s``; ``missed_pings`` unanswered pings count as the browser being gone.

Messages are parsed by callcenter/desk_protocol.py; each must carry a ``seq`` above the
session's last (else ``error`` ``replay`` and nothing happens). Agent states go to the live ACD
(``ctx.acd.set_state``); offers come from the ACD through :meth:`DeskHub.leg` (a
callcenter/desk_leg.py DeskLeg per offer); in-call controls and supervisors' monitoring are
callcenter/agent_calls.py's. ``agent_state`` changes reach the agent from the live bus.
"""

# (No `from __future__ import annotations`: FastAPI must resolve the WebSocket parameter's type.)
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from routing.exceptions import RoutingError
from routing.exceptions import UnknownAgent as RouterUnknownAgent

from . import desk_protocol as p
from .agent_calls import AgentCalls
from .agent_leg import LegEnd
from .api import ApiContext
from .auth import same_origin, user_from_websocket
from .desk_leg import DeskLeg
from .desk_session import (
    CLOSE_FORBIDDEN,
    CLOSE_GONE,
    CLOSE_TAKEN_OVER,
    CLOSE_UNAUTHORIZED,
    Connection,
    DeskSession,
)
from .exceptions import UnknownAgent
from .storage.acd import AgentRepo, CustomerRepo
from .storage.repos import EventRepo, User

log = logging.getLogger("callcenter.desk")

GRACE_S = 20.0
HEARTBEAT_S = 10.0
MISSED_PINGS = 3
AUTH_TIMEOUT_S = 5.0
CALL_TYPES = frozenset({"hold", "resume", "mute", "dtmf", "transfer", "consult", "complete_transfer",
                        "cancel_transfer", "wrap_up", "monitor"})


def is_desk_uri(uri: str) -> bool:
    """An agent reached through the desk: ``desk`` or ``desk:anything``."""
    return uri == "desk" or uri.startswith("desk:")


class DeskHub:
    def __init__(self, ctx: ApiContext, *, engine: Any = None, grace_s: float = GRACE_S,
                 heartbeat_s: float = HEARTBEAT_S, missed_pings: int = MISSED_PINGS,
                 auth_timeout_s: float = AUTH_TIMEOUT_S, transfer_allow: tuple[str, ...] = (),
                 hold_music: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self._engine = engine
        self.grace_s = grace_s
        self.heartbeat_s = heartbeat_s
        self.missed_pings = missed_pings
        self.auth_timeout_s = auth_timeout_s
        self.clock = clock
        db = ctx.db or ctx.calls.db
        self.db = db
        self.data_dir = ctx.data_dir
        self.events = EventRepo(db)
        self.agent_repo = AgentRepo(db)
        self.customers = CustomerRepo(db)
        self.sessions: dict[str, DeskSession] = {}
        self.legs: dict[str, DeskLeg] = {}           # reservation -> a desk agent's leg (ringing or in a call)
        self.calls = AgentCalls(self, transfer_allow=transfer_allow, hold_music=hold_music)
        self._bus_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    @property
    def engine(self) -> Any:
        if self._engine is not None:
            return self._engine
        return getattr(self.ctx.acd, "engine", None)

    # -- for the ACD -----------------------------------------------------------------------------------
    def leg(self, *, call_id: str, reservation: str, agent: str, on_answered: Callable[[DeskLeg], None],
            on_ended: Callable[[DeskLeg, LegEnd], None], queue: str = "", caller: str = "",
            variables: dict[str, Any] | None = None, ring_timeout_s: float | None = None, callback: bool = False,
            record: bool = True) -> DeskLeg:
        """A leg that rings ``agent``'s desk; the ACD starts it (``leg.start()``) like an OutboundLeg."""
        if ring_timeout_s is None:
            spec = getattr(self.ctx.acd, "queues", {}).get(queue)
            ring_timeout_s = float(getattr(spec, "ring_timeout_s", 0.0) or 0.0)
        return DeskLeg(self, call_id=call_id, reservation=reservation, agent=agent, queue=queue, caller=caller,
                       variables=variables, ring_timeout_s=ring_timeout_s, callback=callback,
                       on_answered=on_answered, on_ended=on_ended, record=record)

    def reachable(self, agent: str) -> bool:
        s = self.sessions.get(f"agent:{agent}")
        return s is not None and s.live

    def send_to_agent(self, agent: str, msg: p.ServerMessage) -> bool:
        s = self.sessions.get(f"agent:{agent}")
        return s.send(msg) if s is not None else False

    def legs_of(self, agent: str) -> list[DeskLeg]:
        return [leg for leg in self.legs.values() if leg.agent == agent]

    def leg_by_call(self, agent: str, call_id: str) -> DeskLeg | None:
        for leg in self.legs.values():
            if leg.agent == agent and leg.call_id == call_id and leg.state != "ended":
                return leg
        return None

    def forget(self, leg: DeskLeg) -> None:
        """(A DeskLeg registers itself in ``legs`` when made, and is forgotten when it has ended.)"""
        if self.legs.get(leg.reservation) is leg:
            del self.legs[leg.reservation]

    def call_over(self, leg: DeskLeg) -> None:
        """An answered desk leg ended: the in-call controls let go of the call."""
        self.calls.call_gone(leg.call_id)

    async def customer(self, caller: str) -> dict[str, Any] | None:
        if not caller:
            return None
        try:
            got = await self.customers.lookup(caller)
        except Exception:
            log.exception("customer lookup failed", extra={"caller": caller})
            return None
        if got is None:
            return None
        return {"phone": got["phone"], "name": got["name"], "vip_tier": got["vip_tier"], "known": got["known"],
                "language": got["language"], "notes": got["notes"], "last_calls": got["calls"]}

    def wrap_up_s(self, agent: str, queue: str) -> float:
        acd = self.ctx.acd
        spec = getattr(acd, "queues", {}).get(queue)
        if spec is not None and spec.wrap_up_s is not None:
            return float(spec.wrap_up_s)
        a = getattr(acd, "agents", {}).get(agent)
        return float(a.wrap_up_s) if a is not None else 0.0

    def log_event(self, event: str, leg: DeskLeg | None = None, *, call_id: str = "", queue: str = "",
                  agent: str = "", **data: Any) -> None:
        if leg is not None:
            call_id, queue, agent = leg.call_id, leg.queue, leg.agent
        self.events.append_nowait(event, call_id, queue=queue, agent=agent, **data)

    # -- the endpoint ------------------------------------------------------------------------------------
    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        if self.closed:
            await _refuse(ws, 1013, "unavailable", "the desk is shutting down")
            return
        why = _cross_origin(ws)
        if why:
            await _refuse(ws, CLOSE_FORBIDDEN, "forbidden", why)
            return
        try:
            user = await self._authenticate(ws)
            if user is None:
                return
            who = await self._principal(ws, user)
        except WebSocketDisconnect:
            return
        if who is None:
            return
        key, agent = who
        self._start()
        conn = Connection(ws)
        conn.start()
        session = self._attach(key, user, agent, conn)
        reader = asyncio.create_task(self._read(session, conn), name="desk-ws-reader")
        pinger = asyncio.create_task(self._ping(session, conn), name="desk-ws-pinger")
        try:
            await asyncio.wait({reader, pinger}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, pinger):
                task.cancel()
            for task in (reader, pinger):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._detach(session, conn, "closed")
            conn.close(CLOSE_GONE, "gone")
            await conn.stop()

    async def _authenticate(self, ws: WebSocket) -> User | None:
        user = await user_from_websocket(ws, self.ctx)
        if user is not None:
            return user
        header = ws.headers.get("authorization", "")
        if header:  # (a header that W1's helper refused, or a malformed one)
            await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", "unknown or revoked token")
            return None
        try:
            async with asyncio.timeout(self.auth_timeout_s):
                first = await ws.receive_text()
        except TimeoutError:
            await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized",
                          f'no credentials: sign in, or send {{"type": "auth", "token": "..."}} within '
                          f"{self.auth_timeout_s:g} s")
            return None
        try:
            msg = p.parse(first)
        except p.BadMessage as exc:
            await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", f"the first message must be auth: {exc}")
            return None
        if not isinstance(msg, p.Auth):
            await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized",
                          f'the first message must be {{"type": "auth", "token": "..."}}, not {msg.type!r}')
            return None
        found: User | None = await self.ctx.users.by_token(msg.token.strip())
        if found is None:
            await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", "unknown or revoked token")
            return None
        return found

    async def _principal(self, ws: WebSocket, user: User) -> tuple[str, str | None] | None:
        if user.role not in ("admin", "supervisor", "agent"):
            await _refuse(ws, CLOSE_FORBIDDEN, "forbidden", f"role {user.role!r} may not use the desk (needs agent, "
                                                            "supervisor or admin)")
            return None
        mine = sorted(a.spec.id for a in await self.agent_repo.all(user=user.name))
        wanted = ws.query_params.get("agent")
        if wanted:
            if wanted not in mine:
                await _refuse(ws, CLOSE_FORBIDDEN, "forbidden",
                              f"user {user.name!r} is not agent {wanted!r}: a desk acts only as its own agent")
                return None
            return f"agent:{wanted}", wanted
        if mine:
            return f"agent:{mine[0]}", mine[0]
        if user.role in ("admin", "supervisor"):
            return f"user:{user.name}", None
        await _refuse(ws, CLOSE_FORBIDDEN, "forbidden", f"user {user.name!r} is no agent (no agent has user "
                                                        f"{user.name!r})")
        return None

    # -- sessions ---------------------------------------------------------------------------------------
    def _attach(self, key: str, user: User, agent: str | None, conn: Connection) -> DeskSession:
        s = self.sessions.get(key)
        if s is None:
            s = DeskSession(key, user, agent)
            self.sessions[key] = s
            log.info("desk session started", extra={"agent": agent or "", "user": user.name, "session": s.id})
        else:
            if s.grace is not None:
                s.grace.cancel()
                s.grace = None
            if s.conn is not None and s.conn is not conn:
                s.conn.close(CLOSE_TAKEN_OVER, "taken over", p.Error(
                    code="taken_over", message="another connection took over this desk session"))
                self.log_event("DESKTAKEOVER", agent=agent or "", session=s.id, user=user.name)
                log.info("desk session taken over", extra={"agent": agent or "", "session": s.id})
            elif s.detached_at is not None:
                log.info("desk session back", extra={"agent": agent or "", "session": s.id,
                                                     "after_s": round(self.clock() - s.detached_at, 3)})
            s.user = user
        s.conn, s.detached_at = conn, None
        conn.send(self._welcome(s, resumed=False))
        self._send_view(s)
        return s

    def _welcome(self, s: DeskSession, *, resumed: bool) -> p.Welcome:
        return p.Welcome(session=s.id, resume_token=s.new_token(), agent=s.agent, role=s.user.role,
                         state=self._status(s.agent), heartbeat_s=self.heartbeat_s, grace_s=self.grace_s,
                         last_seq=s.last_seq, resumed=resumed)

    def _send_view(self, s: DeskSession) -> None:
        """After an attach: the agent's state, ringing offers and calls (legs re-send their own)."""
        if s.agent is not None:
            status = self._status(s.agent)
            if status is not None:
                s.send(_agent_state(s.agent, status))
            for leg in self.legs_of(s.agent):
                leg.post("attached")
        self.calls.attached(s)

    def _status(self, agent: str | None) -> dict[str, Any] | None:
        if agent is None or self.ctx.acd is None:
            return None
        try:
            return dict(self.ctx.acd.agent_status(agent))
        except (UnknownAgent, RouterUnknownAgent):
            return None

    def _detach(self, s: DeskSession, conn: Connection, why: str) -> None:
        if s.conn is not conn:
            return  # (taken over: the session lives on with another connection)
        s.conn, s.detached_at = None, self.clock()
        log.info("desk connection gone", extra={"agent": s.agent or "", "session": s.id, "why": why})
        if s.agent is not None:
            for leg in self.legs_of(s.agent):
                leg.post("detached")
        if not self.closed:
            s.grace = asyncio.get_running_loop().call_later(self.grace_s, self._expire, s)

    def _expire(self, s: DeskSession) -> None:
        s.grace = None
        if s.conn is not None or self.sessions.get(s.key) is not s:
            return
        del self.sessions[s.key]
        log.info("desk session ended: no reconnect", extra={"agent": s.agent or "", "session": s.id})
        self.calls.session_ended(s)
        acd = self.ctx.acd
        spec = getattr(acd, "agents", {}).get(s.agent) if s.agent else None
        if acd is not None and spec is not None and is_desk_uri(spec.uri):
            self._spawn(self._logout(s.agent or ""), f"desk-logout-{s.agent}")

    async def _logout(self, agent: str) -> None:
        if self.reachable(agent):
            return
        try:
            await self.ctx.acd.set_state(agent, "logout", "", by="desk: the browser did not come back")
            self.log_event("DESKLOGOFF", agent=agent, grace_s=self.grace_s)
        except (UnknownAgent, RouterUnknownAgent, RoutingError) as exc:
            log.info("desk logout not needed", extra={"agent": agent, "why": str(exc)})

    # -- reading and heartbeat ----------------------------------------------------------------------------
    async def _ping(self, s: DeskSession, conn: Connection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if conn.missed_pings >= self.missed_pings:
                log.warning("desk heartbeat missed", extra={"agent": s.agent or "", "session": s.id,
                                                            "missed": conn.missed_pings})
                conn.close(CLOSE_GONE, "heartbeat missed", p.Error(
                    code="heartbeat", message=f"{conn.missed_pings} pings went unanswered: reconnect"))
                return
            conn.missed_pings += 1
            conn.send(p.Ping())

    async def _read(self, s: DeskSession, conn: Connection) -> None:
        ws = conn.ws
        while not conn.closing:
            try:
                frame = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if frame["type"] == "websocket.disconnect":
                return
            raw = frame.get("text")
            if raw is None:
                raw = frame.get("bytes") or b""
            conn.missed_pings = 0
            await self._handle(s, conn, raw)

    async def _handle(self, s: DeskSession, conn: Connection, raw: str | bytes) -> None:
        try:
            msg = p.parse(raw)
        except p.BadMessage as exc:
            conn.send(p.Error(code=exc.code, message=exc.message, ref=exc.ref))
            return
        if isinstance(msg, p.Auth):
            conn.send(p.Error(code="bad_message", message="already authenticated: auth only comes first",
                              ref=msg.seq))
            return
        if msg.seq is not None and not s.accept_seq(msg.seq):
            conn.send(p.Error(code="replay", message=f"seq {msg.seq} is not above {s.last_seq}: ignored",
                              ref=msg.seq))
            return
        if isinstance(msg, p.Pong):
            return
        if s.conn is not conn:
            return  # (taken over while this message was on its way)
        try:
            await self._dispatch(s, msg)
        except p.DeskError as exc:
            conn.send(p.Error(code=exc.code, message=exc.message, ref=msg.seq))
        except Exception as exc:
            log.exception("desk message failed", extra={"agent": s.agent or "", "type": msg.type})
            conn.send(p.Error(code="internal", message=f"{msg.type} failed: {type(exc).__name__}", ref=msg.seq))

    async def _dispatch(self, s: DeskSession, msg: p.ClientMessage) -> None:
        if msg.type in p.SUPERVISOR_TYPES and not s.supervisor:
            raise p.DeskError("forbidden", f"{msg.type} is for supervisors (role {s.user.role!r})")
        if isinstance(msg, p.ResumeSession):
            self._resume(s, msg.resume_token)
        elif isinstance(msg, p.SetState):
            s.send(await self._set_state(self._own_agent(s), msg.action, msg.reason, s.user.name))
        elif isinstance(msg, p.ForceState):
            state = await self._set_state(msg.agent, msg.action, msg.reason, f"{s.user.name} (supervisor)")
            s.send(state)
            self.log_event("FORCESTATE", agent=msg.agent, action=msg.action, reason=msg.reason,
                           supervisor=s.user.name)
        elif isinstance(msg, p.Answer | p.Reject):
            leg = self.legs.get(msg.offer)
            if leg is None or leg.agent != self._own_agent(s) or leg.state not in ("ringing", "answering"):
                raise p.DeskError("not_found", f"no offer {msg.offer!r} is ringing for this desk")
            leg.post(msg.type)
        elif isinstance(msg, p.RtcAnswer):
            leg = self.leg_by_call(s.agent, msg.call_id) if s.agent is not None else None
            if leg is not None and leg.media is not None:
                leg.post("rtc_answer", msg.sdp)
            else:
                await self.calls.monitor_answer(s, msg.call_id, msg.sdp)
        elif isinstance(msg, p.Hangup):
            leg = self.leg_by_call(self._own_agent(s), msg.call_id)
            if leg is not None:
                leg.post("hangup")
            else:
                await self.calls.hangup(s, msg.call_id)
        elif msg.type in CALL_TYPES:
            await self.calls.handle(s, msg)

    def _own_agent(self, s: DeskSession) -> str:
        if s.agent is None:
            raise p.DeskError("forbidden", "this desk session acts for no agent (a supervisor's)")
        return s.agent

    def _resume(self, s: DeskSession, token: str) -> None:
        if not s.token_ok(token):
            raise p.DeskError("unauthorized", "unknown or expired resume token: this is a new session "
                                              "(its calls and state are as welcome said)")
        s.send(self._welcome(s, resumed=True))
        self.log_event("DESKRESUME", agent=s.agent or "", session=s.id)

    async def _set_state(self, agent: str, action: str, reason: str, by: str) -> p.AgentState:
        acd = self.ctx.acd
        if acd is None:
            raise p.DeskError("unavailable", "the ACD is not running")
        try:
            status = await acd.set_state(agent, action, reason, by=by)
        except (UnknownAgent, RouterUnknownAgent) as exc:
            raise p.DeskError("not_found", str(exc)) from None
        except RoutingError as exc:
            raise p.DeskError("conflict", str(exc)) from None
        return _agent_state(agent, status)

    # -- the live bus and life cycle -------------------------------------------------------------------
    def _start(self) -> None:
        if self._bus_task is None and self.ctx.bus is not None and not self.closed:
            self._bus_task = asyncio.create_task(self._follow_bus(), name="desk-bus")

    async def _follow_bus(self) -> None:
        with self.ctx.bus.subscribe(("agent_state", "call_ended")) as sub:
            async for event in sub:
                try:
                    if event["type"] == "agent_state":
                        agent = str(event.get("agent", ""))
                        status = self._status(agent) or {"state": event.get("state", ""),
                                                         "reason": event.get("reason", "")}
                        self.send_to_agent(agent, _agent_state(agent, status))
                    elif event["type"] == "call_ended":
                        self.calls.call_gone(str(event.get("call_id", "")))
                except Exception:
                    log.exception("desk bus event failed", extra={"event_type": event.get("type")})

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Server shutdown: close every connection, stop timers and the bus reader (calls end with the engine)."""
        self.closed = True
        for s in list(self.sessions.values()):
            if s.grace is not None:
                s.grace.cancel()
            if s.conn is not None:
                s.conn.close(1001, "server shutting down")
        await self.calls.close()
        tasks = [t for t in (self._bus_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._bus_task = None


def _agent_state(agent: str, status: dict[str, Any]) -> p.AgentState:
    since = status.get("since")
    return p.AgentState(agent=agent, state=str(status.get("state", "")), reason=str(status.get("reason", "") or ""),
                        pending=str(status.get("pending", "") or ""),
                        since=float(since) if isinstance(since, int | float) else None)


async def _refuse(ws: WebSocket, code: int, error: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(p.encode(p.Error(code=error, message=message)))
        await ws.close(code=code, reason=message[:120])


def _cross_origin(ws: WebSocket) -> str:
    """Why a browser's connection from another site is refused ("" if it is not one)."""
    origin = ws.headers.get("origin")
    if origin is None or same_origin(ws):
        return ""
    return f"origin {origin[:100]!r} is not this server ({ws.headers.get('host', '')[:100]!r})"


def build_router(ctx: ApiContext, hub: DeskHub | None = None) -> APIRouter:
    """The ``/api/desk/ws`` route. Without ``hub``: ``ctx.desk`` if set, else a new hub with defaults,
    given to the live ACD (``ctx.acd.desk``) when it has none."""
    if hub is None:
        hub = getattr(ctx, "desk", None) or DeskHub(ctx)
    if ctx.acd is not None and getattr(ctx.acd, "desk", None) is None:
        with contextlib.suppress(AttributeError):
            ctx.acd.desk = hub
    router = APIRouter()
    the_hub = hub

    @router.websocket("/api/desk/ws")
    async def desk_ws(ws: WebSocket) -> None:
        await the_hub.serve(ws)

    return router

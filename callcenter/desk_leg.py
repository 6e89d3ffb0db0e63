"""A browser agent's leg of a call: what the ACD uses instead of callcenter/agent_leg.py's
OutboundLeg for an agent whose ``uri`` is ``desk`` (the agent desk, docs/desk.md).

The surface is OutboundLeg's (``reservation``, ``agent``, ``call_id``, ``state``, ``handle``,
``start()``, ``cancel()``, ``done``, ``on_answered(leg)``, ``on_ended(leg, LegEnd)``) plus
``async connect(caller_handle)``, which bridges the browser to the caller and records the
agent's side. The steps:

- ``start()``: the agent's desk session gets an ``offer``; no connected desk -> the leg ends at
  once (480: the router counts it unreachable);
- ``answer`` from the desk -> a bridge port (``Engine.open_port``) and an aiortc peer on it: the
  server's SDP goes out as ``rtc_offer``, the browser's comes back as ``rtc_answer``; once the
  peer is connected -> ``on_answered``; ``reject`` -> ended 603; ``cancel()`` while ringing ->
  ``offer_canceled``, ended 487;
- answered: the desk's ``hangup`` -> ended normally (200, by the agent); ``cancel()`` (the caller
  hung up, a transfer) -> ``call_ended`` to the desk, ended 200 (local);
- the browser vanishing (socket closed, heartbeat missed, peer failed) -> ``grace_s`` for the
  desk to come back (then a failed peer is offered afresh on the same port: the caller's bridge
  and the recording never stop); no comeback -> ended with ``LegEnd.lost`` (the ACD re-queues).

Everything the leg does happens in its own task's order, like OutboundLeg's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from recordings import files as recfiles
from voice.exceptions import CallGone, EngineError, EngineStopped

from . import desk_protocol as p
from .agent_leg import LegEnd
from .desk_media import DeskMedia

if TYPE_CHECKING:
    from .desk import DeskHub

log = logging.getLogger("callcenter.desk")

DeskLegState = Literal["new", "ringing", "answering", "answered", "ended"]
UNREACHABLE, REJECTED, CANCELED, LOST = 480, 603, 487, 408


class DeskLeg:
    role: Literal["agent"] = "agent"

    def __init__(self, hub: DeskHub, *, call_id: str, reservation: str, agent: str, queue: str = "",
                 caller: str = "", variables: dict[str, Any] | None = None, ring_timeout_s: float = 0.0,
                 callback: bool = False, on_answered: Callable[[DeskLeg], None],
                 on_ended: Callable[[DeskLeg, LegEnd], None], record: bool = True) -> None:
        self.hub = hub
        self.call_id = call_id
        self.reservation = reservation
        self.agent = agent
        self.queue = queue
        self.caller = caller
        self.variables = dict(variables or {})
        self.ring_timeout_s = ring_timeout_s
        self.callback = callback
        self._on_answered = on_answered
        self._on_ended = on_ended
        self._record = record
        self.state: DeskLegState = "new"
        self.handle: int | None = None          # the bridge port, once answered
        self.caller_handle: int | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.connected_at: float | None = None
        self.recording: Path | None = None
        self.recording_started: float | None = None
        self.end_by = ""                        # who ends it: caller, transfer... (set before cancel())
        self.lost_at: float | None = None       # unhealthy since (grace running)
        self.media: DeskMedia | None = None
        self._offer_msg: p.Offer | None = None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._grace: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()
        self.end: LegEnd | None = None       # how it ended (set before on_ended is called)
        hub.legs[reservation] = self

    # -- the ACD's side ------------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=f"leg-desk-{self.call_id[:8]}")
        return self._task

    def cancel(self, reason: str = "canceled") -> None:
        """Withdraw the offer, or end an answered leg (the caller hung up, a transfer)."""
        self._inbox.put_nowait(("cancel", reason))

    async def connect(self, caller_handle: int) -> None:
        """Bridge the browser to the caller's call; record the agent's side (the port's far end)."""
        if self.handle is None or self.state != "answered":
            raise EngineError(f"desk leg of {self.agent} is {self.state}: nothing to connect")
        port = self.handle
        if self._record:
            await self.start_recording()
        await self.hub.engine.bridge(caller_handle, port)
        self.caller_handle = caller_handle
        self.connected_at = time.time()
        self.hub.send_to_agent(self.agent, self.connected_message())

    async def start_recording(self) -> None:
        """Record the agent's side (the port's far end) from now on, if not yet: at the connect, or when
        a consultation becomes the caller's conversation (an attended transfer completed)."""
        if self.recording is not None or self.handle is None or self.state != "answered":
            return
        path = recfiles.fresh_leg_path(self.hub.data_dir / "recordings", self.call_id, "agent", datetime.now(UTC))
        try:
            await self.hub.engine.record(self.handle, str(path))
            self.recording, self.recording_started = path, time.time()
        except (CallGone, EngineStopped, EngineError, OSError) as exc:
            log.error("desk leg recording failed to start", extra={"call_id": self.call_id, "error": str(exc)})

    def connected_message(self) -> p.Connected:
        return p.Connected(call_id=self.call_id, started_at=self.connected_at or self.answered_at or self.started_at,
                           queue=self.queue, caller=self.caller)

    # -- the hub's side (messages from the desk, session changes) -------------------------------------
    def post(self, kind: str, data: Any = None) -> None:
        """``answer``, ``reject``, ``rtc_answer`` (sdp), ``hangup``, ``attached``, ``detached``."""
        self._inbox.put_nowait((kind, data))

    @property
    def offer_message(self) -> p.Offer | None:
        return self._offer_msg if self.state == "ringing" else None

    # -- the leg's task -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._follow()
        except Exception:
            log.exception("desk leg failed", extra={"call_id": self.call_id, "agent": self.agent})
            if self.state != "ended":
                await self._finish(500, "desk leg failed", local=True)
        finally:
            self._cancel_grace()
            self.hub.forget(self)
            self.done.set()

    async def _follow(self) -> None:
        if not self.hub.reachable(self.agent):
            await self._finish(UNREACHABLE, "the agent's desk is not connected", local=True)
            return
        customer = await self.hub.customer(self.caller)
        self._offer_msg = p.Offer(offer=self.reservation, call_id=self.call_id, queue=self.queue, caller=self.caller,
                                  customer=customer, variables=self.variables, ring_timeout_s=self.ring_timeout_s,
                                  callback=self.callback)
        if self.state == "new":
            self.state = "ringing"
        self.hub.send_to_agent(self.agent, self._offer_msg)
        while self.state != "ended":
            kind, data = await self._inbox.get()
            await self._handle(kind, data)

    async def _handle(self, kind: str, data: Any) -> None:
        if kind == "cancel":
            await self._cancelled(str(data))
        elif kind == "reject" and self.state in ("ringing", "answering"):
            await self._finish(REJECTED, "rejected at the desk", local=False)
        elif kind == "answer" and self.state == "ringing":
            await self._answer()
        elif kind == "rtc_answer" and self.media is not None:
            try:
                await self.media.accept_answer(str(data))
            except Exception as exc:
                log.warning("bad SDP answer from the desk", extra={"call_id": self.call_id, "error": str(exc)})
                self.hub.send_to_agent(self.agent, p.Error(code="bad_message", message=f"rtc_answer: {exc}"))
        elif kind == "peer":
            await self._peer(str(data))
        elif kind == "hangup" and self.state in ("answering", "answered"):
            self.end_by = "agent"
            await self._finish(200, "the agent hung up", local=False)
        elif kind in ("attached", "detached"):
            await self._session_changed(kind)
        elif kind == "grace":
            if self.lost_at is not None and self.state == "answered":
                self.hub.log_event("DESKLOST", self, grace_s=self.hub.grace_s, outcome="ended")
                self.end_by = "lost"
                await self._finish(LOST, f"the agent's desk did not come back within {self.hub.grace_s:g} s",
                                   local=False, lost=True)

    async def _answer(self) -> None:
        self.state = "answering"
        self.media = DeskMedia(self.hub.engine, label=f"desk-{self.agent}",
                               on_state=lambda s: self._inbox.put_nowait(("peer", s)))
        try:
            self.handle = await self.media.open()
            sdp = await self.media.offer()
        except (EngineError, EngineStopped, ImportError, OSError) as exc:
            log.error("desk audio could not be set up", extra={"call_id": self.call_id, "error": str(exc)})
            self.hub.send_to_agent(self.agent, p.Error(code="unavailable", message=f"no audio for the call: {exc}"))
            await self._finish(503, f"desk audio failed: {exc}", local=True)
            return
        self.hub.send_to_agent(self.agent, p.RtcOffer(call_id=self.call_id, sdp=sdp))

    async def _peer(self, state: str) -> None:
        if state == "connected" and self.state == "answering":
            self.state = "answered"
            self.answered_at = time.time()
            self._on_answered(self)
            return
        if self.state == "answered":
            self._check_health()
            if state in ("failed", "closed") and self.hub.reachable(self.agent):
                await self._renegotiate()

    async def _session_changed(self, kind: str) -> None:
        if self.state == "ringing" and kind == "detached":
            await self._finish(UNREACHABLE, "the agent's desk went away while ringing", local=True)
        elif self.state == "ringing" and self._offer_msg is not None:      # (a reconnect: offer again)
            self.hub.send_to_agent(self.agent, self._offer_msg)
        elif self.state == "answered":
            self._check_health()
            if kind == "attached":
                if self.connected_at is not None:
                    self.hub.send_to_agent(self.agent, self.connected_message())
                if self.media is not None and self.media.state in ("failed", "closed", "disconnected"):
                    await self._renegotiate()

    async def _renegotiate(self) -> None:
        if self.media is None:
            return
        try:
            sdp = await self.media.offer()
        except Exception as exc:
            log.error("desk audio renegotiation failed", extra={"call_id": self.call_id, "error": str(exc)})
            return
        log.info("desk audio offered again", extra={"call_id": self.call_id, "agent": self.agent})
        self.hub.send_to_agent(self.agent, p.RtcOffer(call_id=self.call_id, sdp=sdp))

    def _check_health(self) -> None:
        healthy = self.hub.reachable(self.agent) and self.media is not None and self.media.state == "connected"
        if healthy and self.lost_at is not None:
            self.hub.log_event("DESKRESUME", self, after_s=round(time.time() - self.lost_at, 3))
            self.lost_at = None
            self._cancel_grace()
        elif not healthy and self.lost_at is None:
            self.lost_at = time.time()
            self.hub.log_event("DESKLOST", self, grace_s=self.hub.grace_s, outcome="waiting")
            log.warning("desk agent's browser is gone: waiting for a reconnect",
                        extra={"call_id": self.call_id, "agent": self.agent, "grace_s": self.hub.grace_s})
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self.hub.grace_s, self._inbox.put_nowait, ("grace", None))

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    async def _cancelled(self, reason: str) -> None:
        if self.state in ("new", "ringing", "answering"):
            if self.state != "new":
                self.hub.send_to_agent(self.agent, p.OfferCanceled(offer=self.reservation, reason=reason))
            await self._finish(CANCELED, f"offer withdrawn: {reason}", local=True)
        elif self.state == "answered":
            self.end_by = self.end_by or "caller"
            await self._finish(200, f"ended by the {self.end_by}", local=True)

    async def _finish(self, status: int, reason: str, *, local: bool, lost: bool = False) -> None:
        if self.state == "ended":
            return
        answered = self.state == "answered"
        self.state = "ended"
        self._cancel_grace()
        recording = await self._close_media()
        if answered:
            self.hub.call_over(self)
            self.hub.send_to_agent(self.agent, p.CallEnded(call_id=self.call_id, by=self.end_by or "system",
                                                           wrap_up_s=self.hub.wrap_up_s(self.agent, self.queue)))
        end = LegEnd(status, reason, answered, local, recording, self.recording_started or self.started_at,
                     **({"lost": True} if lost else {}))
        self.end = end
        try:
            self._on_ended(self, end)
        except Exception:
            log.exception("desk leg end handler failed", extra={"call_id": self.call_id})

    async def _close_media(self) -> Path | None:
        recording = None
        if self.recording is not None and self.handle is not None:
            with contextlib.suppress(CallGone, EngineStopped, EngineError):
                await self.hub.engine.stop_recording(self.handle, str(self.recording))
            recording = self.recording if self.recording.exists() else None
        if self.media is not None:
            await self.media.close()
        return recording

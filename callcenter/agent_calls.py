"""The in-call controls behind the agent desk's messages (docs/desk.md), on the live ACD's calls.

The call is ``ctx.acd.connected_call(call_id)``: the caller's engine call and the agent's leg (a
SIP call, or a browser's bridge port: both are in the engine's call-id space). Only the agent on
the call may control it (supervisors may monitor any call, and wrap up any).

- hold: the two are unbridged and the caller hears hold music (the queue's, else [acd] hold_music)
  looped; resume stops it and bridges them again;
- mute: only the agent -> caller direction is cut (``Engine.disconnect``);
- dtmf: keys to the caller's far end as RFC 4733 telephone-events;
- blind transfer: ``queue:NAME`` -> ``ctx.acd.requeue(call_id, NAME, front=False)``; ``agent:ID``
  -> back into the call's queue for that agent (``requeue(..., agent=ID)``); a number or SIP URI
  allowed by ``[ivr] transfer_allow`` -> a REFER to the caller (``Engine.transfer``);
- attended transfer (callcenter/desk_consult.py): consult, then complete or cancel;
- monitor (supervisors, Asterisk ChanSpy's modes): the supervisor's own browser audio is a
  DeskMedia port; listen connects caller -> supervisor and agent -> supervisor, whisper adds
  supervisor -> agent, barge adds supervisor -> caller, off disconnects them all;
- wrap-up: a disposition and a note stored on the call's row (migration 008).

Every control writes an event row: HOLD, UNHOLD, MUTE, DTMF, TRANSFER, CONSULT, CONSULTCANCEL,
CONSULTFAIL, MONITOR, WRAPUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.driver import transfer_allowed
from voice.exceptions import CallGone, EngineError, EngineStopped

from . import desk_protocol as p
from .desk_consult import Consult, Consults
from .desk_media import DeskMedia
from .queue_call import music_files
from .storage.desk import WrapUpRepo

if TYPE_CHECKING:
    from .desk import DeskHub
    from .desk_session import DeskSession

log = logging.getLogger("callcenter.desk")

_NUMBER = re.compile(r"^\+?[0-9*#]{2,32}$")
_DISPOSITION = re.compile(r"^[\w.:/ -]{1,64}$")
MONITOR_LINKS = {"listen": ("caller>sup", "agent>sup"), "whisper": ("caller>sup", "agent>sup", "sup>agent"),
                 "barge": ("caller>sup", "agent>sup", "sup>agent", "sup>caller"), "off": ()}


@dataclass
class Monitor:
    session: DeskSession
    call_id: str
    mode: str
    media: DeskMedia
    links: set[tuple[int, int]] = field(default_factory=set)


@dataclass
class CallCtl:
    """What the desk changed on one connected call."""

    call_id: str
    agent: str
    caller: int
    agent_handle: int
    queue: str
    held: bool = False
    playback: int | None = None
    muted: bool = False
    consult: Consult | None = None
    monitors: dict[str, Monitor] = field(default_factory=dict)   # supervisor session key -> monitor


def target_uri(target: str) -> str | None:
    """A number -> ``tel:NUMBER``; a sip:/sips:/tel: URI as it is; anything else None."""
    t = target.strip()
    if _NUMBER.fullmatch(t):
        return f"tel:{t}"
    if t.lower().startswith(("sip:", "sips:", "tel:")):
        return t
    return None


class AgentCalls:
    def __init__(self, hub: DeskHub, *, transfer_allow: tuple[str, ...] = (), hold_music: Path | None = None) -> None:
        self.hub = hub
        self.transfer_allow = tuple(transfer_allow)
        self.hold_music = hold_music
        self.wrap_ups = WrapUpRepo(hub.db)
        self.ctls: dict[str, CallCtl] = {}
        self.consults = Consults(self)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def engine(self) -> Any:
        return self.hub.engine

    @property
    def acd(self) -> Any:
        acd = self.hub.ctx.acd
        if acd is None:
            raise p.DeskError("unavailable", "the ACD is not running")
        return acd

    # -- lookups -------------------------------------------------------------------------------------------
    def ctl(self, s: DeskSession, call_id: str, *, supervisor_ok: bool = False) -> CallCtl:
        cc = self.acd.connected_call(call_id)
        if cc is None:
            raise p.DeskError("not_found", f"no call {call_id!r} is connected to an agent")
        if cc.agent != s.agent and not (supervisor_ok and s.supervisor):
            raise p.DeskError("forbidden", f"call {call_id!r} is agent {cc.agent!r}'s, not this desk's")
        if cc.agent_handle is None:
            raise p.DeskError("conflict", f"call {call_id!r} has no agent leg yet")
        ctl = self.ctls.get(call_id)
        if ctl is None or ctl.agent != cc.agent or ctl.agent_handle != cc.agent_handle:
            old = ctl
            ctl = CallCtl(call_id, cc.agent, cc.caller_handle, cc.agent_handle, cc.queue)
            if old is not None:
                ctl.monitors = old.monitors
            self.ctls[call_id] = ctl
        return ctl

    def music(self, queue: str) -> Path:
        spec = getattr(self.hub.ctx.acd, "queues", {}).get(queue)
        source = Path(spec.hold_music) if spec is not None and spec.hold_music else (
            self.hold_music or Path(getattr(self.hub.ctx.acd, "hold_music", "/usr/share/asterisk/moh")))
        files = music_files(source)
        if not files:
            raise p.DeskError("unavailable", f"no hold music in {source}")
        return files[0]

    async def _engine(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except CallGone:
            raise p.DeskError("not_found", f"{what}: the call is gone") from None
        except (EngineError, EngineStopped) as exc:
            raise p.DeskError("failed", f"{what}: {exc}") from None

    def event(self, name: str, ctl: CallCtl, **data: Any) -> None:
        self.hub.log_event(name, call_id=ctl.call_id, queue=ctl.queue, agent=ctl.agent, **data)

    def send(self, ctl: CallCtl, msg: p.ServerMessage) -> None:
        self.hub.send_to_agent(ctl.agent, msg)

    # -- dispatch --------------------------------------------------------------------------------------------
    async def handle(self, s: DeskSession, msg: p.ClientMessage) -> None:
        if isinstance(msg, p.Hold):
            await self.hold(self.ctl(s, msg.call_id))
        elif isinstance(msg, p.ResumeCall):
            await self.unhold(self.ctl(s, msg.call_id))
        elif isinstance(msg, p.Mute):
            await self.mute(self.ctl(s, msg.call_id), msg.on)
        elif isinstance(msg, p.Dtmf):
            ctl = self.ctl(s, msg.call_id)
            await self._engine("dtmf", self.engine.send_dtmf(ctl.caller, msg.digits.upper(), "rfc4733"))
            self.event("DTMF", ctl, count=len(msg.digits))   # (the keys themselves may be a card number)
        elif isinstance(msg, p.Transfer):
            await self.transfer(s, self.ctl(s, msg.call_id), msg.target)
        elif isinstance(msg, p.Consult):
            await self.consults.start(s, self.ctl(s, msg.call_id), msg.target)
        elif isinstance(msg, p.CompleteTransfer):
            await self.consults.complete(self.ctl(s, msg.call_id))
        elif isinstance(msg, p.CancelTransfer):
            await self.consults.cancel(self.ctl(s, msg.call_id))
        elif isinstance(msg, p.WrapUp):
            await self.wrap_up(s, msg.call_id, msg.disposition, msg.note)
        elif isinstance(msg, p.Monitor):
            await self.monitor(s, msg.call_id, msg.mode)

    # -- hold, mute ------------------------------------------------------------------------------------------
    async def hold(self, ctl: CallCtl, *, quiet: bool = False) -> None:
        if not ctl.held:
            music = self.music(ctl.queue)
            await self._engine("hold", self.engine.unbridge(ctl.caller, ctl.agent_handle))
            ctl.held = True
            ctl.playback = await self._engine("hold music", self.engine.play(ctl.caller, str(music), loop=True))
            self.event("HOLD", ctl, music=str(music))
        if not quiet:
            self.send(ctl, p.Held(call_id=ctl.call_id, held=True))

    async def unhold(self, ctl: CallCtl, *, quiet: bool = False) -> None:
        if ctl.consult is not None and not quiet:
            raise p.DeskError("conflict", "the caller holds for a consultation: complete_transfer or cancel_transfer")
        if ctl.held:
            await self._stop_music(ctl)
            await self._engine("resume", self.engine.bridge(ctl.caller, ctl.agent_handle))
            if ctl.muted:
                await self._engine("mute", self.engine.disconnect(ctl.agent_handle, ctl.caller))
            ctl.held = False
            self.event("UNHOLD", ctl)
        self.send(ctl, p.Held(call_id=ctl.call_id, held=False))

    async def _stop_music(self, ctl: CallCtl) -> None:
        playback, ctl.playback = ctl.playback, None
        if playback is not None:
            with contextlib.suppress(CallGone, EngineError, EngineStopped):
                await self.engine.stop_playback(ctl.caller, playback)

    async def mute(self, ctl: CallCtl, on: bool) -> None:
        if on != ctl.muted:
            if not ctl.held:
                if on:
                    await self._engine("mute", self.engine.disconnect(ctl.agent_handle, ctl.caller))
                else:
                    await self._engine("unmute", self.engine.connect(ctl.agent_handle, ctl.caller))
            ctl.muted = on
            self.event("MUTE", ctl, on=on)
        self.send(ctl, p.Muted(call_id=ctl.call_id, muted=on))

    # -- hang-up of a SIP agent's call (a desk leg hangs up itself) ---------------------------------------------
    async def hangup(self, s: DeskSession, call_id: str) -> None:
        ctl = self.ctl(s, call_id)
        await self._engine("hangup", self.engine.hangup(ctl.agent_handle, 200))

    # -- blind transfer ------------------------------------------------------------------------------------
    async def transfer(self, s: DeskSession, ctl: CallCtl, target: str) -> None:
        if ctl.consult is not None:
            raise p.DeskError("conflict", "a consultation is going on: complete_transfer or cancel_transfer first")
        acd = self.acd
        kind, _, name = target.partition(":")
        if kind == "queue":
            if name not in getattr(acd, "queues", {}):
                raise p.DeskError("not_found", f"no queue {name!r}")
            await self._requeue(ctl, target, name, front=False)
        elif kind == "agent":
            await self._to_agent(ctl, target, name)
        else:
            uri = target_uri(target)
            if uri is None:
                raise p.DeskError("bad_target", f"transfer target {target[:80]!r}: use queue:NAME, agent:ID, "
                                                "a number or a SIP URI")
            if not transfer_allowed(uri, self.transfer_allow):
                raise p.DeskError("not_allowed", f"{uri[:80]} is not allowed by [ivr] transfer_allow")
            if ctl.held:
                await self._stop_music(ctl)
                await self._engine("transfer", self.engine.bridge(ctl.caller, ctl.agent_handle))
                ctl.held = False
            await self._engine("transfer", self.engine.transfer(ctl.caller, uri))
            self.event("TRANSFER", ctl, target=uri, kind="blind", via="refer")
            self.send(ctl, p.TransferState(call_id=ctl.call_id, state="completed", target=uri,
                                           reason="REFER sent: the caller's side places the call"))

    async def _to_agent(self, ctl: CallCtl, target: str, agent: str) -> None:
        acd = self.acd
        if agent == ctl.agent:
            raise p.DeskError("bad_target", "that is this call's own agent")
        if agent not in getattr(acd, "agents", {}):
            raise p.DeskError("not_found", f"no agent {agent!r}")
        if acd.agent_status(agent).get("state") == "logged_out":
            raise p.DeskError("conflict", f"agent {agent!r} is logged out")
        await self._requeue(ctl, target, ctl.queue, front=True, agent=agent)

    async def _requeue(self, ctl: CallCtl, target: str, queue: str, *, front: bool, **extra: Any) -> None:
        await self._stop_music(ctl)
        leg = self.hub.leg_by_call(ctl.agent, ctl.call_id)
        if leg is not None:
            leg.end_by = "transfer"
        try:
            await self.acd.requeue(ctl.call_id, queue, front=front, **extra)
        except Exception as exc:
            if leg is not None:
                leg.end_by = ""
            raise p.DeskError("failed", f"transfer to {target}: {exc}") from None
        self.event("TRANSFER", ctl, target=target, kind="blind", via="requeue")
        self.send(ctl, p.TransferState(call_id=ctl.call_id, state="completed", target=target))

    def transfer_result(self, call_id: str, ok: bool, status: int, reason: str = "") -> None:
        """A REFER's outcome (voice.events.TransferDone of the caller's call): done -> the caller's call
        is hung up (the ACD completes it); failed -> the agent still has the caller, and is told."""
        ctl = self.ctls.get(call_id)
        if ctl is None:
            return
        self.event("TRANSFERDONE", ctl, ok=ok, status=status, reason=reason)
        self.send(ctl, p.TransferState(call_id=call_id, state="completed" if ok else "failed", target="",
                                       reason=reason or str(status)))
        if ok:
            self.spawn(self._hangup_quietly(ctl.caller), f"refer-done-{call_id[:8]}")

    async def _hangup_quietly(self, handle: int) -> None:
        with contextlib.suppress(CallGone, EngineError, EngineStopped):
            await self.engine.hangup(handle, 200)

    # -- wrap-up ---------------------------------------------------------------------------------------------
    async def wrap_up(self, s: DeskSession, call_id: str, disposition: str, note: str) -> None:
        if not _DISPOSITION.fullmatch(disposition):
            raise p.DeskError("bad_message", "wrap_up: a disposition is 1-64 letters, digits, spaces or _.:/-")
        row = await self.wrap_ups.call(call_id)
        if row is None:
            raise p.DeskError("not_found", f"no call {call_id!r}")
        if row["agent"] != s.agent and not s.supervisor:
            raise p.DeskError("forbidden", f"call {call_id!r} was not this desk's agent's")
        await self.wrap_ups.save(call_id, disposition, note)
        self.hub.log_event("WRAPUP", call_id=call_id, queue=row["queue"] or "", agent=row["agent"] or "",
                           disposition=disposition, note_chars=len(note), by=s.user.name)
        agent = row["agent"] or ""
        status = self.hub._status(agent) if agent else None
        if status is not None and s.agent == agent:
            from .desk import _agent_state

            s.send(_agent_state(agent, status))

    # -- monitor (supervisors) -----------------------------------------------------------------------------
    async def monitor(self, s: DeskSession, call_id: str, mode: str) -> None:
        ctl = self.ctl(s, call_id, supervisor_ok=True)
        mon = ctl.monitors.get(s.key)
        if mode == "off":
            if mon is not None:
                await self._end_monitor(ctl, mon)
            else:
                s.send(p.MonitorState(call_id=call_id, mode="off"))
            return
        if mon is None:
            media = DeskMedia(self.engine, label=f"monitor-{s.user.name}", on_state=lambda _state: None)
            try:
                await media.open()
                sdp = await media.offer()
            except Exception as exc:
                await media.close()
                raise p.DeskError("unavailable", f"no audio for monitoring: {exc}") from None
            mon = Monitor(s, call_id, mode, media)
            ctl.monitors[s.key] = mon
            s.send(p.RtcOffer(call_id=call_id, sdp=sdp))
        await self._links(ctl, mon, mode)
        mon.mode = mode
        self.hub.log_event("MONITOR", call_id=call_id, queue=ctl.queue, agent=ctl.agent, mode=mode,
                           supervisor=s.user.name)
        s.send(p.MonitorState(call_id=call_id, mode=mode))  # type: ignore[arg-type]

    async def _links(self, ctl: CallCtl, mon: Monitor, mode: str) -> None:
        sup = mon.media.port
        assert sup is not None
        ends = {"caller": ctl.caller, "agent": ctl.agent_handle, "sup": sup}
        wanted = {(ends[a], ends[b]) for a, b in (link.split(">") for link in MONITOR_LINKS[mode])}
        for src, dst in sorted(mon.links - wanted):
            with contextlib.suppress(CallGone, EngineError, EngineStopped):
                await self.engine.disconnect(src, dst)
        for src, dst in sorted(wanted - mon.links):
            await self._engine("monitor", self.engine.connect(src, dst))
        mon.links = wanted

    async def monitor_answer(self, s: DeskSession, call_id: str, sdp: str) -> None:
        ctl = self.ctls.get(call_id)
        mon = ctl.monitors.get(s.key) if ctl is not None else None
        if mon is None:
            raise p.DeskError("not_found", f"no call {call_id!r} is waiting for this desk's rtc_answer")
        try:
            await mon.media.accept_answer(sdp)
        except Exception as exc:
            raise p.DeskError("bad_message", f"rtc_answer: {exc}") from None

    async def _end_monitor(self, ctl: CallCtl, mon: Monitor, *, tell: bool = True) -> None:
        ctl.monitors.pop(mon.session.key, None)
        for src, dst in mon.links:
            with contextlib.suppress(CallGone, EngineError, EngineStopped):
                await self.engine.disconnect(src, dst)
        mon.links.clear()
        await mon.media.close()
        self.hub.log_event("MONITOR", call_id=ctl.call_id, queue=ctl.queue, agent=ctl.agent, mode="off",
                           supervisor=mon.session.user.name)
        if tell:
            mon.session.send(p.MonitorState(call_id=ctl.call_id, mode="off"))

    # -- sessions and calls coming and going ------------------------------------------------------------------
    def attached(self, s: DeskSession) -> None:
        """A connection (re)attached: tell it what the desk had changed on its calls."""
        for ctl in self.ctls.values():
            if ctl.agent == s.agent:
                if ctl.held:
                    s.send(p.Held(call_id=ctl.call_id, held=True))
                if ctl.muted:
                    s.send(p.Muted(call_id=ctl.call_id, muted=True))
                if ctl.consult is not None:
                    s.send(p.TransferState(call_id=ctl.call_id, state="consulting", target=ctl.consult.target))
            mon = ctl.monitors.get(s.key)
            if mon is not None:
                s.send(p.MonitorState(call_id=ctl.call_id, mode=mon.mode))  # type: ignore[arg-type]
                if mon.media.state != "connected":
                    self.spawn(self._reoffer(s, ctl.call_id, mon), "monitor-reoffer")
        if s.agent is not None and self.hub.ctx.acd is not None:   # a SIP agent's calls have no desk leg
            for cc in self.hub.ctx.acd.calls_of(s.agent):
                if self.hub.leg_by_call(s.agent, cc.call_id) is None:
                    s.send(p.Connected(call_id=cc.call_id, started_at=cc.connected_at, queue=cc.queue,
                                       caller=cc.contact.caller))

    async def _reoffer(self, s: DeskSession, call_id: str, mon: Monitor) -> None:
        with contextlib.suppress(Exception):
            s.send(p.RtcOffer(call_id=call_id, sdp=await mon.media.offer()))

    def session_ended(self, s: DeskSession) -> None:
        """The session is over (no reconnect): its monitors stop."""
        for ctl in list(self.ctls.values()):
            mon = ctl.monitors.get(s.key)
            if mon is not None:
                self.spawn(self._end_monitor(ctl, mon, tell=False), "monitor-end")

    def call_gone(self, call_id: str) -> None:
        """The call is over, or no longer this agent's: consultations, music and monitors stop."""
        ctl = self.ctls.pop(call_id, None)
        if ctl is None:
            return
        if ctl.consult is not None and not ctl.consult.completed:
            ctl.consult.leg.cancel()
            self.consults._disengage(ctl.consult.engaged)   # (its end does too: idempotent)
        if ctl.playback is not None:
            self.spawn(self._stop_music(ctl), "hold-music-stop")
        for mon in list(ctl.monitors.values()):
            self.spawn(self._end_monitor(ctl, mon), "monitor-end")

    def spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for call_id in list(self.ctls):
            self.call_gone(call_id)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)

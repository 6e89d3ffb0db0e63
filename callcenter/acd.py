"""The ACD's driver: the routing core (routing.Router) wired to calls, agents' phones and the database.

The router decides (who gets which caller, when an offer times out, when wrap-up ends); this
service carries its effects out and feeds it what happens:

- a flow's ``queue`` node -> ``enqueue``: the caller hears hold music and announcements
  (callcenter/queue_call.py) while the router looks for an agent;
- ``Offer`` -> the agent's softphone is called (callcenter/agent_leg.py); the agent answering
  -> ``Router.accepted`` -> ``Connect``: caller and agent are bridged, the agent's leg recorded;
  a rejection, a busy phone or no answer -> the next agent; the caller hanging up while an agent
  rings -> ``CancelOffer``: the ringing stops at once;
- either side hanging up -> ``Router.completed`` -> wrap-up; the other side is hung up;
- "press 1" -> a callback request: a row in ``callbacks`` (a restart loses none) and the
  contact keeps its place; when an agent answers for it, the customer is dialled through the
  trunk (callcenter/trunk.py: nothing dials out without one);
- a connected caller changing hands (a transfer back into a queue, an attended transfer, a lost
  browser agent) is callcenter/acd_transfers.py.

Every ``Log`` effect becomes a row of the events table, every state change an event on the live
bus. One timer task calls ``Router.advance`` at the router's next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ivr import actions as act
from ivr import events as ivr_ev
from ivr.prompts import PromptCache
from routing import effects as fx
from routing.exceptions import RoutingError
from routing.model import AgentSpec, Contact, QueueSpec
from routing.router import Router
from voice.engine import Engine
from voice.events import DtmfReceived, EngineEvent, PlaybackDone
from voice.exceptions import CallGone, EngineError, EngineStopped

from .acd_callbacks import Callbacks
from .acd_control import StateAction
from .acd_store import AcdStore
from .acd_transfers import Transfers
from .agent_leg import LegEnd, OutboundLeg
from .exceptions import UnknownAgent
from .queue_call import QueueCall, music_files
from .storage.db import iso_utc
from .storage.repos import CallRepo, EventRepo
from .trunk import Trunk

if TYPE_CHECKING:
    from .desk_leg import DeskLeg

log = logging.getLogger("callcenter.acd")
AgentLeg = Union[OutboundLeg, "DeskLeg"]  # how an agent is reached: their softphone, or the browser desk
LEG_END_WAIT_S = 5.0  # a hung-up agent leg's recording is final within this


@dataclass
class CallerRef:
    """What the ACD holds of a caller's call while it waits or talks."""

    call_id: str
    handle: int                                   # the engine's id of the caller's call
    caller_number: str
    post: Callable[[ivr_ev.Event], None]          # into the call's inbox (the flow's QueueResult)
    control: Any = None                           # callcenter.call_control.EngineCallControl
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Departure:
    """A caller who had been handed to the ACD left: their queue and the agent leg's end, if connected."""

    queue: str
    agent_leg: LegEnd | None
    earlier: tuple[LegEnd, ...] = ()              # agents' legs before a transfer, recorded (recordings/segments.py)


@dataclass
class _Held:
    ref: CallerRef
    queue: str
    contact: Contact
    variables: dict[str, Any]
    qc: QueueCall | None = None
    state: str = "waiting"                        # waiting | offered | connected | callback | done
    leg: AgentLeg | None = None                   # the agent's, once connected
    leg_end: LegEnd | None = None
    connected_at: float | None = None
    flow_done: bool = False                       # the flow heard "answered": it is over
    earlier: list[Any] = field(default_factory=list)   # agent legs the caller talked to before (transfers)
    routed: bool = True                           # the router follows the conversation (not after a hand-over
                                                  # to a number: callcenter/acd_transfers.py)


@dataclass(frozen=True, slots=True)
class ConnectedCall:
    """A caller talking to an agent, for the agent's in-call controls (hold, transfer, monitor...)."""

    call_id: str
    caller_handle: int                            # the caller's engine call id
    agent: str
    agent_handle: int | None                      # the agent's leg: an engine call id, or a bridge port (browser)
    queue: str
    contact: Contact
    variables: dict[str, Any]
    connected_at: float


class AcdService(Transfers):
    def __init__(self, engine: Engine, store: AcdStore, events: EventRepo, calls: CallRepo, prompts: PromptCache,
                 data_dir: Path, *, hold_music: Path, trunk: Trunk, callback_attempts: int = 3,
                 callback_retry_s: float = 120.0, bus: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.store = store
        self.events = events
        self.calls = calls
        self.prompts = prompts
        self.data_dir = data_dir
        self.hold_music = hold_music
        self.trunk = trunk
        self.callback_attempts = callback_attempts
        self.callback_retry_s = callback_retry_s
        self.bus = bus
        self.clock = clock
        self.router = Router()
        self.desk: Any = None                             # callcenter.desk.DeskHub: browser agents (set by the server)
        self.queues: dict[str, QueueSpec] = {}
        self.agents: dict[str, AgentSpec] = {}
        self._held: dict[str, _Held] = {}                 # contact id (call id) -> a caller on the line
        self.callbacks = Callbacks(self)                  # callback requests (callcenter/acd_callbacks.py)
        self._offers: dict[str, AgentLeg] = {}            # reservation -> the ringing agent leg
        self._pending: deque[fx.Effect] = deque()
        self._applying = False
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._voicemails: dict[str, Any] = {}             # call id -> a queue_voicemail.QueueVoicemail
        self._engaged: dict[str, str] = {}                # consultation id -> the agent consulted (acd_transfers)

    # -- start and stop --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load queues and agents, restore agents' requested states and the open callback requests."""
        now = self.clock()
        for queue in await self.store.queues():
            self.queues[queue.name] = queue
            self._apply(self.router.set_queue(queue, now))
        for agent, state, reason in await self.store.agents():
            self.agents[agent.id] = agent
            self._apply(self.router.set_agent(agent, now))
            if state in ("available", "break"):
                self._apply(self.router.login(agent.id, now))
                if state == "break":
                    self._apply(self.router.pause(agent.id, reason or "break", now))
        restored = 0
        for contact, number in await self.store.open_callbacks():
            if contact.queue not in self.queues:
                log.warning("callback for a queue that no longer exists", extra={"call_id": contact.id,
                                                                                  "queue": contact.queue})
                continue
            self.callbacks.restore(contact, number)
            restored += 1
        if restored:
            log.info("callback requests restored", extra={"count": restored})

    async def run(self) -> None:
        """Advance the router at its deadlines until cancelled."""
        while True:
            deadline = self.router.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                # (asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that arrives
                # as the wake-up does, and this loop would then never stop)
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            self._apply(self.router.advance(self.clock()))
            self._wake.clear()  # (that wake-up was our own: the next deadline is read above anyway)
            await asyncio.sleep(0)  # an event set already returns without yielding: never starve the loop

    async def stop(self) -> None:
        for held in self._held.values():
            if held.qc is not None:
                held.qc.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the caller's side --------------------------------------------------------------------------------
    async def enqueue(self, ref: CallerRef, action: act.Enqueue) -> ivr_ev.QueueOutcome | None:
        """A flow's queue node: None while the caller waits (the QueueResult is posted later)."""
        now = self.clock()
        spec = self.queues.get(action.queue)
        if spec is None or not self._staffed(spec):
            why = "no such queue" if spec is None else "no agent who could take the call is logged in"
            self.events.append_nowait("ENTERQUEUE", ref.call_id, queue=action.queue, caller=ref.caller_number,
                                      priority=action.priority, skills=action.skills, position=0, callback=False)
            self.events.append_nowait("EXITEMPTY", ref.call_id, queue=action.queue, reason=why)
            log.info("queue has no agents", extra={"call_id": ref.call_id, "queue": action.queue, "why": why})
            return "no_agents"
        profile = await self.store.customer(ref.caller_number) if ref.caller_number else None
        contact = Contact(id=ref.call_id, queue=spec.name, entered_at=now, skills=dict(action.skills),
                          priority=action.priority, vip_tier=int(profile.get("vip_tier", 0)) if profile else 0,
                          preferred_agent=str(profile.get("last_agent", "")) if profile else "",
                          caller=ref.caller_number)
        held = _Held(ref, spec.name, contact, dict(action.variables))
        self._held[ref.call_id] = held
        self.calls.update_nowait(ref.call_id, queue=spec.name)
        self._publish("queue_joined", call_id=ref.call_id, queue=spec.name, caller=ref.caller_number)
        self._apply(self.router.enqueue(contact, now))
        await self._hold(held)
        return None

    async def _hold(self, held: _Held) -> None:
        """The caller waits: hold music and announcements until an agent answers."""
        if held.state not in ("waiting", "offered"):
            return
        spec = self.queues[held.queue]
        ref = held.ref
        held.qc = QueueCall(
            self.engine, self.prompts, handle=ref.handle, call_id=ref.call_id, queue=spec.name,
            music=music_files(Path(spec.hold_music) if spec.hold_music else self.hold_music),
            announce_every_s=spec.announce_every_s, announce_position=spec.announce_position,
            announce_wait=spec.announce_wait, position=lambda: self.router.position(ref.call_id),
            estimated_wait=lambda: self.router.estimated_wait(ref.call_id, self.clock()),
            callback_offered=lambda: self._callback_possible(held), language=ref.language,
            on_announce=lambda text, position: self.events.append_nowait(
                "ANNOUNCE", ref.call_id, queue=held.queue, position=position, text=text))
        await held.qc.start()

    def caller_event(self, call_id: str, event: EngineEvent) -> bool:
        """A waiting caller's playback ended or key was pressed: True if the ACD took it."""
        vm = self._voicemails.get(call_id)
        if vm is not None and isinstance(event, DtmfReceived):
            vm.digit(event.digit)
            return True
        held = self._held.get(call_id)
        if held is None or held.qc is None:
            return False
        if isinstance(event, PlaybackDone):
            return held.qc.playback_done(event.playback)
        if isinstance(event, DtmfReceived) and held.state in ("waiting", "offered"):
            if event.digit == "1" and self._callback_possible(held):
                self._spawn(self.callbacks.request(held), f"callback-{call_id[:8]}")
            return True
        return False

    async def caller_gone(self, call_id: str) -> Departure | None:
        """The caller's call ended: abandon, or complete the conversation (None: never queued)."""
        held = self._held.pop(call_id, None)
        if held is None:
            return None
        last = await self._caller_left(held, call_id)
        return Departure(held.queue, last, await self._earlier_legs(held))

    async def _earlier_legs(self, held: _Held) -> tuple[LegEnd, ...]:
        """The ends of the agents' legs before the last one that have a recording (a transferred caller)."""
        out = []
        for leg in held.earlier:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(leg.done.wait(), LEG_END_WAIT_S)
            end = getattr(leg, "end", None)
            if end is not None and end.recording is not None:
                out.append(end)
        return tuple(out)

    async def _caller_left(self, held: _Held, call_id: str) -> LegEnd | None:
        if held.qc is not None:
            held.qc.close()
        now = self.clock()
        if held.state in ("waiting", "offered"):
            held.state = "done"
            self._apply(self.router.abandon(call_id, now))
            return None
        if held.leg is not None:
            if held.state == "connected":  # the caller hung up first
                held.state = "done"
                if held.routed:
                    self._apply(self.router.completed(call_id, now, by="caller"))
                held.leg.cancel()
            with contextlib.suppress(TimeoutError):  # its recording is final once the leg has ended
                await asyncio.wait_for(held.leg.done.wait(), LEG_END_WAIT_S)
            # (the leg's end reaches _leg_ended after the caller left _held: the leg keeps it too)
            return held.leg_end or getattr(held.leg, "end", None)
        return None

    def _staffed(self, spec: QueueSpec) -> bool:
        return self.router.logged_in(spec.name) > 0

    def _callback_possible(self, held: _Held) -> bool:
        spec = self.queues.get(held.queue)
        return bool(spec is not None and spec.callback and held.state == "waiting"
                    and self.trunk.allowed(held.ref.caller_number))

    # -- effects -------------------------------------------------------------------------------------------
    def _apply(self, effects: list[fx.Effect]) -> None:
        """Carry out effects in order; effects that their handling causes queue behind them."""
        self._pending.extend(effects)
        if self._applying:
            return
        self._applying = True
        try:
            while self._pending:
                effect = self._pending.popleft()
                try:
                    self._do(effect)
                except Exception:
                    log.exception("ACD effect failed", extra={"effect": effect.type})
        finally:
            self._applying = False
        self._wake.set()

    def _do(self, e: fx.Effect) -> None:
        if isinstance(e, fx.Log):
            self.events.append_nowait(e.event, e.contact, queue=e.queue, agent=e.agent, at=iso_utc(e.at), **e.data)
        elif isinstance(e, fx.StateChanged):
            self._publish("agent_state", agent=e.agent, state=e.state, previous=e.previous, reason=e.reason)
        elif isinstance(e, fx.Offer):
            self._offer(e)
        elif isinstance(e, fx.CancelOffer):
            leg = self._offers.pop(e.reservation, None)
            if leg is not None:
                leg.cancel()
            held = self._held.get(e.contact)
            if held is not None and held.state == "offered" and not self._offered(e.contact):
                held.state = "waiting"
                if held.qc is not None:
                    held.qc.state = "waiting"
            self._publish("offer_canceled", call_id=e.contact, agent=e.agent, reason=e.reason)
        elif isinstance(e, fx.Connect):
            self._connect(e)
        elif isinstance(e, fx.Exit):
            self._exit(e)

    def _offered(self, contact: str) -> bool:
        return any(leg.call_id == contact for leg in self._offers.values())

    def _offer(self, e: fx.Offer) -> None:
        spec = self.agents.get(e.agent)
        if spec is None or not spec.uri:
            log.warning("agent cannot be reached: no URI", extra={"agent": e.agent, "call_id": e.contact})
            self._apply(self.router.rejected(e.reservation, self.clock(), "unreachable"))
            return
        held = self._held.get(e.contact)
        leg: AgentLeg
        if spec.uri == "desk" or spec.uri.startswith("desk:"):  # a browser agent (callcenter/desk_leg.py)
            if self.desk is None:
                log.warning("agent works at the desk, which is not running", extra={"agent": e.agent})
                self._apply(self.router.rejected(e.reservation, self.clock(), "unreachable"))
                return
            from .desk_leg import DeskLeg

            queue = self.queues.get(e.queue)
            leg = DeskLeg(self.desk, call_id=e.contact, reservation=e.reservation, agent=e.agent, queue=e.queue,
                          caller=held.ref.caller_number if held else "",
                          variables=held.variables if held else {},
                          ring_timeout_s=queue.ring_timeout_s if queue else 0.0, callback=e.callback,
                          on_answered=self._leg_answered, on_ended=self._leg_ended, record=not e.callback)
        else:
            leg = OutboundLeg(self.engine, uri=spec.uri, role="agent", call_id=e.contact, reservation=e.reservation,
                              agent=e.agent, data_dir=self.data_dir, from_uri=self.trunk.from_uri,
                              on_answered=self._leg_answered, on_ended=self._leg_ended, record=not e.callback)
        self._offers[e.reservation] = leg
        if held is not None and held.state == "waiting":
            held.state = "offered"
            if held.qc is not None:
                held.qc.state = "offered"
        self._track(leg.start())
        self._publish("offer", call_id=e.contact, agent=e.agent, queue=e.queue, callback=e.callback,
                      caller=(held.ref.caller_number if held else ""),
                      variables=(held.variables if held else {}))

    def _connect(self, e: fx.Connect) -> None:
        leg = self._offers.pop(e.reservation, None)
        if leg is None:
            log.error("connect without a ringing leg", extra={"call_id": e.contact, "agent": e.agent})
            return
        self._publish("connected", call_id=e.contact, agent=e.agent, queue=e.queue, callback=e.callback)
        if e.callback:
            self.callbacks.connect(e, leg)
            return
        held = self._held.get(e.contact)
        if held is None:  # the caller is gone already (the router hears of it in caller_gone)
            leg.cancel()
            return
        held.state = "connected"
        held.leg = leg
        held.connected_at = self.clock()
        self.calls.update_nowait(e.contact, agent=e.agent)
        self._spawn(self._bridge(held, leg), f"bridge-{e.contact[:8]}")
        if held.ref.caller_number:
            self._spawn(self.store.set_last_agent(held.ref.caller_number, e.agent), "last-agent")

    async def _bridge(self, held: _Held, leg: AgentLeg) -> None:
        if held.qc is not None:
            held.qc.state = "connected"
            await held.qc.stop()
        try:
            assert leg.handle is not None
            connect = getattr(leg, "connect", None)  # a desk leg bridges (and records) the browser itself
            if connect is not None:
                await connect(held.ref.handle)
            else:
                await self.engine.bridge(held.ref.handle, leg.handle)
        except (CallGone, EngineStopped):
            return
        except EngineError as exc:
            log.error("bridge failed", extra={"call_id": held.ref.call_id, "agent": leg.agent, "error": str(exc)})
            leg.cancel()
            with contextlib.suppress(CallGone, EngineStopped):
                await self.engine.hangup(held.ref.handle, 200)

    def _exit(self, e: fx.Exit) -> None:
        self._publish("queue_left", call_id=e.contact, queue=e.queue, outcome=e.outcome, reason=e.reason,
                      agent=e.agent)
        if self.callbacks.exited(e):
            return
        held = self._held.get(e.contact)
        if held is None:
            return
        now = self.clock()
        if e.outcome == "answered":
            if not held.flow_done:
                held.flow_done = True
                held.ref.post(ivr_ev.QueueResult(now=now, outcome="answered"))
            return
        held.state = "done"
        self._held.pop(e.contact, None)
        if held.qc is not None:
            self._spawn(_silence(held.qc), f"leave-{e.contact[:8]}")
        if e.outcome == "overflowed":
            if held.flow_done:  # (requeued after its flow ended: nowhere to go back to)
                self._spawn(self._hangup(held.ref.handle), f"hangup-{e.contact[:8]}")
            else:
                self._overflow(held, e)

    def _overflow(self, held: _Held, e: fx.Exit) -> None:
        now = self.clock()
        if e.target == "callback" and self.trunk.allowed(held.ref.caller_number):
            self._spawn(self.callbacks.overflow(held), f"overflow-cb-{e.contact[:8]}")
            return
        if e.target.startswith("voicemail:") and held.ref.control is not None:
            from .queue_voicemail import QueueVoicemail

            vm = QueueVoicemail(self.engine, self.prompts, handle=held.ref.handle, call_id=e.contact,
                                mailbox=e.target.split(":", 1)[1], control=held.ref.control,
                                language=held.ref.language)
            self._voicemails[e.contact] = vm
            self._spawn(self._leave_message(vm), f"voicemail-{e.contact[:8]}")
            return
        held.ref.post(ivr_ev.QueueResult(now=now, outcome="overflowed"))  # the flow's `next`

    async def _leave_message(self, vm: Any) -> None:
        try:
            await vm.run()
        finally:
            self._voicemails.pop(vm.call_id, None)

    # -- legs ------------------------------------------------------------------------------------------------
    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _leg_answered(self, leg: AgentLeg) -> None:
        now = self.clock()
        if self._offers.get(leg.reservation) is not leg:
            leg.cancel()  # answered after the offer was withdrawn (timeout, taken, abandoned)
            return
        try:
            self._apply(self.router.accepted(leg.reservation, now))
        except RoutingError as exc:
            log.info("offer no longer stands", extra={"call_id": leg.call_id, "agent": leg.agent, "why": str(exc)})
            self._offers.pop(leg.reservation, None)
            leg.cancel()

    def _leg_ended(self, leg: AgentLeg, end: LegEnd) -> None:
        now = self.clock()
        if self._offers.get(leg.reservation) is leg:  # never answered (or answered, not yet accepted)
            self._offers.pop(leg.reservation)
            reason = ("busy" if end.status in (486, 600) else "rejected" if end.status in (403, 603)
                      else "unreachable")
            self._apply(self.router.rejected(leg.reservation, now, reason))
            return
        held = self._held.get(leg.call_id)
        if held is not None and held.leg is leg:
            held.leg_end = end
            if held.state == "connected" and end.lost:  # a browser agent vanished: the caller is not dropped
                self._spawn(self._requeue_lost(held), f"requeue-{leg.call_id[:8]}")
            elif held.state == "connected":  # the agent hung up first: the caller's call ends too
                held.state = "done"
                self._apply(self.router.completed(leg.call_id, now, by="agent"))
                self._spawn(self._hangup(held.ref.handle), f"hangup-{leg.call_id[:8]}")
            return
        self.callbacks.agent_leg_ended(leg, end)

    async def _hangup(self, handle: int) -> None:
        with contextlib.suppress(CallGone, EngineStopped, EngineError):
            await self.engine.hangup(handle, 200)

    # -- AcdControl ----------------------------------------------------------------------------------------
    async def reload_agent(self, agent_id: str) -> None:
        now = self.clock()
        found = await self.store.agent(agent_id)
        if found is None:
            if agent_id in self.agents:
                del self.agents[agent_id]
                self._apply(self.router.remove_agent(agent_id, now))
            return
        spec, _, _ = found
        self.agents[spec.id] = spec
        self._apply(self.router.set_agent(spec, now))

    async def reload_queue(self, name: str) -> None:
        now = self.clock()
        spec = await self.store.queue(name)
        if spec is None:
            if name in self.queues:
                del self.queues[name]
                self._apply(self.router.remove_queue(name, now))
            return
        self.queues[name] = spec
        self._apply(self.router.set_queue(spec, now))

    async def set_state(self, agent_id: str, action: StateAction, reason: str = "", *, by: str = "") -> dict[str, Any]:
        if agent_id not in self.agents:
            raise UnknownAgent(f"no agent {agent_id!r}")
        now = self.clock()
        if action == "login":
            self._apply(self.router.login(agent_id, now))
        elif action == "logout":
            self._apply(self.router.logout(agent_id, now))
        elif action == "pause":
            self._apply(self.router.pause(agent_id, reason or "break", now))
        elif action == "resume":
            self._apply(self.router.resume(agent_id, now))
        requested = {"login": "available", "logout": "logged_out", "pause": "break", "resume": "available"}[action]
        await self.store.set_requested_state(agent_id, requested, reason if action == "pause" else "")
        log.info("agent state requested", extra={"agent": agent_id, "action": action, "reason": reason, "by": by})
        return self.agent_status(agent_id)

    def agent_status(self, agent_id: str) -> dict[str, Any]:
        if agent_id not in self.agents:
            raise UnknownAgent(f"no agent {agent_id!r}")
        return dict(self.router.agent_status(agent_id))

    def snapshot(self) -> dict[str, Any]:
        return dict(self.router.snapshot(self.clock()))

    # -- for the agent's in-call controls -------------------------------------------------------------------
    def connected_call(self, call_id: str) -> ConnectedCall | None:
        held = self._held.get(call_id)
        if held is None or held.state != "connected" or held.leg is None:
            return None
        return ConnectedCall(call_id, held.ref.handle, held.leg.agent, held.leg.handle, held.queue, held.contact,
                             held.variables, held.connected_at or 0.0)

    def calls_of(self, agent_id: str) -> list[ConnectedCall]:
        return [c for cid in list(self._held) if (c := self.connected_call(cid)) is not None and c.agent == agent_id]

    # -- live events ---------------------------------------------------------------------------------------
    def _publish(self, type_: str, **data: Any) -> None:
        if self.bus is not None:
            self.bus.publish({"type": type_, "at": self.clock(), **data})


async def _silence(qc: QueueCall) -> None:
    await qc.stop()
    qc.close()

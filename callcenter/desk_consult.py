"""Attended transfer from the agent desk: consult a third party, then complete or cancel.

``consult``: the caller is put on hold (hold music), and the agent's leg is bridged to the target
once it answers: another agent (their desk, through a DeskLeg, or their SIP phone), or a number /
SIP URI allowed by ``[ivr] transfer_allow`` dialled with ``Engine.dial``. ``complete``: the caller
is bridged to the target and the ACD is told that the call is the target's now
(``AcdService.hand_over(call_id, leg)``, which ends the first agent's leg and returns the handler
for the target leg's end); ``cancel`` (or the target failing or hanging up): the consultation
ends and the caller is bridged back to the agent.

An agent consulted is on a call for the router from the moment their phone or desk rings
(``AcdService.engage``): no caller is offered to them meanwhile; a consultation that ends without a
transfer frees them (``disengage``, no wrap-up); a completed one makes the caller theirs, with the
queue's wrap-up when it ends. A consultation rings for at most ``CONSULT_RING_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ivr.driver import transfer_allowed
from routing.exceptions import RoutingError
from voice.exceptions import CallGone, EngineError, EngineStopped

from . import desk_protocol as p
from .agent_leg import LegEnd, OutboundLeg

if TYPE_CHECKING:
    from .agent_calls import AgentCalls, CallCtl
    from .desk_session import DeskSession

log = logging.getLogger("callcenter.desk")
CONSULT_RING_S = 30.0


@dataclass
class Consult:
    target: str
    leg: Any                                     # OutboundLeg or DeskLeg
    answered: bool = False
    completed: bool = False
    canceled: bool = False
    forward: Callable[[Any, LegEnd], None] | None = None   # after hand_over: the ACD's handler of the leg's end
    engaged: str = ""                            # the consulted agent's engagement (the leg's reservation)
    timer: asyncio.TimerHandle | None = None


class Consults:
    def __init__(self, calls: AgentCalls) -> None:
        self.calls = calls
        self.handed: dict[Any, Callable[[Any, LegEnd], None]] = {}   # target leg -> the ACD's handler of its end

    async def start(self, s: DeskSession, ctl: CallCtl, target: str) -> None:
        if ctl.consult is not None:
            raise p.DeskError("conflict", f"a consultation with {ctl.consult.target} is going on")
        leg = self._leg(ctl, target)
        engaged = self._engage(ctl, target, leg)
        try:
            await self.calls.hold(ctl)
        except BaseException:
            self._disengage(engaged)
            raise
        consult = Consult(target, leg, engaged=engaged)
        ctl.consult = consult
        self.calls._tasks.add(leg.start())
        consult.timer = asyncio.get_running_loop().call_later(CONSULT_RING_S, self._ring_timeout, consult)
        self.calls.event("CONSULT", ctl, target=target)
        self.calls.send(ctl, p.TransferState(call_id=ctl.call_id, state="consulting", target=target,
                                             reason="ringing"))

    def _leg(self, ctl: CallCtl, target: str) -> Any:
        from .desk import is_desk_uri

        calls, hub = self.calls, self.calls.hub
        acd = calls.acd
        rid = f"consult-{uuid.uuid4().hex[:12]}"
        kind, _, name = target.partition(":")
        answered: Callable[[Any], None] = lambda leg: self._answered(ctl, leg)   # noqa: E731
        ended: Callable[[Any, LegEnd], None] = lambda leg, end: self._ended(ctl, leg, end)   # noqa: E731
        from_uri = getattr(getattr(acd, "trunk", None), "from_uri", "")
        if kind == "queue":
            raise p.DeskError("bad_target", "consult a person (agent:ID, a number or a SIP URI); "
                                            "a queue takes a blind transfer")
        if kind == "agent":
            spec = getattr(acd, "agents", {}).get(name)
            if spec is None:
                raise p.DeskError("not_found", f"no agent {name!r}")
            if name == ctl.agent:
                raise p.DeskError("bad_target", "that is this call's own agent")
            state = acd.agent_status(name).get("state")
            if state != "available":
                raise p.DeskError("conflict", f"agent {name!r} is {state}, not available")
            if is_desk_uri(spec.uri):
                cc = acd.connected_call(ctl.call_id)
                return hub.leg(call_id=ctl.call_id, reservation=rid, agent=name, queue=ctl.queue,
                               caller=cc.contact.caller if cc else "", variables=cc.variables if cc else {},
                               ring_timeout_s=CONSULT_RING_S, on_answered=answered, on_ended=ended, record=False)
            if not spec.uri:
                raise p.DeskError("not_allowed", f"agent {name!r} has no phone and no desk")
            return OutboundLeg(calls.engine, uri=spec.uri, role="agent", call_id=ctl.call_id, reservation=rid,
                               agent=name, data_dir=hub.data_dir, from_uri=from_uri, on_answered=answered,
                               on_ended=ended, record=False)
        from .agent_calls import target_uri

        uri = target_uri(target)
        if uri is None:
            raise p.DeskError("bad_target", f"consult target {target[:80]!r}: use agent:ID, a number or a SIP URI")
        if not transfer_allowed(uri, calls.transfer_allow):
            raise p.DeskError("not_allowed", f"{uri[:80]} is not allowed by [ivr] transfer_allow")
        return OutboundLeg(calls.engine, uri=uri, role="customer", call_id=ctl.call_id, reservation=rid,
                           agent=ctl.agent, data_dir=hub.data_dir, from_uri=from_uri, on_answered=answered,
                           on_ended=ended, record=False)

    def _engage(self, ctl: CallCtl, target: str, leg: Any) -> str:
        """A consulted agent is busy for the router while consulted; "" for a number or URI."""
        kind, _, name = target.partition(":")
        if kind != "agent":
            return ""
        try:
            self.calls.acd.engage(name, leg.reservation, ctl.call_id)
        except RoutingError as exc:        # taken by a caller (or paused) since the check above
            raise p.DeskError("conflict", f"agent {name!r} cannot be consulted now: {exc}") from None
        return str(leg.reservation)

    def _disengage(self, key: str) -> None:
        if key:
            self.calls.acd.disengage(key)

    def _ring_timeout(self, consult: Consult) -> None:
        consult.timer = None
        if not consult.answered and not consult.canceled:
            consult.leg.cancel()

    def _answered(self, ctl: CallCtl, leg: Any) -> None:
        consult = ctl.consult
        if consult is None or consult.leg is not leg or consult.canceled:
            leg.cancel()
            return
        consult.answered = True
        if consult.timer is not None:
            consult.timer.cancel()
        self.calls.spawn(self._bridge(ctl, consult), f"consult-{ctl.call_id[:8]}")

    async def _bridge(self, ctl: CallCtl, consult: Consult) -> None:
        leg = consult.leg
        try:
            if hasattr(leg, "connect"):         # a desk: its port
                await leg.connect(ctl.agent_handle)
            else:
                await self.calls.engine.bridge(ctl.agent_handle, leg.handle)
        except (CallGone, EngineError, EngineStopped) as exc:
            log.warning("consultation bridge failed", extra={"call_id": ctl.call_id, "error": str(exc)})
            leg.cancel()
            return
        self.calls.send(ctl, p.TransferState(call_id=ctl.call_id, state="consulting", target=consult.target,
                                             reason="answered"))

    def _ended(self, ctl: CallCtl, leg: Any, end: LegEnd) -> None:
        consult = ctl.consult if ctl.consult is not None and ctl.consult.leg is leg else None
        if consult is None:   # completed (handed over: the ACD's now) or canceled
            forward = self.handed.pop(leg, None)
            if forward is not None:
                forward(leg, end)
            return
        ctl.consult = None
        if consult.timer is not None:
            consult.timer.cancel()
        self._disengage(consult.engaged)
        state: Literal["canceled", "failed"] = "canceled" if consult.answered else "failed"
        self.calls.event("CONSULTFAIL", ctl, target=consult.target, status=end.status, reason=end.reason)
        self.calls.send(ctl, p.TransferState(call_id=ctl.call_id, state=state, target=consult.target,
                                             reason=end.reason))
        self.calls.spawn(self._back(ctl), f"consult-back-{ctl.call_id[:8]}")

    async def _back(self, ctl: CallCtl) -> None:
        try:
            await self.calls.unhold(ctl, quiet=True)
        except p.DeskError as exc:
            log.warning("caller could not be taken off hold", extra={"call_id": ctl.call_id, "error": exc.message})

    async def complete(self, ctl: CallCtl) -> None:
        consult = ctl.consult
        if consult is None:
            raise p.DeskError("conflict", "no consultation is going on")
        if not consult.answered or consult.leg.handle is None:
            raise p.DeskError("conflict", f"{consult.target} has not answered yet")
        engine, target = self.calls.engine, consult.leg.handle
        await self.calls._stop_music(ctl)
        with contextlib.suppress(CallGone, EngineError, EngineStopped):
            await engine.unbridge(ctl.agent_handle, target)
        await self.calls._engine("complete_transfer", engine.bridge(ctl.caller, target))
        mine = self.calls.hub.leg_by_call(ctl.agent, ctl.call_id)
        if mine is not None:
            mine.end_by = "transfer"
        try:
            forward = self.calls.acd.hand_over(ctl.call_id, consult.leg)
        except Exception as exc:
            if mine is not None:
                mine.end_by = ""
            with contextlib.suppress(CallGone, EngineError, EngineStopped):
                await engine.unbridge(ctl.caller, target)
                await engine.bridge(ctl.agent_handle, target)
            raise p.DeskError("failed", f"complete_transfer: {exc}") from None
        consult.completed, consult.forward = True, forward
        self.handed[consult.leg] = forward
        ctl.consult, ctl.held = None, False
        self.calls.event("TRANSFER", ctl, target=consult.target, kind="attended")
        self.calls.send(ctl, p.TransferState(call_id=ctl.call_id, state="completed", target=consult.target))
        self.calls.call_gone(ctl.call_id)
        start_recording = getattr(consult.leg, "start_recording", None)
        if start_recording is not None:   # the consultation was not recorded; the caller's conversation is
            await start_recording()       # (last: the leg's end, if it comes meanwhile, goes to the ACD)

    async def cancel(self, ctl: CallCtl) -> None:
        consult = ctl.consult
        if consult is None:
            raise p.DeskError("conflict", "no consultation is going on")
        consult.canceled = True
        ctl.consult = None
        if consult.timer is not None:
            consult.timer.cancel()
        consult.leg.cancel()
        self._disengage(consult.engaged)
        if consult.answered and consult.leg.handle is not None:
            with contextlib.suppress(CallGone, EngineError, EngineStopped):
                await self.calls.engine.unbridge(ctl.agent_handle, consult.leg.handle)
        self.calls.event("CONSULTCANCEL", ctl, target=consult.target)
        self.calls.send(ctl, p.TransferState(call_id=ctl.call_id, state="canceled", target=consult.target))
        await self.calls.unhold(ctl, quiet=True)

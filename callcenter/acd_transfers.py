"""A connected caller changing hands: back into a queue, or over to the party an agent consulted.

A mixin of ``AcdService`` (callcenter/acd.py holds the state it uses):

- ``requeue``: a blind transfer to a queue or an agent, or a browser agent lost mid-call: the
  agent goes to wrap-up and the caller waits again (at the front, when asked);
- ``engage`` / ``disengage``: an agent consulted by another (the desk's attended transfer,
  callcenter/desk_consult.py) is on a call for the router, so no caller is offered to them
  meanwhile (routing/engagements.py); a consultation that ends without a transfer frees them;
- ``hand_over``: the attended transfer completed: the first agent's leg ends (wrap-up) and the
  caller's conversation is the consulted agent's (``Router.take_over``), ended like any other
  (their wrap-up follows); a consulted number or SIP URI is outside the router's books.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from routing.exceptions import RoutingError

from .agent_leg import LegEnd
from .exceptions import UnknownAgent, UnknownQueue

if TYPE_CHECKING:
    from routing import effects as fx
    from routing.model import QueueSpec
    from routing.router import Router

    from .acd import AgentLeg, _Held
    from .storage.repos import CallRepo, EventRepo

log = logging.getLogger("callcenter.acd")


class Transfers:
    router: Router
    queues: dict[str, QueueSpec]
    events: EventRepo
    calls: CallRepo
    clock: Callable[[], float]
    _held: dict[str, _Held]
    _engaged: dict[str, str]                   # engagement key -> the consulted agent

    if TYPE_CHECKING:
        def _apply(self, effects: list[fx.Effect]) -> None: ...
        async def _hold(self, held: _Held) -> None: ...
        async def _hangup(self, handle: int) -> None: ...
        def _spawn(self, coro: Any, name: str) -> None: ...

    async def requeue(self, call_id: str, queue: str, *, front: bool = False, reason: str = "transfer",
                      agent: str = "") -> None:
        """Take a connected caller from their agent back into ``queue`` (a blind transfer to a queue or to an
        agent, or a browser agent lost mid-call). ``front``: ahead of everyone (their old place and the top
        priority); ``agent``: offered to that agent first if they are free (else whoever the queue picks).
        The agent goes to wrap-up; their leg ends. UnknownQueue for a queue that does not exist."""
        held = self._held.get(call_id)
        spec = self.queues.get(queue)
        if spec is None:
            raise UnknownQueue(f"no queue {queue!r}")
        if held is None or held.state != "connected" or held.leg is None:
            raise UnknownAgent(f"call {call_id} is not connected to an agent")
        now = self.clock()
        leg, held.leg = held.leg, None
        held.earlier.append(leg)
        held.state = "waiting"
        if held.routed:
            self._apply(self.router.completed(call_id, now, by="agent"))
        held.routed = True
        leg.cancel()
        self.events.append_nowait("REQUEUE", call_id, queue=queue, agent=leg.agent, reason=reason, front=front,
                                  **{"from": held.queue})
        old = held.contact
        held.contact = replace(old, queue=queue, entered_at=old.entered_at if front else now,
                               priority=100 if front else old.priority,
                               preferred_agent=agent or old.preferred_agent)
        held.queue = queue
        self.calls.update_nowait(call_id, queue=queue)
        self._apply(self.router.enqueue(held.contact, now))
        await self._hold(held)

    async def _requeue_lost(self, held: _Held) -> None:
        spec = self.queues.get(held.queue)
        target = held.queue
        if spec is not None and spec.overflow.startswith("queue:"):
            target = spec.overflow.split(":", 1)[1] if spec.overflow.split(":", 1)[1] in self.queues else held.queue
        try:
            await self.requeue(held.ref.call_id, target, front=target == held.queue, reason="agent_lost")
        except Exception:
            log.exception("could not requeue the caller of a lost agent", extra={"call_id": held.ref.call_id})
            await self._hangup(held.ref.handle)

    # -- attended transfers ------------------------------------------------------------------------------
    def engage(self, agent_id: str, key: str, call_id: str) -> None:
        """``agent_id`` is being consulted about ``call_id`` (``key``: the consultation's id): they count as
        on a call from now on. RoutingError (InvalidTransition) if they are not available."""
        held = self._held.get(call_id)
        queue = held.queue if held is not None else ""
        self._apply(self.router.engage(agent_id, key, queue, self.clock(), about=call_id))
        self._engaged[key] = agent_id

    def disengage(self, key: str) -> None:
        """The consultation ``key`` ended without a transfer: the agent is free (no wrap-up). Idempotent."""
        if self._engaged.pop(key, None) is None:
            return
        try:
            self._apply(self.router.disengage(key, self.clock()))
        except RoutingError as exc:
            log.warning("consultation was no longer engaged", extra={"key": key, "why": str(exc)})

    def hand_over(self, call_id: str, leg: AgentLeg) -> Callable[[AgentLeg, LegEnd], None]:
        """An attended transfer completed: the caller now talks to ``leg`` (the consulted party, already
        bridged by the desk). The first agent's leg ends and they go to wrap-up; the caller's call ends when
        ``leg`` does (the returned function is that leg's end handler). A consulted agent (engaged under the
        leg's reservation) takes the conversation over in the router: their wrap-up follows its end."""
        held = self._held.get(call_id)
        if held is None or held.state != "connected" or held.leg is None:
            raise UnknownAgent(f"call {call_id} is not connected to an agent")
        now = self.clock()
        old, held.leg, held.leg_end = held.leg, leg, None
        held.earlier.append(old)
        if held.routed:
            self._apply(self.router.completed(call_id, now, by="agent"))
        held.routed = False
        key = getattr(leg, "reservation", "")
        if self._engaged.pop(key, None) is not None:
            try:
                self._apply(self.router.take_over(key, call_id, now))
                held.routed = True
            except RoutingError as exc:
                log.warning("transfer target not taken over", extra={"call_id": call_id, "why": str(exc)})
        old.cancel()
        self.calls.update_nowait(call_id, agent=leg.agent or old.agent)
        return self._handed_leg_ended

    def _handed_leg_ended(self, leg: AgentLeg, end: LegEnd) -> None:
        held = self._held.get(leg.call_id)
        if held is None or held.leg is not leg:
            return
        held.leg_end = end
        if held.state == "connected" and end.lost:  # the target's browser vanished: the caller is not dropped
            self._spawn(self._requeue_lost(held), f"requeue-{leg.call_id[:8]}")
        elif held.state == "connected":  # the transfer target hung up: the caller's call ends too
            held.state = "done"
            if held.routed:
                self._apply(self.router.completed(leg.call_id, self.clock(), by="agent"))
            self._spawn(self._hangup(held.ref.handle), f"hangup-{leg.call_id[:8]}")

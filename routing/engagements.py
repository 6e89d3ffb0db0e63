"""Conversations the router did not route: an agent consulted, a transfer an agent takes over.

An attended transfer (the agent desk's consult / complete) puts a second agent on the phone
without an offer. If the router did not know, it would offer that agent the next caller while
they talk. ``engage`` marks the agent on a call (``on_call``, logged ENGAGE) under a key of the
driver's choosing (the consultation's id); ``disengage`` ends it without wrap-up or handle time
(DISENGAGE: the consultation was canceled or failed); ``take_over`` makes it the agent's call
with a contact (the transfer completed: the first agent's call was completed just before), so
``completed(contact)`` ends it with the queue's wrap-up. Its completion is logged COMPLETETRANSFER
(with ``by``), not COMPLETECALLER/AGENT: the queue's figures count the contact's routed
conversation once (docs/metrics.md), while the second agent's time shows in their states.

A mixin of ``Router`` (routing/router.py holds the state it uses); sans-I/O like the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .agents import AgentRec
from .effects import Effect, Log
from .exceptions import DuplicateContact, InvalidTransition, UnknownContact
from .model import AgentState
from .waiting import Waiting

Out = list[Effect]


@dataclass(slots=True)
class Call:
    """An agent's conversation the router follows until ``completed`` (or ``disengage``)."""

    agent: str
    queue: str
    entered_at: float
    connected_at: float
    callback: bool
    kind: str = "routed"            # "routed" (an offer accepted) | "engaged" | "taken_over"
    about: str = ""                 # an engagement: the contact it concerns (its log rows name it)


class Engagements:
    """``engage`` / ``disengage`` / ``take_over`` (see the module docstring)."""

    _agents: dict[str, AgentRec]
    _contacts: dict[str, Waiting]
    _calls: dict[str, Call]

    if TYPE_CHECKING:
        def _agent(self, agent_id: str) -> AgentRec: ...
        def _set_state(self, rec: AgentRec, state: AgentState, reason: str, now: float, out: Out) -> None: ...
        def _apply_pending(self, rec: AgentRec, now: float, out: Out) -> bool: ...
        def _touch_agent(self, rec: AgentRec) -> None: ...
        def _settle(self, now: float, out: Out) -> None: ...

    def engage(self, agent_id: str, key: str, queue: str, now: float, kind: str = "consult",
               about: str = "") -> list[Effect]:
        """``agent_id`` is on a call the router did not offer (``key``: the driver's id for it; ``queue``
        and ``about``: the queue and contact it concerns, named in the log rows). Only an available agent
        with nothing pending can be engaged (InvalidTransition otherwise: ringing, on a call, in wrap-up,
        on a break, logged out)."""
        rec = self._agent(agent_id)
        if not isinstance(key, str) or not key:
            raise InvalidTransition(f"an engagement needs a non-empty key, not {key!r}")
        if key in self._calls or key in self._contacts:
            raise DuplicateContact(f"{key!r} is already in the ACD")
        if rec.state != "available" or rec.pending or rec.offers:
            state = f"{rec.state} ({rec.reason})" if rec.reason else rec.state
            raise InvalidTransition(f"agent {agent_id!r} is {state}, not available")
        out: Out = []
        rec.call, rec.call_queue = key, queue
        self._calls[key] = Call(rec.id, queue, now, now, False, kind="engaged", about=about or key)
        out.append(Log("ENGAGE", now, about or key, queue, rec.id, {"kind": kind, "engagement": key}))
        self._set_state(rec, "on_call", "", now, out)
        return out

    def disengage(self, key: str, now: float) -> list[Effect]:
        """The engagement ``key`` ended without becoming the agent's call: no wrap-up, no handle time; the
        agent is available again (or takes a pause or logout requested meanwhile)."""
        call = self._engaged(key)
        del self._calls[key]
        rec = self._agents[call.agent]
        out: Out = [Log("DISENGAGE", now, call.about, call.queue, rec.id,
                        {"engagement": key, "talk_s": now - call.connected_at})]
        rec.call = rec.call_queue = ""
        if not self._apply_pending(rec, now, out):
            self._set_state(rec, "available", "", now, out)
            self._touch_agent(rec)
        self._settle(now, out)
        return out

    def take_over(self, key: str, contact_id: str, now: float) -> list[Effect]:
        """The engagement ``key`` is now the agent's call with ``contact_id`` (an attended transfer completed;
        the contact's first agent was ``completed`` before): ``completed(contact_id, ...)`` ends it."""
        call = self._engaged(key)
        if contact_id in self._calls or contact_id in self._contacts:
            raise DuplicateContact(f"contact {contact_id!r} is still in the ACD: complete its call first")
        del self._calls[key]
        self._calls[contact_id] = Call(call.agent, call.queue, now, now, False, kind="taken_over")
        rec = self._agents[call.agent]
        rec.call = contact_id
        return [Log("TAKEOVER", now, contact_id, call.queue, rec.id, {"engagement": key})]

    def _engaged(self, key: str) -> Call:
        call = self._calls.get(key)
        if call is None or call.kind != "engaged":
            raise UnknownContact(f"no engagement {key!r} (ended, taken over, or never begun)")
        return call

"""Agents' state changes inside the router: each one an effect, the free indexes kept in step.

``_set_state`` is the only way an agent's state changes: it moves the queue counts, emits
``StateChanged`` and an ``AGENTSTATE`` row, and lists or unlists the agent in the free indexes
(``_sync_free``: listed iff they may take an offer). Around it: a logout that releases the
contacts held for the agent, a pause or logout asked during a call applied when it ends
(``_apply_pending``), the end of ringing, and wrap-up (its timer, its end).

A mixin of ``Router`` (routing/router.py holds the state it uses); sans-I/O like the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .agents import AgentRec
from .effects import Effect, Log, StateChanged
from .model import AgentState
from .reservations import Timers

if TYPE_CHECKING:
    from .waiting import QueueLine, Waiting

Out = list[Effect]


class AgentStates:
    _agents: dict[str, AgentRec]
    _queues: dict[str, QueueLine]
    _free: dict[str, AgentRec]
    _held: dict[str, dict[str, Waiting]]
    _touched_agents: dict[str, AgentRec]
    _timers: Timers

    if TYPE_CHECKING:
        def _touch_agent(self, rec: AgentRec) -> None: ...
        def _touch_contact(self, w: Waiting) -> None: ...
        def _unhold(self, w: Waiting) -> None: ...
        def _relist(self, w: Waiting) -> None: ...

    def _set_state(self, rec: AgentRec, state: AgentState, reason: str, now: float, out: Out) -> None:
        previous = rec.state
        if previous == state and rec.reason == reason:
            return
        for q in rec.queues:
            counts = self._queues[q].counts
            counts[previous] -= 1
            counts[state] += 1
        rec.state, rec.reason, rec.since = state, reason, now
        out.append(StateChanged(rec.id, state, previous, reason, now))
        out.append(Log("AGENTSTATE", now, agent=rec.id, data={"state": state, "previous": previous,
                                                               "reason": reason}))
        self._sync_free(rec)

    def _sync_free(self, rec: AgentRec) -> None:
        """List the agent in the free indexes iff they may take an offer."""
        if rec.has_capacity() and self._agents.get(rec.id) is rec:
            if not rec.free:
                rec.free = True
                rec.free_epoch += 1
                self._free[rec.id] = rec
                for q in rec.queues:
                    self._queues[q].free.add(rec)
        elif rec.free:
            self._unfree(rec)

    def _unfree(self, rec: AgentRec) -> None:
        if rec.free:
            rec.free = False
            self._free.pop(rec.id, None)
            for q in rec.queues:
                self._queues[q].free.discard(rec)

    def _logout_now(self, rec: AgentRec, now: float, out: Out) -> None:
        out.append(Log("AGENTLOGOFF", now, agent=rec.id))
        self._set_state(rec, "logged_out", "", now, out)
        for w in list(self._held.get(rec.id, {}).values()):      # no longer worth waiting for
            self._unhold(w)
            w.phase = "waiting"
            self._relist(w)
            self._touch_contact(w)

    def _delete_agent(self, rec: AgentRec) -> None:
        self._unfree(rec)
        for q in rec.queues:
            self._queues[q].counts[rec.state] -= 1
        del self._agents[rec.id]
        self._touched_agents.pop(rec.id, None)

    def _apply_pending(self, rec: AgentRec, now: float, out: Out) -> bool:
        """The call (or the ringing) is over: carry out a pending pause or logout. Whether there was one."""
        pending, reason = rec.pending, rec.pending_reason
        if not pending:
            return False
        rec.pending = rec.pending_reason = ""
        if pending == "break":
            out.append(Log("PAUSE", now, agent=rec.id, data={"reason": reason, "auto": False}))
            self._set_state(rec, "break", reason, now, out)
        else:
            self._logout_now(rec, now, out)
            if pending == "removed":
                self._delete_agent(rec)
        return True

    def _after_ringing(self, rec: AgentRec, now: float, out: Out, pause_reason: str | None = None) -> None:
        """The agent's last offer is over without a call."""
        if self._apply_pending(rec, now, out):
            return
        if pause_reason is not None:
            out.append(Log("PAUSE", now, agent=rec.id, data={"reason": pause_reason, "auto": True}))
            self._set_state(rec, "break", pause_reason, now, out)
        else:
            self._set_state(rec, "available", "", now, out)
            self._touch_agent(rec)

    def _start_wrap(self, rec: AgentRec, wrap: float, now: float, out: Out) -> None:
        rec.idle_since = now
        if wrap > 0:
            rec.wrap_until = now + wrap
            self._set_state(rec, "wrap_up", "", now, out)
            self._timers.add(rec.wrap_until, "wrap", rec.id)
        else:
            self._end_wrap(rec, now, out)

    def _end_wrap(self, rec: AgentRec, now: float, out: Out) -> None:
        rec.wrap_until, rec.call, rec.call_queue = None, "", ""
        if not self._apply_pending(rec, now, out):
            self._set_state(rec, "available", "", now, out)
            self._touch_agent(rec)

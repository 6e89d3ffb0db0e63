"""The ACD core: who waits where, who is free, who rings for whom. Sans-I/O: ``now`` is an argument.

``Router`` takes configuration (``set_queue``, ``set_agent``), agent actions, contacts and
offer answers, and returns the effects to carry out (routing/effects.py), in order. It never
reads a clock: the driver calls ``advance(now)`` at ``next_deadline()``. The random strategies
draw from the injected ``random.Random``.

Every operation ends in ``_settle``: contacts that became offerable are given to the best free
agent by their queue's strategy, then agents who became free take the best contact they may
serve (highest queue priority, then the line's order). So after each call no free agent and
offerable contact that match are left apart (the exceptions, a just-refused pairing and the
preferred-agent window, are in docs/routing.md). The semantics are written down there; the
invariants are checked by ``routing.testing.check_invariants`` after every step of the
property tests.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from typing import Any

from .agent_states import AgentStates
from .agents import AgentRec, check_agent, check_skills, meets
from .effects import CancelOffer, Connect, Effect, Exit, Log, Offer
from .engagements import Call, Engagements
from .estimate import HANDLE_WINDOW, estimated_wait
from .exceptions import (
    DuplicateContact,
    InvalidSpec,
    InvalidTransition,
    UnknownAgent,
    UnknownContact,
    UnknownQueue,
    UnknownReservation,
)
from .model import AgentSpec, Contact, QueueSpec
from .reservations import Reservation, Timers
from .strategies import Dispatch, FreeIndex
from .waiting import Entry, Lines, QueueLine, Waiting, check_queue

Out = list[Effect]
_AGENT_WENT = frozenset({"busy", "logged_out", "paused"})   # cancel reasons after which the contact waits again


class Router(Lines, Dispatch, AgentStates, Engagements):
    """Agents, queues, waiting contacts and offers in memory (see the module docstring).

    The contact-side machinery (admission, escalation, max wait, heaps) is ``waiting.Lines``;
    the pairing of agents and contacts is ``strategies.Dispatch``; conversations it did not route
    (consultations, transfers taken over) are ``engagements.Engagements``; agents' state changes
    (free indexes, wrap-up, pending pauses and logouts) are ``agent_states.AgentStates``; this class
    holds the state, the public API and offers."""

    def __init__(self, *, rng: random.Random | None = None, handle_window: int = HANDLE_WINDOW) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._window = handle_window
        self._agents: dict[str, AgentRec] = {}
        self._queues: dict[str, QueueLine] = {}
        self._contacts: dict[str, Waiting] = {}
        self._res: dict[str, Reservation] = {}
        self._calls: dict[str, Call] = {}                 # contact -> the bridged call (until completed)
        self._free: dict[str, AgentRec] = {}               # every agent with capacity
        self._held: dict[str, dict[str, Waiting]] = {}     # preferred agent -> contacts kept for them
        self._widened: dict[str, dict[str, list[Entry]]] = {}   # added queue -> own queue -> heap
        self._relaxed_queues: set[str] = set()
        self._seq = itertools.count()
        self._res_seq = itertools.count(1)
        self._timers = Timers(self._timer_valid)
        self._touched_agents: dict[str, AgentRec] = {}
        self._touched_contacts: dict[str, Waiting] = {}
        self._avoid: dict[str, set[str]] = {}              # agent -> contacts they just let go

    # -- configuration ---------------------------------------------------------------------------
    def set_queue(self, spec: QueueSpec, now: float) -> list[Effect]:
        check_queue(spec)
        old = self._queues.get(spec.name)
        free = FreeIndex(spec.strategy, spec.skills, self._rng)
        line = QueueLine(spec, free, self._window)
        if old is not None:
            free.last = old.free.last
            line.members = old.members
            line.handle_times.extend(old.handle_times)
        self._queues[spec.name] = line
        for rec in self._agents.values():
            inside = meets(rec.spec.skills, spec.skills)
            rec.queues = rec.queues | {spec.name} if inside else rec.queues - {spec.name}
            if inside:
                line.counts[rec.state] += 1
                if rec.free:
                    free.add(rec)
                self._touch_agent(rec)
        for w in line.members.values():
            w.step = min(w.step, len(line.steps))
            line.prepare(w)
            self._schedule(w, line)
            self._relist(w)
            self._touch_contact(w)
        line.reorder()
        out: Out = []
        self._settle(now, out)
        return out

    def remove_queue(self, name: str, now: float) -> list[Effect]:
        line = self._line(name)
        out: Out = []
        for w in sorted(line.members.values(), key=lambda w: w.key):
            self._cancel_all(w, "overflowed", now, out)
            out.append(Log("EXITEMPTY", now, w.id, name, data={"reason": "queue_removed"}))
            self._detach(w)
            out.append(Exit(w.id, name, "overflowed", reason="queue_removed"))
        for rec in self._agents.values():
            if name in rec.queues:
                rec.queues = rec.queues - {name}
        del self._queues[name]
        self._widened.pop(name, None)
        self._relaxed_queues.discard(name)
        self._settle(now, out)
        return out

    def set_agent(self, spec: AgentSpec, now: float) -> list[Effect]:
        check_agent(spec)
        rec = self._agents.get(spec.id)
        if rec is None:
            rec = self._agents[spec.id] = AgentRec(spec, since=now, idle_since=now)
        else:
            self._unfree(rec)
            for q in rec.queues:
                self._queues[q].counts[rec.state] -= 1
            rec.spec = spec
            if rec.pending == "removed":
                rec.pending = ""
        rec.queues = frozenset(q for q, line in self._queues.items() if meets(spec.skills, line.spec.skills))
        for q in rec.queues:
            self._queues[q].counts[rec.state] += 1
        self._touch_agent(rec)
        out: Out = []
        self._settle(now, out)
        return out

    def remove_agent(self, agent_id: str, now: float) -> list[Effect]:
        rec = self._agent(agent_id)
        out: Out = []
        if rec.state in ("on_call", "wrap_up"):
            rec.pending, rec.pending_reason = "removed", ""
            return out
        if rec.state == "reserved":
            rec.pending = "removed"
            for rid in list(rec.offers):
                self._cancel(self._res[rid], "logged_out", now, out)   # the last one applies the removal
        else:
            if rec.state != "logged_out":
                self._logout_now(rec, now, out)
            self._delete_agent(rec)
        self._settle(now, out)
        return out

    # -- agent state ------------------------------------------------------------------------------
    def login(self, agent_id: str, now: float) -> list[Effect]:
        rec = self._agent(agent_id)
        out: Out = []
        if rec.state != "logged_out":
            if rec.pending in ("logged_out", "break"):     # logging in again cancels a pending logout or pause
                rec.pending = rec.pending_reason = ""
                self._touch_agent(rec)
                self._settle(now, out)
            return out
        rec.idle_since, rec.calls, rec.no_answer = now, 0, 0
        out.append(Log("AGENTLOGIN", now, agent=rec.id))
        self._set_state(rec, "available", "", now, out)
        self._touch_agent(rec)
        self._settle(now, out)
        return out

    def logout(self, agent_id: str, now: float) -> list[Effect]:
        rec = self._agent(agent_id)
        out: Out = []
        if rec.state in ("reserved", "on_call", "wrap_up"):
            if rec.pending != "removed":
                rec.pending, rec.pending_reason = "logged_out", ""
            self._sync_free(rec)
        elif rec.state != "logged_out":
            self._logout_now(rec, now, out)
            self._settle(now, out)
        return out

    def pause(self, agent_id: str, reason: str, now: float) -> list[Effect]:
        rec = self._agent(agent_id)
        out: Out = []
        if rec.state == "logged_out":
            raise InvalidTransition(f"agent {agent_id!r} is logged out: log in before pausing")
        if rec.state in ("reserved", "on_call", "wrap_up"):
            if rec.pending != "removed":
                rec.pending, rec.pending_reason = "break", reason
            self._sync_free(rec)
        elif not (rec.state == "break" and rec.reason == reason):
            out.append(Log("PAUSE", now, agent=rec.id, data={"reason": reason, "auto": False}))
            self._set_state(rec, "break", reason, now, out)
        return out

    def resume(self, agent_id: str, now: float) -> list[Effect]:
        rec = self._agent(agent_id)
        out: Out = []
        if rec.state == "logged_out":
            raise InvalidTransition(f"agent {agent_id!r} is logged out: log in instead")
        if rec.state == "break":
            rec.no_answer = 0
            out.append(Log("UNPAUSE", now, agent=rec.id))
            self._set_state(rec, "available", "", now, out)
        elif rec.pending == "break":
            rec.pending = rec.pending_reason = ""
        self._touch_agent(rec)
        self._settle(now, out)
        return out

    # -- contacts ---------------------------------------------------------------------------------
    def enqueue(self, contact: Contact, now: float) -> list[Effect]:
        if not isinstance(contact.id, str) or not contact.id:
            raise InvalidSpec(f"contact id must be a non-empty string, not {contact.id!r}")
        if contact.id in self._contacts or contact.id in self._calls:
            raise DuplicateContact(f"contact {contact.id!r} is already in the ACD")
        check_skills(contact.skills, f"contact {contact.id!r}")
        out: Out = []
        if contact.queue not in self._queues:
            out.append(Log("EXITEMPTY", now, contact.id, contact.queue, data={"reason": "no_queue"}))
            out.append(Exit(contact.id, contact.queue, "overflowed", reason="no_queue"))
            return out
        w = Waiting(contact, contact.queue, next(self._seq), now, callback=contact.callback,
                    attempts=contact.attempts, not_before=contact.not_before)
        self._admit(w, contact.queue, now, out, set())
        self._settle(now, out)
        return out

    def abandon(self, contact_id: str, now: float) -> list[Effect]:
        w = self._waiting(contact_id)
        line = self._queues[w.queue]
        out: Out = []
        position, ringing = line.position(w), bool(w.offers)
        self._cancel_all(w, "abandoned", now, out)
        out.append(Log("ABANDON", now, w.id, w.queue, data={
            "position": position, "origposition": w.origposition, "waittime": now - w.entered_at,
            "ringing": ringing}))
        self._detach(w)
        out.append(Exit(w.id, w.queue, "abandoned"))
        self._settle(now, out)
        return out

    def request_callback(self, contact_id: str, now: float) -> list[Effect]:
        w = self._waiting(contact_id)
        out: Out = []
        if w.callback:
            return out
        self._cancel_all(w, "callback", now, out)      # the ringing agent expected the caller on the line
        w.callback, w.max_wait_at = True, None
        out.append(Log("CALLBACKREQ", now, w.id, w.queue, data={
            "position": self._queues[w.queue].position(w), "waittime": now - w.entered_at,
            "number": w.contact.caller}))
        if w.phase == "ringing":
            w.phase = "waiting"
            self._relist(w)
        self._touch_contact(w)
        self._settle(now, out)
        return out

    # -- reservations -----------------------------------------------------------------------------
    def accepted(self, reservation: str, now: float) -> list[Effect]:
        res = self._reservation(reservation)
        rec, w = self._agents[res.agent], self._contacts[res.contact]
        out: Out = []
        for rid in [r for r in w.offers if r != res.id]:
            self._cancel(self._res[rid], "taken", now, out)
        for rid in [r for r in rec.offers if r != res.id]:
            self._cancel(self._res[rid], "busy", now, out)
        del self._res[res.id], rec.offers[res.id], w.offers[res.id]
        w.refused.clear()                              # the round is over
        rec.no_answer, rec.calls, rec.call, rec.call_queue = 0, rec.calls + 1, w.id, w.queue
        self._set_state(rec, "on_call", "", now, out)
        out.append(Log("CONNECT", now, w.id, w.queue, rec.id, {
            "holdtime": now - w.entered_at, "ring_s": now - res.offered_at, "callback": w.callback}))
        out.append(Connect(res.id, w.id, rec.id, w.queue, callback=w.callback))
        self._calls[w.id] = Call(rec.id, w.queue, w.entered_at, now, w.callback)
        if w.callback:
            self._queues[w.queue].leave(w)
            w.phase, w.version = "dialing", w.version + 1
            out.append(Log("CALLBACKDIAL", now, w.id, w.queue, rec.id,
                           {"attempt": w.attempts + 1, "number": w.contact.caller}))
        else:
            self._detach(w)
            out.append(Exit(w.id, w.queue, "answered", agent=rec.id))
        self._settle(now, out)
        return out

    def rejected(self, reservation: str, now: float, reason: str = "rejected") -> list[Effect]:
        res = self._reservation(reservation)
        out: Out = []
        self._offer_failed(res, reason, now, out)
        self._settle(now, out)
        return out

    def completed(self, contact_id: str, now: float, by: str) -> list[Effect]:
        if by not in ("caller", "agent"):
            raise InvalidSpec(f"completed by must be 'caller' or 'agent', not {by!r}")
        call = self._calls.get(contact_id)
        if call is None:
            raise UnknownContact(f"no call {contact_id!r} is connected to an agent")
        w = self._contacts.get(contact_id)
        if w is not None and w.phase == "dialing":
            raise InvalidTransition(f"callback {contact_id!r} was not answered: callback_answered or "
                                    "callback_failed first")
        if call.kind == "engaged":
            raise InvalidTransition(f"{contact_id!r} is an engagement: disengage it, or take_over first")
        del self._calls[contact_id]
        out: Out = []
        calltime = now - call.connected_at
        rec = self._agents[call.agent]
        wrap = self._wrap_s(rec, call.queue)
        line = self._queues.get(call.queue)
        if call.kind == "taken_over":   # the second part of a transferred call (routing/engagements.py)
            out.append(Log("COMPLETETRANSFER", now, contact_id, call.queue, call.agent,
                           {"by": by, "calltime": calltime}))
        else:
            out.append(Log("COMPLETECALLER" if by == "caller" else "COMPLETEAGENT", now, contact_id, call.queue,
                           call.agent, {"holdtime": call.connected_at - call.entered_at, "calltime": calltime}))
            if line is not None:
                line.handle_times.append(calltime + wrap)
        self._start_wrap(rec, wrap, now, out)
        self._settle(now, out)
        return out

    def callback_answered(self, contact_id: str, now: float) -> list[Effect]:
        w = self._dialing(contact_id)
        call = self._calls[contact_id]
        del self._contacts[contact_id]
        return [Log("CALLBACKANSWER", now, w.id, w.queue, call.agent),
                Exit(w.id, w.queue, "called_back", agent=call.agent)]

    def callback_failed(self, contact_id: str, now: float, retry_at: float | None,
                        status: str = "failed") -> list[Effect]:
        w = self._dialing(contact_id)
        call = self._calls.pop(contact_id)
        out: Out = []
        w.attempts += 1
        out.append(Log("CALLBACKFAIL", now, w.id, w.queue, call.agent,
                       {"attempt": w.attempts, "status": status, "final": retry_at is None}))
        rec = self._agents[call.agent]
        self._start_wrap(rec, self._wrap_s(rec, call.queue), now, out)
        line = self._queues.get(w.queue)
        if retry_at is None or line is None:
            del self._contacts[contact_id]
            if retry_at is None:
                out.append(Exit(w.id, w.queue, "abandoned", reason="callback_unreachable"))
            else:
                out.append(Exit(w.id, w.queue, "overflowed", reason="queue_removed"))
        else:
            w.not_before = retry_at
            line.join(w)                               # back in its place: its key is unchanged
            if w.esc_at is not None:
                self._timers.add(w.esc_at, "escalate", w.id)
            if retry_at > now:
                w.phase = "retry"
                self._timers.add(retry_at, "retry", w.id)
            else:
                w.phase = "waiting"
                self._relist(w)
                self._touch_contact(w)
        self._settle(now, out)
        return out

    # -- time -------------------------------------------------------------------------------------
    def advance(self, now: float) -> list[Effect]:
        out: Out = []
        for kind, ident, _when in self._timers.due(now):
            if kind == "ring":
                res = self._res[ident]
                out.append(CancelOffer(res.id, res.contact, res.agent, "timeout"))
                self._offer_failed(res, "timeout", now, out)
            elif kind == "wrap":
                self._end_wrap(self._agents[ident], now, out)
            else:
                w = self._contacts[ident]
                if kind == "escalate":
                    self._escalate(w, now, out)
                elif kind == "max_wait":
                    self._max_wait(w, now, out)
                else:                                   # preferred window over, or callback retry time
                    if w.phase == "held":
                        self._unhold(w)
                    w.phase = "waiting"
                    self._relist(w)
                    self._touch_contact(w)
        self._settle(now, out)
        return out

    def next_deadline(self) -> float | None:
        return self._timers.next()

    # -- queries ----------------------------------------------------------------------------------
    def position(self, contact_id: str) -> int | None:
        w = self._contacts.get(contact_id)
        line = self._queues.get(w.queue) if w is not None else None
        if w is None or line is None or w.id not in line.members:
            return None
        return line.position(w)

    def estimated_wait(self, contact_id: str, now: float) -> float | None:
        position = self.position(contact_id)
        if position is None:
            return None
        w = self._contacts[contact_id]
        line = self._queues[w.queue]
        return estimated_wait(position, line.staffed(), line.handle_times, w.not_before, now)

    def logged_in(self, queue: str) -> int:
        """Agents logged in (on a break too) whose skills fit ``queue``: 0 for an unknown queue."""
        line = self._queues.get(queue)
        return 0 if line is None else sum(n for state, n in line.counts.items() if state != "logged_out")

    def agent_status(self, agent_id: str) -> dict[str, Any]:
        return self._agent(agent_id).status()

    def snapshot(self, now: float) -> dict[str, Any]:
        queues = {}
        for name, line in self._queues.items():
            longest = max((now - w.entered_at for w in line.members.values()), default=0.0)
            queues[name] = {"waiting": len(line.members), "longest_wait_s": max(longest, 0.0),
                            "agents": dict(line.counts), "staffed": line.staffed()}
        return {"at": now, "queues": queues, "agents": {a: rec.status() for a, rec in self._agents.items()}}

    def contact(self, contact_id: str) -> Contact | None:
        w = self._contacts.get(contact_id)
        if w is None:
            return None
        return replace(w.contact, queue=w.queue, callback=w.callback, attempts=w.attempts, not_before=w.not_before)

    # -- lookups ----------------------------------------------------------------------------------
    def _agent(self, agent_id: str) -> AgentRec:
        rec = self._agents.get(agent_id)
        if rec is None:
            raise UnknownAgent(f"no agent {agent_id!r} is configured")
        return rec

    def _line(self, name: str) -> QueueLine:
        line = self._queues.get(name)
        if line is None:
            raise UnknownQueue(f"no queue {name!r} is configured")
        return line

    def _waiting(self, contact_id: str) -> Waiting:
        w = self._contacts.get(contact_id)
        if w is None:
            raise UnknownContact(f"no contact {contact_id!r} is waiting in the ACD")
        if w.phase == "dialing":
            raise InvalidTransition(f"callback {contact_id!r} is being dialled: callback_answered or "
                                    "callback_failed")
        return w

    def _dialing(self, contact_id: str) -> Waiting:
        w = self._contacts.get(contact_id)
        if w is None:
            raise UnknownContact(f"no callback {contact_id!r} is in the ACD")
        if w.phase != "dialing":
            raise InvalidTransition(f"contact {contact_id!r} is not a callback being dialled")
        return w

    def _reservation(self, rid: str) -> Reservation:
        res = self._res.get(rid)
        if res is None:
            raise UnknownReservation(f"no offer {rid!r} is outstanding (answered, canceled or timed out)")
        return res

    def _wrap_s(self, rec: AgentRec, queue: str) -> float:
        line = self._queues.get(queue)
        if line is not None and line.spec.wrap_up_s is not None:
            return line.spec.wrap_up_s
        return rec.spec.wrap_up_s

    # -- offers -----------------------------------------------------------------------------------
    def _make_offer(self, w: Waiting, rec: AgentRec, now: float, out: Out) -> None:
        line = self._queues[w.queue]
        res = Reservation(f"r{next(self._res_seq)}", w.id, rec.id, w.queue, now, now + line.spec.ring_timeout_s,
                          w.callback, line.ring_all)
        self._res[res.id] = res
        w.offers[res.id] = rec.id
        rec.offers[res.id] = w.id
        if w.phase == "held":
            self._unhold(w)
        if w.phase != "ringing":
            w.phase = "ringing"
            if not line.ring_all:
                w.version += 1                         # out of the heaps until the offer fails
        line.free.remember(rec)
        if rec.state == "available":
            self._set_state(rec, "reserved", "", now, out)
        self._timers.add(res.deadline, "ring", res.id)
        out.append(Offer(res.id, w.id, rec.id, w.queue, res.deadline, callback=w.callback))
        out.append(Log("OFFER", now, w.id, w.queue, rec.id,
                       {"reservation": res.id, "ring_timeout_s": line.spec.ring_timeout_s}))
        self._sync_free(rec)

    def _cancel(self, res: Reservation, reason: str, now: float, out: Out) -> None:
        """Stop one offer that nobody let go of (taken, abandoned, overflowed, ...); the contact's
        phase is the caller's business, the agent's is settled here."""
        del self._res[res.id]
        out.append(CancelOffer(res.id, res.contact, res.agent, reason))
        out.append(Log("RINGCANCELED", now, res.contact, res.queue, res.agent,
                       {"reservation": res.id, "reason": reason}))
        w = self._contacts.get(res.contact)
        if w is not None:
            w.offers.pop(res.id, None)
            if not w.offers and w.phase == "ringing" and reason in _AGENT_WENT:
                w.phase = "waiting"                    # the agent went elsewhere: the contact waits again
                self._relist(w)
                self._touch_contact(w)
        rec = self._agents[res.agent]
        del rec.offers[res.id]
        if not rec.offers and rec.state == "reserved":
            self._after_ringing(rec, now, out)
        else:
            self._sync_free(rec)
            self._touch_agent(rec)

    def _cancel_all(self, w: Waiting, reason: str, now: float, out: Out) -> None:
        for rid in list(w.offers):
            self._cancel(self._res[rid], reason, now, out)

    def _offer_failed(self, res: Reservation, reason: str, now: float, out: Out) -> None:
        """Rejected, busy, unreachable or timed out: RINGNOANSWER, the agent moves on, the contact too."""
        del self._res[res.id]
        out.append(Log("RINGNOANSWER", now, res.contact, res.queue, res.agent,
                       {"reservation": res.id, "reason": reason, "ring_s": now - res.offered_at}))
        rec = self._agents[res.agent]
        del rec.offers[res.id]
        rec.no_answer += 1
        self._avoid.setdefault(rec.id, set()).add(res.contact)
        line = self._queues.get(res.queue)
        limit = line.spec.max_no_answer if line is not None else 0
        pause_reason = line.spec.no_answer_reason if line is not None and limit and rec.no_answer >= limit else None
        if pause_reason is not None:
            for rid in list(rec.offers):
                self._cancel(self._res[rid], "paused", now, out)
        if not rec.offers:
            self._after_ringing(rec, now, out, pause_reason)
        else:
            self._sync_free(rec)
            self._touch_agent(rec)
        w = self._contacts.get(res.contact)
        if w is not None:
            w.offers.pop(res.id, None)
            w.refused.add(rec.id)
            if not w.offers:
                if res.ring_all:
                    w.refused.clear()                  # the round is over: next round rings everyone free
                w.phase = "waiting"
                self._relist(w)
                self._touch_contact(w)

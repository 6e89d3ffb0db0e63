"""Waiting contacts: their records, the order of a line, and the per-queue heaps dispatch reads.

Order in a line (docs/routing.md, "Priority and aging"): effective priority
``priority + vip_tier * vip_boost + aging_per_min * minutes waited``, highest first; ties by
``entered_at``, then by arrival (a counter). With one aging rate per queue the order does not
change with time, so each contact gets a static key ``(-(base - aging * entered_at / 60),
entered_at, seq)`` and a plain heap keeps the line. Entries carry the contact's ``version``;
bumping it makes every entry of that contact stale (lazy deletion), and the heaps are rebuilt
once stale entries outnumber live ones.

Besides its own queue's heap, a contact that escalated sits in two more kinds of heaps so agents
outside its queue find it: ``relaxed`` (its required skills fell below the queue's minimums:
any agent meeting them may take it) and ``widened`` (agents of the added queues may take it),
one heap per (added queue, own queue) so each stays in one aging rate's order.

``Lines`` is the part of the Router that moves contacts through their lines: admission (max
length, overflow into another queue), escalation steps, max wait, the preferred-agent hold, and
the heap bookkeeping (``_relist``, ``_detach``); routing/router.py composes it.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .agents import AgentRec, check_skills
from .effects import Effect, Exit, Log
from .exceptions import InvalidSpec
from .model import AGENT_STATES, STRATEGIES, AgentState, Contact, EscalationStep, QueueSpec
from .reservations import TimerKind, Timers

if TYPE_CHECKING:
    from .strategies import FreeIndex

Out = list[Effect]

Phase = Literal["waiting", "ringing", "held", "retry", "dialing"]
# waiting: offerable; ringing: offered (a ring-all contact stays offerable to more agents);
# held: kept for its preferred agent; retry: a callback before its not_before; dialing: a callback's
# agent accepted, the customer is being called (out of the line, still in the ACD).
Entry = tuple[float, float, int, str, int]      # key..., contact id, version


@dataclass(slots=True, eq=False)
class Waiting:
    """One contact in the ACD (mutable; ``Router.contact`` hands out a frozen ``Contact``)."""

    contact: Contact
    queue: str
    seq: int
    joined_at: float                # when it joined this queue: max wait and escalation count from here
    origposition: int = 0
    phase: Phase = "waiting"
    version: int = 0
    base: float = 0.0               # priority + vip_tier * vip_boost
    key: tuple[float, float, int] = (0.0, 0.0, 0)
    req: dict[str, int] = field(default_factory=dict)
    widened: tuple[str, ...] = ()
    relaxed: bool = False
    step: int = 0                   # escalation steps applied
    offers: dict[str, str] = field(default_factory=dict)   # reservation -> agent
    refused: set[str] = field(default_factory=set)         # agents who just let an offer go
    callback: bool = False
    attempts: int = 0
    not_before: float = 0.0
    esc_at: float | None = None
    max_wait_at: float | None = None
    preferred_at: float | None = None

    @property
    def id(self) -> str:
        return self.contact.id

    @property
    def entered_at(self) -> float:
        return self.contact.entered_at

    def entry(self) -> Entry:
        return (*self.key, self.contact.id, self.version)


class QueueLine:
    """One queue: its spec, its contacts, its heaps, its free agents and its agent counts."""

    def __init__(self, spec: QueueSpec, free: FreeIndex, window: int) -> None:
        self.spec = spec
        self.steps: tuple[EscalationStep, ...] = tuple(sorted(spec.escalation, key=lambda s: s.after_s))
        self.members: dict[str, Waiting] = {}        # every contact of the queue except ``dialing`` ones
        self.order: list[tuple[float, float, int]] = []   # the members' keys, sorted: positions by bisection
        self.heap: list[Entry] = []
        self.relaxed: list[Entry] = []
        self.free = free
        self.counts: dict[AgentState, int] = dict.fromkeys(AGENT_STATES, 0)
        self.handle_times: deque[float] = deque(maxlen=window)

    @property
    def ring_all(self) -> bool:
        return self.spec.strategy == "ring-all"

    def staffed(self) -> int:
        c = self.counts
        return c["available"] + c["reserved"] + c["on_call"] + c["wrap_up"]

    def prepare(self, w: Waiting) -> None:
        """Compute the contact's priority, order key and requirements for this queue (after ``w.step`` steps)."""
        spec, c = self.spec, w.contact
        w.base = c.priority + c.vip_tier * spec.vip_boost
        w.key = (-(w.base - spec.aging_per_min * c.entered_at / 60.0), c.entered_at, w.seq)
        req = dict(spec.skills)
        for name, level in c.skills.items():
            req[name] = max(level, req.get(name, 0))
        widened: list[str] = []
        for step in self.steps[:w.step]:
            if step.skills is not None:
                req = dict(step.skills)
            widened.extend(q for q in step.add_queues if q != w.queue and q not in widened)
        w.req = req
        w.widened = tuple(widened)
        w.relaxed = any(req.get(name, 0) < level for name, level in spec.skills.items())

    def effective(self, w: Waiting, now: float) -> float:
        """The contact's effective priority at ``now``."""
        return w.base + self.spec.aging_per_min * (now - w.entered_at) / 60.0

    def join(self, w: Waiting) -> None:
        """``w`` (prepared for this queue) is one of its contacts now."""
        if w.id not in self.members:
            self.members[w.id] = w
            insort(self.order, w.key)

    def leave(self, w: Waiting) -> None:
        if self.members.pop(w.id, None) is not None:
            i = bisect_left(self.order, w.key)
            if i < len(self.order) and self.order[i] == w.key:
                del self.order[i]

    def reorder(self) -> None:
        """The keys changed (a new aging rate or boost): sort again."""
        self.order = sorted(w.key for w in self.members.values())

    def position(self, w: Waiting) -> int:
        """1-based place in line among the queue's contacts (ringing, held and retrying ones count)."""
        return bisect_left(self.order, w.key) + 1

    def compact(self, valid: Callable[[Entry], bool]) -> None:
        """Drop stale entries once they outnumber live ones (keeps heaps O(contacts))."""
        limit = 2 * len(self.members) + 64
        if len(self.heap) > limit:
            self.heap = [e for e in self.heap if valid(e)]
            heapq.heapify(self.heap)
        if len(self.relaxed) > limit:
            self.relaxed = [e for e in self.relaxed if valid(e)]
            heapq.heapify(self.relaxed)


def scan(heap: list[Entry], valid: Callable[[Entry], Waiting | None],
         accept: Callable[[Waiting], bool]) -> Waiting | None:
    """The first contact in heap order that is valid and ``accept`` admits; the heap is left as it was
    minus stale entries (the common case, an acceptable top, pops nothing)."""
    skipped: list[Entry] = []
    found = None
    while heap:
        w = valid(heap[0])
        if w is None:
            heapq.heappop(heap)
            continue
        if accept(w):
            found = w
            break
        skipped.append(heapq.heappop(heap))
    for entry in skipped:
        heapq.heappush(heap, entry)
    return found


def check_queue(spec: QueueSpec) -> None:
    """Raise InvalidSpec for a queue spec the router cannot work with."""
    name = spec.name
    if not isinstance(name, str) or not name:
        raise InvalidSpec(f"queue name must be a non-empty string, not {name!r}")
    if spec.strategy not in STRATEGIES:
        raise InvalidSpec(f"queue {name!r}: strategy must be one of {', '.join(STRATEGIES)}, not {spec.strategy!r}")
    check_skills(spec.skills, f"queue {name!r}")
    for field_name in ("max_wait_s", "max_length", "max_no_answer", "aging_per_min", "preferred_agent_s",
                       "vip_boost"):
        if getattr(spec, field_name) < 0:
            raise InvalidSpec(f"queue {name!r}: {field_name} must be >= 0, not {getattr(spec, field_name)!r}")
    if not spec.ring_timeout_s > 0:
        raise InvalidSpec(f"queue {name!r}: ring_timeout_s must be > 0, not {spec.ring_timeout_s!r}")
    if spec.wrap_up_s is not None and spec.wrap_up_s < 0:
        raise InvalidSpec(f"queue {name!r}: wrap_up_s must be >= 0 or None, not {spec.wrap_up_s!r}")
    target = spec.overflow
    if not (target in ("", "callback") or (target.startswith(("queue:", "voicemail:")) and target.split(":", 1)[1])):
        raise InvalidSpec(f"queue {name!r}: overflow must be '', 'callback', 'queue:NAME' or 'voicemail:MAILBOX', "
                          f"not {target!r}")
    if target == f"queue:{name}":
        raise InvalidSpec(f"queue {name!r}: overflow to itself")
    for step in spec.escalation:
        if step.after_s < 0:
            raise InvalidSpec(f"queue {name!r}: escalation after_s must be >= 0, not {step.after_s!r}")
        if step.skills is not None:
            check_skills(step.skills, f"queue {name!r} escalation")


class Lines:
    """The Router's contact-side machinery (a mixin: routing/router.py holds the state it uses)."""

    _agents: dict[str, AgentRec]
    _queues: dict[str, QueueLine]
    _contacts: dict[str, Waiting]
    _held: dict[str, dict[str, Waiting]]
    _widened: dict[str, dict[str, list[Entry]]]
    _relaxed_queues: set[str]
    _touched_contacts: dict[str, Waiting]
    _timers: Timers
    _res: dict[str, Any]

    if TYPE_CHECKING:
        def _candidate(self, rec: AgentRec, w: Waiting) -> bool: ...
        def _touch_contact(self, w: Waiting) -> None: ...
        def _cancel_all(self, w: Waiting, reason: str, now: float, out: Out) -> None: ...

    def _admit(self, w: Waiting, name: str, now: float, out: Out, seen: set[str], moved_from: str = "") -> None:
        """Put ``w`` into queue ``name`` (a full queue overflows: to another queue, or out)."""
        line = self._queues[name]
        if line.spec.max_length and len(line.members) >= line.spec.max_length:
            target = line.spec.overflow
            out.append(Log("EXITFULL", now, w.id, name, data={"target": target}))
            seen.add(name)
            nxt = target[6:] if target.startswith("queue:") else ""
            if nxt in self._queues and nxt not in seen:
                self._admit(w, nxt, now, out, seen, moved_from or name)
            else:
                out.append(Exit(w.id, name, "overflowed", reason="full",
                                target="" if target.startswith("queue:") else target))
            return
        w.queue, w.joined_at = name, now
        w.step = sum(1 for step in line.steps if step.after_s <= 0)
        line.prepare(w)
        self._contacts[w.id] = w
        line.join(w)
        position = line.position(w)
        if not w.origposition:
            w.origposition = position
        data: dict[str, Any] = {"priority": w.contact.priority, "position": position, "skills": dict(w.req),
                                "caller": w.contact.caller, "callback": w.callback, "vip_tier": w.contact.vip_tier}
        if moved_from:
            data["from"] = moved_from
        out.append(Log("ENTERQUEUE", now, w.id, name, data=data))
        self._schedule(w, line)
        pref = self._agents.get(w.contact.preferred_agent)
        if w.callback and w.not_before > now:
            w.phase = "retry"
            self._timers.add(w.not_before, "retry", w.id)
        elif (pref is not None and pref.state != "logged_out" and line.spec.preferred_agent_s > 0
              and self._candidate(pref, w)):
            w.phase = "held"
            w.preferred_at = now + line.spec.preferred_agent_s
            self._held.setdefault(pref.id, {})[w.id] = w
            self._timers.add(w.preferred_at, "preferred", w.id)
        else:
            w.phase = "waiting"
            self._relist(w)
        self._touch_contact(w)

    def _schedule(self, w: Waiting, line: QueueLine) -> None:
        """(Re)arm the contact's escalation and max-wait deadlines for its queue."""
        w.esc_at = w.joined_at + line.steps[w.step].after_s if w.step < len(line.steps) else None
        if w.esc_at is not None:
            self._timers.add(w.esc_at, "escalate", w.id)
        w.max_wait_at = w.joined_at + line.spec.max_wait_s if line.spec.max_wait_s > 0 and not w.callback else None
        if w.max_wait_at is not None:
            self._timers.add(w.max_wait_at, "max_wait", w.id)

    def _relist(self, w: Waiting) -> None:
        """Make older heap entries stale; if offerable, push fresh ones (own line, relaxed, widened)."""
        w.version += 1
        line = self._queues[w.queue]
        if not (w.phase == "waiting" or (w.phase == "ringing" and line.ring_all)):
            return
        entry = w.entry()
        heapq.heappush(line.heap, entry)
        if w.relaxed:
            heapq.heappush(line.relaxed, entry)
            self._relaxed_queues.add(w.queue)
        for q in w.widened:
            sub = self._widened.setdefault(q, {}).setdefault(w.queue, [])
            heapq.heappush(sub, entry)
            if len(sub) > 2 * len(line.members) + 64:
                sub[:] = [e for e in sub if self._valid_entry(e) is not None]
                heapq.heapify(sub)
        line.compact(lambda e: self._valid_entry(e) is not None)

    def _valid_entry(self, entry: Entry) -> Waiting | None:
        w = self._contacts.get(entry[3])
        if w is None or w.version != entry[4]:
            return None
        if w.phase == "waiting" or (w.phase == "ringing" and self._queues[w.queue].ring_all):
            return w
        return None

    def _detach(self, w: Waiting) -> None:
        """The contact leaves the ACD (or its queue, when moved)."""
        self._contacts.pop(w.id, None)
        line = self._queues.get(w.queue)
        if line is not None:
            line.leave(w)
        if w.phase == "held":
            self._unhold(w)
        w.version += 1
        w.esc_at = w.max_wait_at = w.preferred_at = None
        self._touched_contacts.pop(w.id, None)

    def _unhold(self, w: Waiting) -> None:
        held = self._held.get(w.contact.preferred_agent)
        if held is not None:
            held.pop(w.id, None)
            if not held:
                del self._held[w.contact.preferred_agent]
        w.preferred_at = None

    def _escalate(self, w: Waiting, now: float, out: Out) -> None:
        line = self._queues[w.queue]
        w.step += 1
        line.prepare(w)
        out.append(Log("ESCALATE", now, w.id, w.queue, data={
            "step": w.step, "skills": dict(w.req), "queues": list(w.widened), "waittime": now - w.entered_at}))
        w.esc_at = w.joined_at + line.steps[w.step].after_s if w.step < len(line.steps) else None
        if w.esc_at is not None:
            self._timers.add(w.esc_at, "escalate", w.id)
        if w.phase in ("waiting", "ringing"):
            self._relist(w)
        self._touch_contact(w)

    def _max_wait(self, w: Waiting, now: float, out: Out) -> None:
        old = w.queue
        target = self._queues[old].spec.overflow
        out.append(Log("EXITWITHTIMEOUT", now, w.id, old, data={"waittime": now - w.entered_at, "target": target}))
        self._cancel_all(w, "overflowed", now, out)
        self._detach(w)
        nxt = target[6:] if target.startswith("queue:") else ""
        if nxt in self._queues and nxt != old:
            w.offers.clear()
            w.refused.clear()
            self._admit(w, nxt, now, out, {old}, old)
        else:
            out.append(Exit(w.id, old, "overflowed", reason="max_wait",
                            target="" if target.startswith("queue:") else target))

    def _timer_valid(self, kind: TimerKind, ident: str, when: float) -> bool:
        if kind == "ring":
            res = self._res.get(ident)
            return res is not None and res.deadline == when
        if kind == "wrap":
            rec = self._agents.get(ident)
            return rec is not None and rec.state == "wrap_up" and rec.wrap_until == when
        w = self._contacts.get(ident)
        if w is None or w.phase == "dialing":
            return False
        if kind == "escalate":
            return w.esc_at == when
        if kind == "max_wait":
            return w.max_wait_at == when and not w.callback
        if kind == "preferred":
            return w.phase == "held" and w.preferred_at == when
        return w.phase == "retry" and w.not_before == when

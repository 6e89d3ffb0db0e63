"""Drive a Router without telephony (like pipecat's ``run_test``): a scripted clock, every effect kept.

    h = run_script([(0, "login", "ann"), (1, "enqueue", Contact("c1", "sales", 0)),
                    (3, "answer", "ann"), (60, "completed", "c1", "caller")],
                   queues=[QueueSpec("sales")], agents=[AgentSpec("ann")])
    assert [e.event for e in h.logs()][-1] == "COMPLETECALLER"

``Harness`` owns a ``Router`` and a clock that starts at ``start`` and moves only forward:
``at(t)`` / ``wait(s)`` fire the router's deadlines in order on the way (``advance`` at each
one, as the driver does), ``do(op, *args)`` calls a router method with ``now``, ``answer(agent)``
/ ``decline(agent)`` answer the agent's oldest ringing offer, ``enqueue(id, queue, **fields)``
enqueues a contact entering now. ``trace`` keeps ``(time, effect)`` in order; ``effects`` /
``logs`` / ``offers_to`` / ``exits`` filter it. ``run_script`` plays a list of ``(t, op, *args)``
steps, ``t`` in seconds from ``start``.

``check_invariants(router)`` asserts the router's own books agree with each other (offers on
both sides, one call per agent, free indexes, state counts) and that dispatch left no free
agent beside an offerable contact they may serve. The property tests call it after every step.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from .effects import CancelOffer, Connect, Effect, Exit, Log, Offer
from .model import AGENT_STATES, AgentSpec, Contact, QueueSpec
from .router import Router

DEFAULT_START = 1_767_607_200.0   # 2026-01-05 10:00 UTC, a Monday morning
E = TypeVar("E")


class Harness:
    """A Router on a scripted clock (see the module docstring)."""

    def __init__(self, *, queues: Iterable[QueueSpec] = (), agents: Iterable[AgentSpec] = (),
                 start: float = DEFAULT_START, seed: int = 0, router: Router | None = None,
                 check: bool = False) -> None:
        self.router = router if router is not None else Router(rng=random.Random(seed))
        self.start = self.now = start
        self.check = check
        self.trace: list[tuple[float, Effect]] = []
        self.ringing: dict[str, Offer] = {}            # reservation -> its Offer, while it rings
        for q in queues:
            self.do("set_queue", q)
        for a in agents:
            self.do("set_agent", a)

    # -- moving time and acting -------------------------------------------------------------------
    def at(self, t: float) -> list[Effect]:
        """Move the clock to ``start + t``, firing every deadline on the way at its own time."""
        return self.until(self.start + t)

    def wait(self, seconds: float) -> list[Effect]:
        return self.until(self.now + seconds)

    def until(self, when: float) -> list[Effect]:
        if when < self.now:
            raise ValueError(f"the clock only moves forward ({when} < {self.now})")
        fired: list[Effect] = []
        while (deadline := self.router.next_deadline()) is not None and deadline <= when:
            self.now = max(self.now, deadline)
            fired += self._record(self.router.advance(self.now))
        self.now = when
        return fired

    def do(self, op: str, *args: Any, **kwargs: Any) -> list[Effect]:
        """Call ``router.<op>`` with ``args`` and the clock's ``now`` in its place; keep and return the effects.

        ``do("completed", "c1", "caller")`` calls ``router.completed("c1", now, "caller")``.
        """
        method = getattr(self.router, op)
        names = [p for p in inspect.signature(method).parameters]
        at = names.index("now")
        if len(args) >= at:
            args = (*args[:at], self.now, *args[at:])
        else:
            kwargs["now"] = self.now
        return self._record(method(*args, **kwargs))

    def enqueue(self, contact_id: str, queue: str, **fields: Any) -> list[Effect]:
        """Enqueue ``Contact(contact_id, queue, entered_at=now, **fields)``."""
        fields.setdefault("entered_at", self.now)
        return self.do("enqueue", Contact(contact_id, queue, **fields))

    def offer_for(self, agent: str) -> Offer | None:
        """The agent's oldest offer still ringing."""
        return next((o for o in self.ringing.values() if o.agent == agent), None)

    def answer(self, agent: str) -> list[Effect]:
        offer = self.offer_for(agent)
        if offer is None:
            raise AssertionError(f"no offer rings for {agent!r}")
        return self.do("accepted", offer.reservation)

    def decline(self, agent: str, reason: str = "rejected") -> list[Effect]:
        offer = self.offer_for(agent)
        if offer is None:
            raise AssertionError(f"no offer rings for {agent!r}")
        return self.do("rejected", offer.reservation, reason=reason)

    def _record(self, effects: list[Effect]) -> list[Effect]:
        for e in effects:
            self.trace.append((self.now, e))
            if isinstance(e, Offer):
                self.ringing[e.reservation] = e
            elif isinstance(e, (CancelOffer, Connect)):
                self.ringing.pop(e.reservation, None)
            elif isinstance(e, Log) and e.event == "RINGNOANSWER":
                self.ringing.pop(e.data["reservation"], None)
        if self.check:
            check_invariants(self.router)
        return effects

    # -- reading the trace ------------------------------------------------------------------------
    def effects(self, kind: type[E] | None = None) -> list[Any]:
        return [e for _, e in self.trace if kind is None or isinstance(e, kind)]

    def logs(self, *events: str) -> list[Log]:
        return [e for _, e in self.trace if isinstance(e, Log) and (not events or e.event in events)]

    def offers_to(self, agent: str | None = None) -> list[Offer]:
        return [e for e in self.effects(Offer) if agent is None or e.agent == agent]

    def exits(self) -> list[Exit]:
        return list(self.effects(Exit))

    def state(self, agent: str) -> str:
        return str(self.router.agent_status(agent)["state"])


def run_script(script: Sequence[tuple[Any, ...]], *, queues: Iterable[QueueSpec] = (),
               agents: Iterable[AgentSpec] = (), start: float = DEFAULT_START, seed: int = 0,
               check: bool = True) -> Harness:
    """Play ``(t, op, *args)`` steps (``op`` a Router method, or ``answer`` / ``decline`` with an agent id)."""
    h = Harness(queues=queues, agents=agents, start=start, seed=seed, check=check)
    for t, op, *args in script:
        h.at(t)
        if op in ("answer", "decline"):
            getattr(h, op)(*args)
        else:
            h.do(op, *args)
    return h


def check_invariants(router: Router) -> None:
    """Assert the router's books are consistent and no free agent sits beside a contact they may take."""
    r = router
    calls_by_agent: dict[str, str] = {}
    for cid, call in r._calls.items():
        assert call.agent not in calls_by_agent, f"agent {call.agent} has two calls"
        calls_by_agent[call.agent] = cid
    for rid, res in r._res.items():
        rec, w = r._agents.get(res.agent), r._contacts.get(res.contact)
        assert rec is not None and rec.offers.get(rid) == res.contact, f"offer {rid}: agent side missing"
        assert w is not None and w.offers.get(rid) == res.agent, f"offer {rid}: contact side missing"
        assert w.phase == "ringing", f"offer {rid}: contact {w.id} is {w.phase}"
    for rec in r._agents.values():
        assert len(rec.offers) <= rec.spec.max_offers, f"agent {rec.id} holds {len(rec.offers)} offers"
        assert len(set(rec.offers.values())) == len(rec.offers), f"agent {rec.id} rings twice for one contact"
        assert all(rid in r._res for rid in rec.offers), f"agent {rec.id}: a stale offer"
        if rec.offers:
            assert rec.state == "reserved", f"agent {rec.id} rings while {rec.state}"
        if rec.state == "reserved":
            assert rec.offers, f"agent {rec.id} reserved with no offer"
        if rec.state == "on_call":
            assert calls_by_agent.get(rec.id) == rec.call, f"agent {rec.id} on_call without its call"
        else:
            assert rec.id not in calls_by_agent, f"agent {rec.id} is {rec.state} with a call"
        if rec.state == "wrap_up":
            assert rec.wrap_until is not None, f"agent {rec.id} in wrap-up without an end"
        assert rec.free == rec.has_capacity(), f"agent {rec.id}: free flag {rec.free} is wrong"
        assert (rec.id in r._free) == rec.free, f"agent {rec.id}: global free set is wrong"
        for q in rec.queues:
            assert (rec.id in r._queues[q].free.members) == rec.free, f"agent {rec.id}: free index of {q} is wrong"
    for name, line in r._queues.items():
        expected = dict.fromkeys(AGENT_STATES, 0)
        for rec in r._agents.values():
            if name in rec.queues:
                expected[rec.state] += 1
        assert line.counts == expected, f"queue {name}: counts {line.counts} != {expected}"
        for cid, w in line.members.items():
            assert r._contacts.get(cid) is w and w.queue == name, f"queue {name}: stray member {cid}"
        assert line.order == sorted(w.key for w in line.members.values()), f"queue {name}: order out of date"
    for cid, w in r._contacts.items():
        if w.phase == "dialing":
            assert cid in r._calls, f"callback {cid} dialling without a call"
            continue
        own = r._queues.get(w.queue)
        assert own is not None and cid in own.members, f"contact {cid} not in its queue {w.queue}"
        assert (w.phase == "ringing") == bool(w.offers), f"contact {cid} is {w.phase} with {len(w.offers)} offers"
        single = sum(1 for rid in w.offers if not r._res[rid].ring_all)
        assert single <= 1, f"contact {cid} rings {single} agents outside ring-all"
        if w.phase == "held":
            pref = r._agents.get(w.contact.preferred_agent)
            assert pref is not None, f"contact {cid} held for a missing agent"
            assert not (pref.has_capacity() and r._candidate(pref, w)), f"contact {cid} held while its agent is free"
        elif w.phase in ("waiting", "ringing"):
            for rec in r._free.values():
                assert not (rec.has_capacity() and r._acceptable(rec, w)), \
                    f"agent {rec.id} is free while {cid} ({w.phase}) waits for them"

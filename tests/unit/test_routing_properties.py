"""Property tests of routing/'s invariants over random operation sequences (hypothesis).

Agents log in and out, pause and resume, get reconfigured; contacts arrive (some VIP, some with a
preferred agent or extra skills, some restored callbacks), abandon, ask for callbacks; offers are
accepted, refused or time out; calls complete; callbacks are answered or fail; queues change
strategy; agents are consulted (engaged) and take transferred calls over; time passes (firing
escalations, max waits, wrap-up ends, preferred windows). After
every step, as a driver would see it from the effects alone:

* no agent rings for more than max_offers contacts, or rings while on a call;
* no contact rings at two agents at once, except offers made by a ring-all queue;
* every contact leaves in exactly one Exit, and nothing is offered after its Exit; a contact still
  in the ACD has no Exit yet;
* StateChanged effects chain (each ``previous`` is the last state) and agree with agent_status;
* the offers the driver believes are ringing are exactly the router's;
* and ``routing.testing.check_invariants`` (books on both sides, free indexes, counts, and no
  free agent beside an offerable contact they may serve).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.effects import Connect, Effect, Exit, Offer, StateChanged
from routing.exceptions import RoutingError
from routing.model import AgentSpec, EscalationStep, QueueSpec
from routing.testing import Harness, check_invariants

QUEUES = [
    QueueSpec("a", skills={"a": 1}, max_length=4, overflow="queue:b", max_wait_s=120, ring_timeout_s=10,
              max_no_answer=2, preferred_agent_s=20, escalation=(EscalationStep(30, skills={}),)),
    QueueSpec("b", skills={"b": 1}, strategy="ring-all", max_wait_s=200, overflow="voicemail:1", ring_timeout_s=8,
              wrap_up_s=5),
    QueueSpec("c", strategy="round-robin", priority=2, aging_per_min=5, max_no_answer=0,
              escalation=(EscalationStep(20, add_queues=("a",)), EscalationStep(50, skills={"b": 1}))),
    QueueSpec("d", skills={"a": 2}, strategy="weighted-random", max_length=3, wrap_up_s=0),
]
AGENTS = [
    AgentSpec("ann", skills={"a": 2, "b": 1}, wrap_up_s=3),
    AgentSpec("bob", skills={"b": 2}, wrap_up_s=0, max_offers=2),
    AgentSpec("cy", skills={"a": 1}, wrap_up_s=10, weight=3),
    AgentSpec("dee", skills={"a": 3, "b": 3, "x": 2}, wrap_up_s=1, max_offers=2),
    AgentSpec("eli", skills={}, wrap_up_s=0),
]
RECONFIGURED = [AgentSpec("cy", skills={"b": 1, "x": 1}, wrap_up_s=2), AgentSpec("eli", skills={"a": 2}, max_offers=2)]
STRATEGIES = ["longest-idle", "ring-all", "fewest-calls", "linear", "random", "best-proficiency"]

agent_ix = st.integers(0, len(AGENTS) - 1)
pick = st.integers(0, 1000)
ops = st.one_of(
    st.tuples(st.just("login"), agent_ix),
    st.tuples(st.just("logout"), agent_ix),
    st.tuples(st.just("pause"), agent_ix, st.sampled_from(["lunch", "coaching"])),
    st.tuples(st.just("resume"), agent_ix),
    st.tuples(st.just("enqueue"), st.sampled_from("abcdz"), st.integers(0, 20), st.integers(0, 2),
              st.one_of(st.none(), agent_ix), st.booleans(), st.sampled_from([{}, {"x": 1}, {"a": 3}])),
    st.tuples(st.just("enqueue"), st.sampled_from("abcd"), st.integers(0, 5), st.integers(0, 1),
              st.none(), st.booleans(), st.just({})),
    st.tuples(st.just("abandon"), pick),
    st.tuples(st.just("callback"), pick),
    st.tuples(st.just("accept"), pick),
    st.tuples(st.just("accept"), pick),
    st.tuples(st.just("accept"), pick),
    st.tuples(st.just("reject"), pick, st.sampled_from(["rejected", "busy", "unreachable"])),
    st.tuples(st.just("advance"), st.floats(0.5, 45)),
    st.tuples(st.just("advance"), st.floats(0.5, 45)),
    st.tuples(st.just("complete"), pick, st.sampled_from(["caller", "agent"])),
    st.tuples(st.just("complete"), pick, st.sampled_from(["caller", "agent"])),
    st.tuples(st.just("cb_answer"), pick),
    st.tuples(st.just("cb_fail"), pick, st.one_of(st.none(), st.floats(0, 60))),
    st.tuples(st.just("set_agent"), st.integers(0, len(RECONFIGURED) - 1)),
    st.tuples(st.just("strategy"), st.sampled_from("acd"), st.sampled_from(STRATEGIES)),
    st.tuples(st.just("engage"), agent_ix),
    st.tuples(st.just("engage"), agent_ix),
    st.tuples(st.just("disengage"), pick),
    st.tuples(st.just("take_over"), pick, pick),
    st.tuples(st.just("take_over"), pick, pick),
)


class Driver:
    """What a driver knows from the effects alone, checked against the router after every step."""

    def __init__(self, seed: int) -> None:
        self.h = Harness(queues=QUEUES, agents=AGENTS, seed=seed)
        self.max_offers = {a.id: a.max_offers for a in AGENTS}
        self.state = {a.id: "logged_out" for a in AGENTS}
        self.ringing: dict[str, Offer] = {}
        self.ring_all = {"b"}                     # queues ringing everyone now
        self.rang_all: set[str] = set()           # reservations made while their queue was ring-all
        self.exits: Counter[str] = Counter()
        self.entered: list[str] = []
        self.calls: dict[str, str] = {}           # contact -> agent, bridged (callbacks once answered)
        self.dialing: dict[str, str] = {}         # callback contact -> agent dialling it
        self.engaged: dict[str, str] = {}         # engagement key -> agent (a consultation)
        self.serial = 0

    def see(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Offer):
                assert self.exits[e.contact] == 0, f"offer for {e.contact} after its exit"
                assert self.state[e.agent] == "reserved", f"offer to {e.agent} while {self.state[e.agent]}"
                self.ringing[e.reservation] = e
                if e.queue in self.ring_all:
                    self.rang_all.add(e.reservation)
            elif isinstance(e, Connect):
                self.ringing.pop(e.reservation)
                (self.dialing if e.callback else self.calls)[e.contact] = e.agent
            elif e.type == "cancel_offer":
                self.ringing.pop(e.reservation)
            elif e.type == "log" and e.event == "RINGNOANSWER":
                self.ringing.pop(e.data["reservation"], None)
            elif isinstance(e, Exit):
                self.exits[e.contact] += 1
                assert self.exits[e.contact] == 1, f"{e.contact} exited twice"
            elif isinstance(e, StateChanged):
                assert e.previous == self.state[e.agent], f"{e.agent}: {e.previous} after {self.state[e.agent]}"
                self.state[e.agent] = e.state
            self.check_ringing()

    def check_ringing(self) -> None:
        per_agent = Counter(o.agent for o in self.ringing.values())
        for agent, n in per_agent.items():
            assert n <= self.max_offers[agent], f"{agent} rings {n} times"
            assert agent not in self.calls.values() and agent not in self.dialing.values(), f"{agent} rings on a call"
            assert agent not in self.engaged.values(), f"{agent} rings while consulted"
        per_contact = Counter(o.contact for rid, o in self.ringing.items() if rid not in self.rang_all)
        assert all(n == 1 for n in per_contact.values()), per_contact

    def check(self) -> None:
        r = self.h.router
        check_invariants(r)
        assert set(self.ringing) == set(r._res), "the driver's ringing offers differ from the router's"
        for agent, state in self.state.items():
            if agent in r._agents:
                assert r.agent_status(agent)["state"] == state
        for cid in self.entered:
            inside = r.contact(cid) is not None
            assert self.exits[cid] + inside == 1, f"{cid}: {self.exits[cid]} exits, in the ACD: {inside}"

    def step(self, op: tuple[Any, ...]) -> None:
        h, name = self.h, op[0]
        try:
            if name in ("login", "logout", "resume"):
                self.see(h.do(name, AGENTS[op[1]].id))
            elif name == "pause":
                self.see(h.do("pause", AGENTS[op[1]].id, op[2]))
            elif name == "enqueue":
                _, queue, priority, vip, pref, callback, skills = op
                self.serial += 1
                cid = f"c{self.serial}"
                self.entered.append(cid)
                self.see(h.enqueue(cid, queue, priority=priority, vip_tier=vip, skills=skills, callback=callback,
                                   preferred_agent=AGENTS[pref].id if pref is not None else "",
                                   entered_at=h.now - (5 if callback else 0)))
            elif name in ("abandon", "callback"):
                waiting = sorted(c for c in self.entered if self.exits[c] == 0 and c not in self.dialing)
                if waiting:
                    cid = waiting[op[1] % len(waiting)]
                    self.see(h.do("abandon" if name == "abandon" else "request_callback", cid))
            elif name in ("accept", "reject"):
                if self.ringing:
                    rid = sorted(self.ringing)[op[1] % len(self.ringing)]
                    self.see(h.do("accepted", rid) if name == "accept" else h.do("rejected", rid, reason=op[2]))
            elif name == "advance":
                self.see(h.wait(op[1]))
            elif name == "complete":
                if self.calls:
                    cid = sorted(self.calls)[op[1] % len(self.calls)]
                    effects = h.do("completed", cid, op[2])
                    del self.calls[cid]
                    self.see(effects)
            elif name in ("cb_answer", "cb_fail"):
                if self.dialing:
                    cid = sorted(self.dialing)[op[1] % len(self.dialing)]
                    if name == "cb_answer":
                        effects = h.do("callback_answered", cid)
                        self.calls[cid] = self.dialing.pop(cid)
                    else:
                        effects = h.do("callback_failed", cid, None if op[2] is None else h.now + op[2])
                        del self.dialing[cid]
                    self.see(effects)
            elif name == "engage":
                self.serial += 1
                key, agent = f"e{self.serial}", AGENTS[op[1]].id
                effects = h.do("engage", agent, key, "a")
                self.engaged[key] = agent
                self.see(effects)
            elif name == "disengage":
                if self.engaged:
                    key = sorted(self.engaged)[op[1] % len(self.engaged)]
                    effects = h.do("disengage", key)
                    del self.engaged[key]
                    self.see(effects)
            elif name == "take_over":             # an attended transfer completes: the first agent's call ends
                if self.engaged and self.calls:
                    key = sorted(self.engaged)[op[1] % len(self.engaged)]
                    cid = sorted(self.calls)[op[2] % len(self.calls)]
                    effects = h.do("completed", cid, "agent")
                    del self.calls[cid]
                    self.see(effects)
                    effects = h.do("take_over", key, cid)
                    self.calls[cid] = self.engaged.pop(key)
                    self.see(effects)
            elif name == "set_agent":
                spec = RECONFIGURED[op[1]]
                self.max_offers[spec.id] = spec.max_offers
                self.see(h.do("set_agent", spec))
            elif name == "strategy":
                spec = next(q for q in QUEUES if q.name == op[1])
                (self.ring_all.add if op[2] == "ring-all" else self.ring_all.discard)(op[1])
                self.see(h.do("set_queue", QueueSpec(**{**_fields(spec), "strategy": op[2]})))
        except RoutingError:
            pass                                   # refused (e.g. pausing a logged-out agent): nothing changed
        self.check()


def _fields(spec: QueueSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=5, max_size=80), st.integers(0, 3), st.booleans())
def test_invariants_hold_after_every_step(steps: list[tuple[Any, ...]], seed: int, staffed: bool) -> None:
    driver = Driver(seed)
    if staffed:                                    # half the runs start with everyone logged in
        for a in range(len(AGENTS)):
            driver.step(("login", a))
    for op in steps:
        driver.step(op)
    driver.step(("advance", 45.0))
    driver.step(("advance", 45.0))


def test_a_long_busy_day_keeps_the_invariants() -> None:
    """One long deterministic run (many more steps than the examples above) through the same checks."""
    import random
    rng = random.Random(11)
    driver = Driver(seed=1)
    for a in range(len(AGENTS)):
        driver.step(("login", a))
    for _ in range(3000):
        kind = rng.random()
        if kind < 0.25:
            driver.step(("enqueue", rng.choice("abcd"), rng.randrange(10), rng.randrange(2), None,
                         rng.random() < 0.1, {}))
        elif kind < 0.45:
            driver.step(("accept", rng.randrange(1000)))
        elif kind < 0.55:
            driver.step(("reject", rng.randrange(1000), "rejected"))
        elif kind < 0.75:
            driver.step(("complete", rng.randrange(1000), "caller"))
        elif kind < 0.8:
            driver.step(("abandon", rng.randrange(1000)))
        elif kind < 0.83:
            driver.step(("cb_answer", rng.randrange(1000)))
        elif kind < 0.85:
            driver.step(("cb_fail", rng.randrange(1000), rng.choice([None, 30.0])))
        elif kind < 0.88:
            name, agent = rng.choice(["pause", "resume", "logout", "login"]), rng.randrange(len(AGENTS))
            driver.step(("pause", agent, "x") if name == "pause" else (name, agent))
        else:
            driver.step(("advance", rng.uniform(0.5, 20)))
    assert sum(driver.exits.values()) > 300

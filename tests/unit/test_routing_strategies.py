"""Each distribution strategy of routing/ on an injected clock (routing.testing.Harness), and the
free-agent indexes behind them (routing.strategies.FreeIndex) where a distribution is asserted."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from routing.agents import AgentRec
from routing.effects import CancelOffer, Connect, Exit
from routing.model import AgentSpec, QueueSpec, Strategy
from routing.strategies import FreeIndex, choose
from routing.testing import Harness


def harness(strategy: Strategy, agents: list[AgentSpec], **queue: object) -> Harness:
    return Harness(queues=[QueueSpec("q", strategy=strategy, **queue)], agents=agents, check=True)  # type: ignore[arg-type]


def serve(h: Harness, cid: str, *, talk: float = 10.0) -> str:
    """Enqueue ``cid``, answer its offer, talk, hang up; returns the agent who got it."""
    h.enqueue(cid, "q")
    offer = h.offers_to()[-1]
    assert offer.contact == cid
    h.answer(offer.agent)
    h.wait(talk)
    h.do("completed", cid, "caller")
    return offer.agent


def test_longest_idle_offers_the_agent_idle_longest_since_their_last_call() -> None:
    h = harness("longest-idle", [AgentSpec(a, wrap_up_s=0) for a in ("ann", "bob", "cid")])
    for t, a in ((0, "bob"), (1, "cid"), (2, "ann")):
        h.at(t)
        h.do("login", a)
    h.at(5)
    assert serve(h, "c1") == "bob"            # logged in first: idle since t=0
    assert serve(h, "c2") == "cid"            # bob's call ended at t=15: cid has waited since t=1
    assert serve(h, "c3") == "ann"
    assert serve(h, "c4") == "bob"            # the longest since a call ended


def test_fewest_calls_counts_answered_calls_since_login_ties_by_longest_idle() -> None:
    h = harness("fewest-calls", [AgentSpec(a, wrap_up_s=0) for a in ("ann", "bob")])
    h.do("login", "ann")
    h.wait(1)
    h.do("login", "bob")
    assert serve(h, "c1") == "ann"            # 0 calls each: ann idle longer
    assert serve(h, "c2") == "bob"            # ann 1, bob 0
    assert serve(h, "c3") == "ann"            # 1 each: ann's call ended first
    h.do("logout", "ann")
    h.do("login", "ann")                      # a new login starts the count again
    assert serve(h, "c4") == "ann"


def test_round_robin_continues_after_the_last_agent_offered() -> None:
    h = harness("round-robin", [AgentSpec(a, wrap_up_s=0) for a in ("ann", "bob", "cid")])
    for a in ("ann", "bob", "cid"):
        h.do("login", a)
    assert [serve(h, f"c{i}") for i in range(4)] == ["ann", "bob", "cid", "ann"]
    h.do("pause", "bob", "lunch")
    assert [serve(h, f"d{i}") for i in range(3)] == ["cid", "ann", "cid"]   # bob skipped, memory kept


def test_linear_always_starts_from_the_top_by_order_then_id() -> None:
    agents = [AgentSpec("zed", order=0, wrap_up_s=0), AgentSpec("amy", order=1, wrap_up_s=0),
              AgentSpec("bea", order=1, wrap_up_s=0)]
    h = harness("linear", agents)
    for a in ("bea", "amy", "zed"):
        h.do("login", a)
    assert [serve(h, f"c{i}") for i in range(3)] == ["zed", "zed", "zed"]
    h.enqueue("x1", "q")
    h.enqueue("x2", "q")
    h.enqueue("x3", "q")
    assert [o.agent for o in h.offers_to()[-3:]] == ["zed", "amy", "bea"]


def test_best_proficiency_sums_the_queues_skills_and_ties_by_longest_idle() -> None:
    agents = [AgentSpec("ann", skills={"fr": 2, "tech": 2}, wrap_up_s=0),
              AgentSpec("bob", skills={"fr": 5, "tech": 1}, wrap_up_s=0),
              AgentSpec("cid", skills={"fr": 1, "tech": 5}, wrap_up_s=0)]
    h = harness("best-proficiency", agents, skills={"fr": 1, "tech": 1})
    for a in ("cid", "bob", "ann"):
        h.do("login", a)
        h.wait(1)
    assert serve(h, "c1") == "cid"            # 6 = 6 > 4: cid idle longer than bob
    assert serve(h, "c2") == "bob"
    assert serve(h, "c3") == "cid"            # a call does not lower the score
    h.do("pause", "cid", "x")
    h.do("pause", "bob", "x")
    assert serve(h, "c4") == "ann"


def test_ring_all_rings_every_eligible_agent_and_the_first_answer_wins() -> None:
    agents = [AgentSpec("ann", skills={"fr": 1}), AgentSpec("bob", skills={"fr": 3}), AgentSpec("cid")]
    h = harness("ring-all", agents, skills={"fr": 1})
    for a in ("ann", "bob", "cid"):
        h.do("login", a)
    h.enqueue("c1", "q")
    assert sorted(o.agent for o in h.offers_to()) == ["ann", "bob"]      # cid lacks the skill
    effects = h.answer("bob")
    cancels = [e for e in effects if isinstance(e, CancelOffer)]
    assert [(c.agent, c.reason) for c in cancels] == [("ann", "taken")]
    assert effects.index(cancels[0]) < next(i for i, e in enumerate(effects) if isinstance(e, Connect))
    assert [e.outcome for e in effects if isinstance(e, Exit)] == ["answered"]
    assert h.state("ann") == "available" and h.state("bob") == "on_call"


def test_ring_all_adds_an_agent_who_becomes_free_while_it_rings_and_rerings_after_a_round() -> None:
    h = harness("ring-all", [AgentSpec("ann"), AgentSpec("bob")], ring_timeout_s=10, max_no_answer=0)
    h.do("login", "ann")
    h.enqueue("c1", "q")
    h.wait(4)
    h.do("login", "bob")
    assert [o.agent for o in h.offers_to()] == ["ann", "bob"]
    h.at(10)                                  # ann's offer times out; bob still rings: not ann again yet
    assert [o.agent for o in h.offers_to()] == ["ann", "bob"]
    assert h.state("ann") == "available"
    h.at(14)                                  # bob's too: the round is over, everyone free rings again
    assert [o.agent for o in h.offers_to()][2:] == ["ann", "bob"]


def test_random_strategy_offers_someone_free_and_repeats_with_the_seed() -> None:
    def run(seed: int) -> list[str]:
        h = Harness(queues=[QueueSpec("q", strategy="random")], seed=seed, check=True,
                    agents=[AgentSpec(a, wrap_up_s=0) for a in "abcdef"])
        for a in "abcdef":
            h.do("login", a)
        return [serve(h, f"c{i}") for i in range(12)]
    assert run(7) == run(7)
    assert len(set(run(7))) > 1


def recs(*specs: AgentSpec) -> list[AgentRec]:
    return [AgentRec(s, state="available", idle_since=float(i)) for i, s in enumerate(specs)]


def test_random_index_is_uniform_and_forgets_removed_agents() -> None:
    index = FreeIndex("random", {}, random.Random(1))
    agents = recs(*(AgentSpec(f"a{i}") for i in range(5)))
    for r in agents:
        index.add(r)
    index.discard(agents[2])
    counts = Counter(index.pick(lambda r: True).id for _ in range(4000))  # type: ignore[union-attr]
    assert set(counts) == {"a0", "a1", "a3", "a4"}
    assert all(800 < n < 1200 for n in counts.values()), counts


def test_weighted_random_follows_the_weights_and_the_accept_filter() -> None:
    index = FreeIndex("weighted-random", {}, random.Random(2))
    agents = recs(AgentSpec("light", weight=1), AgentSpec("heavy", weight=3), AgentSpec("gone", weight=50),
                  *(AgentSpec(f"x{i}", weight=2) for i in range(40)))    # grows the tree past one size
    for r in agents:
        index.add(r)
    index.discard(agents[2])
    counts = Counter(index.pick(lambda r: r.id in ("light", "heavy")).id for _ in range(4000))  # type: ignore[union-attr]
    assert set(counts) == {"light", "heavy"}
    assert 0.70 < counts["heavy"] / 4000 < 0.80, counts
    overall = Counter(index.pick(lambda r: True).id for _ in range(8400))  # type: ignore[union-attr]
    assert "gone" not in overall
    assert 2.4 < overall["heavy"] / overall["light"] < 3.8, overall


def test_weighted_random_through_the_router() -> None:
    h = Harness(queues=[QueueSpec("q", strategy="weighted-random")], seed=3, check=True,
                agents=[AgentSpec("light", wrap_up_s=0), AgentSpec("heavy", weight=4, wrap_up_s=0)])
    h.do("login", "light")
    h.do("login", "heavy")
    got = Counter(serve(h, f"c{i}", talk=1) for i in range(200))
    assert got["heavy"] > 2 * got["light"] > 0, got


@pytest.mark.parametrize("strategy", ["longest-idle", "fewest-calls", "linear", "best-proficiency",
                                      "round-robin", "random", "weighted-random", "ring-all"])
def test_every_index_skips_what_accept_refuses_and_empties(strategy: Strategy) -> None:
    index = FreeIndex(strategy, {"s": 1}, random.Random(0))
    agents = recs(*(AgentSpec(f"a{i}", skills={"s": 1 + i % 5}) for i in range(30)))
    for r in agents:
        index.add(r)
    picked = index.pick(lambda r: r.id == "a17")
    assert picked is not None and picked.id == "a17"
    assert index.pick(lambda r: False) is None
    for r in agents:
        index.discard(r)
    assert index.pick(lambda r: True) is None and len(index) == 0


def test_choose_orders_candidates_like_the_indexes() -> None:
    a, b, c = recs(AgentSpec("a", order=2, skills={"s": 1}), AgentSpec("b", order=1, skills={"s": 4}),
                   AgentSpec("c", order=3, skills={"s": 4}))
    rng = random.Random(0)
    assert choose("longest-idle", [c, b, a], {}, rng) is a
    assert choose("linear", [c, b, a], {}, rng) is b
    assert choose("best-proficiency", [c, b, a], {"s": 1}, rng) is b      # 4 = 4, b idle longer
    assert choose("round-robin", [c, b, a], {}, rng, last=(2, "a")) is c
    assert choose("round-robin", [c, b, a], {}, rng, last=(3, "c")) is b  # wraps around
    assert choose("longest-idle", [], {}, rng) is None

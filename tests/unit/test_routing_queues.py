"""Queues in routing/: order with priority and aging, queue priority across queues, max length and
max wait with their overflows, escalation steps, the preferred-agent window, abandons, callbacks,
positions, estimated waits, live reconfiguration."""

from __future__ import annotations

import pytest

from routing.effects import CancelOffer, Exit, Log, Offer
from routing.estimate import DEFAULT_HANDLE_S
from routing.exceptions import DuplicateContact, InvalidSpec, InvalidTransition, UnknownContact, UnknownQueue
from routing.model import AgentSpec, EscalationStep, QueueSpec
from routing.testing import Harness


def busy_then_free(h: Harness, agent: str = "ann") -> list[str]:
    """Log ``agent`` in and return the contacts offered to them, in order, as they answer and hang up."""
    got = []
    h.do("login", agent)
    while (offer := h.offer_for(agent)) is not None:
        got.append(offer.contact)
        h.answer(agent)
        h.do("completed", offer.contact, "caller")
    return got


def test_order_is_priority_plus_vip_then_fifo() -> None:
    h = Harness(queues=[QueueSpec("q", aging_per_min=0, vip_boost=10)], agents=[AgentSpec("ann", wrap_up_s=0)])
    h.enqueue("plain1", "q")
    h.wait(1)
    h.enqueue("vip", "q", vip_tier=1)
    h.enqueue("urgent", "q", priority=11)
    h.enqueue("plain2", "q")
    h.enqueue("tie", "q", priority=10, entered_at=h.now)      # same effective priority as vip: later
    assert [h.router.position(c) for c in ("urgent", "vip", "tie", "plain1", "plain2")] == [1, 2, 3, 4, 5]
    assert busy_then_free(h) == ["urgent", "vip", "tie", "plain1", "plain2"]


def test_aging_lets_a_long_waiter_overtake_a_higher_priority() -> None:
    h = Harness(queues=[QueueSpec("q", aging_per_min=2)], agents=[AgentSpec("ann", wrap_up_s=0)])
    h.enqueue("old", "q")                                       # priority 0, waited 6 min at t=360: 12
    h.at(300)
    h.enqueue("new", "q", priority=11)                          # 11 + 2 per minute from t=300: 13 at 360
    h.enqueue("newer", "q", priority=9)                         # 9 at 300, 11 at 360
    assert h.router.position("old") == 2
    assert busy_then_free(h) == ["new", "old", "newer"]


def test_an_agent_serving_two_queues_takes_from_the_higher_priority_queue_first() -> None:
    queues = [QueueSpec("low", skills={"a": 1}, priority=0), QueueSpec("high", skills={"b": 1}, priority=5)]
    h = Harness(queues=queues, agents=[AgentSpec("ann", skills={"a": 1, "b": 1}, wrap_up_s=0)], check=True)
    h.enqueue("l1", "low", priority=100)
    h.wait(60)
    h.enqueue("h1", "high")
    h.enqueue("h2", "high")
    assert busy_then_free(h) == ["h1", "h2", "l1"]


def test_contact_skills_add_to_the_queues_minimums() -> None:
    agents = [AgentSpec("ann", skills={"sales": 5}), AgentSpec("bob", skills={"sales": 1, "fr": 3})]
    h = Harness(queues=[QueueSpec("q", skills={"sales": 1})], agents=agents, check=True)
    h.do("login", "ann")
    h.do("login", "bob")
    h.enqueue("c1", "q", skills={"fr": 2, "sales": 1})
    assert [o.agent for o in h.offers_to()] == ["bob"]
    h.enqueue("c2", "q", skills={"sales": 4})
    assert [o.agent for o in h.offers_to()] == ["bob", "ann"]
    assert h.logs("ENTERQUEUE")[0].data["skills"] == {"sales": 1, "fr": 2}


def test_a_full_queue_overflows_at_once_or_moves_to_its_overflow_queue() -> None:
    queues = [QueueSpec("small", max_length=1, overflow="voicemail:sales"),
              QueueSpec("a", max_length=1, overflow="queue:b"), QueueSpec("b")]
    h = Harness(queues=queues, check=True)
    h.enqueue("s1", "small")
    effects = h.enqueue("s2", "small")
    assert [e for e in effects if isinstance(e, Exit)] == [
        Exit("s2", "small", "overflowed", reason="full", target="voicemail:sales")]
    assert h.logs("EXITFULL")[0].data == {"target": "voicemail:sales"}
    h.enqueue("a1", "a")
    h.wait(5)
    h.enqueue("a2", "a", entered_at=h.now - 30)
    assert h.router.contact("a2").queue == "b"                 # type: ignore[union-attr]
    assert h.router.contact("a2").entered_at == h.now - 30     # type: ignore[union-attr]
    enter = h.logs("ENTERQUEUE")[-1]
    assert (enter.queue, enter.data["from"]) == ("b", "a")
    assert len(h.exits()) == 1


def test_max_wait_logs_exitwithtimeout_and_overflows() -> None:
    queues = [QueueSpec("first", max_wait_s=60, overflow="queue:second", skills={"x": 1}),
              QueueSpec("second", max_wait_s=30, overflow="voicemail:99")]
    h = Harness(queues=queues, agents=[AgentSpec("ann", skills={"x": 1})], check=True)
    h.do("login", "ann")
    h.enqueue("busy", "first")
    h.answer("ann")
    h.enqueue("c1", "first")
    h.at(60)
    assert h.router.contact("c1").queue == "second"            # type: ignore[union-attr]
    assert h.logs("EXITWITHTIMEOUT")[0].data == {"waittime": 60.0, "target": "queue:second"}
    h.at(89.9)
    assert h.router.position("c1") == 1                        # the second queue's 30 s count from the move
    h.at(90)
    assert h.exits()[-1] == Exit("c1", "second", "overflowed", reason="max_wait", target="voicemail:99")
    assert h.router.contact("c1") is None and h.router.position("c1") is None


def test_max_wait_while_ringing_cancels_the_offer() -> None:
    h = Harness(queues=[QueueSpec("q", max_wait_s=20, ring_timeout_s=30)], agents=[AgentSpec("ann")], check=True)
    h.enqueue("c1", "q")
    h.at(10)
    h.do("login", "ann")
    fired = h.at(20)
    assert [(e.reason) for e in fired if isinstance(e, CancelOffer)] == ["overflowed"]
    assert h.exits() == [Exit("c1", "q", "overflowed", reason="max_wait")]
    assert h.state("ann") == "available"


def test_escalation_relaxes_skills_then_widens_to_another_queues_agents() -> None:
    steps = (EscalationStep(30, skills={"fr": 2}), EscalationStep(60, add_queues=("english",)))
    queues = [QueueSpec("french", skills={"fr": 4}, escalation=steps), QueueSpec("english", skills={"en": 1})]
    agents = [AgentSpec("novice", skills={"fr": 2}), AgentSpec("eve", skills={"en": 3})]
    h = Harness(queues=queues, agents=agents, check=True)
    h.do("login", "eve")
    h.do("login", "novice")
    h.do("pause", "novice", "x")
    h.enqueue("c1", "french")
    h.at(29.9)
    assert h.offers_to() == []
    h.at(30)
    esc = h.logs("ESCALATE")[0]
    assert esc.data == {"step": 1, "skills": {"fr": 2}, "queues": [], "waittime": 30.0}
    assert h.offers_to() == []                                 # novice is on a break
    h.do("resume", "novice")
    assert [o.agent for o in h.offers_to()] == ["novice"]      # relaxed: novice is not in french's minimums
    h.decline("novice")                                        # nobody else may take it: novice again
    assert [o.agent for o in h.offers_to()] == ["novice", "novice"]
    h.do("pause", "novice", "x")                               # pending while it rings
    h.decline("novice")
    assert h.state("novice") == "break" and len(h.offers_to()) == 2
    h.at(60)
    assert h.logs("ESCALATE")[1].data["queues"] == ["english"]
    assert [o.agent for o in h.offers_to()] == ["novice", "novice", "eve"]


def test_escalated_contacts_are_found_by_agents_who_become_free_later() -> None:
    steps = (EscalationStep(10, skills={}, add_queues=("other",)),)
    queues = [QueueSpec("main", skills={"m": 1}, escalation=steps, priority=1), QueueSpec("other", skills={"o": 1})]
    h = Harness(queues=queues, agents=[AgentSpec("oli", skills={"o": 1})], check=True)
    h.enqueue("o1", "other", priority=50)
    h.enqueue("m1", "main")
    h.at(10)
    h.do("login", "oli")                                        # main has the higher queue priority
    assert [o.contact for o in h.offers_to()] == ["m1"]


def test_the_preferred_agent_is_offered_first_then_anyone_after_the_window() -> None:
    h = Harness(queues=[QueueSpec("q", preferred_agent_s=20)], agents=[AgentSpec("ann"), AgentSpec("bob")],
                check=True)
    h.do("login", "ann")
    h.do("login", "bob")
    h.enqueue("c1", "q", preferred_agent="bob")
    assert [o.agent for o in h.offers_to()] == ["bob"]         # ann is idle longer: bob anyway
    h.answer("bob")
    h.enqueue("c2", "q", preferred_agent="bob")                # bob busy: kept for bob
    assert len(h.offers_to()) == 1 and h.state("ann") == "available"
    h.at(19.9)
    assert len(h.offers_to()) == 1
    h.at(20)
    assert [o.agent for o in h.offers_to()] == ["bob", "ann"]


def test_a_preferred_agent_who_is_logged_out_or_logs_out_releases_the_contact() -> None:
    h = Harness(queues=[QueueSpec("q", preferred_agent_s=300)], agents=[AgentSpec("ann"), AgentSpec("bob")],
                check=True)
    h.do("login", "ann")
    h.enqueue("c1", "q", preferred_agent="bob")                # bob logged out: at once to ann
    assert [o.agent for o in h.offers_to()] == ["ann"]
    h.do("login", "bob")
    h.do("pause", "bob", "x")
    h.enqueue("c2", "q", preferred_agent="bob")
    h.answer("ann")
    h.do("completed", "c1", "caller")
    h.wait(10)                                                  # ann free: c2 still kept for bob
    assert len(h.offers_to()) == 1
    h.do("logout", "bob")
    assert [o.agent for o in h.offers_to()] == ["ann", "ann"]


def test_abandon_while_ringing_cancels_the_offer_and_logs_abandon() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann")], check=True)
    h.enqueue("c0", "q")
    h.enqueue("c1", "q")
    h.wait(5)
    h.do("login", "ann")
    h.wait(2)
    effects = h.do("abandon", "c0")
    assert isinstance(effects[0], CancelOffer) and effects[0].reason == "abandoned"
    abandon = next(e for e in effects if isinstance(e, Log) and e.event == "ABANDON")
    assert abandon.data == {"position": 1, "origposition": 1, "waittime": 7.0, "ringing": True}
    assert Exit("c0", "q", "abandoned") in effects
    assert h.offers_to()[-1].contact == "c1"                   # ann moves on at once
    h.do("abandon", "c1")
    with pytest.raises(UnknownContact):
        h.do("abandon", "c1")


def test_a_callback_keeps_its_place_and_is_offered_as_a_callback() -> None:
    h = Harness(queues=[QueueSpec("q", max_wait_s=100)], agents=[AgentSpec("ann", wrap_up_s=0)], check=True)
    h.enqueue("c1", "q", caller="+15551")
    h.wait(10)
    h.enqueue("c2", "q")
    effects = h.do("request_callback", "c1")
    assert [e.event for e in effects if isinstance(e, Log)] == ["CALLBACKREQ"]
    assert h.logs("CALLBACKREQ")[0].data == {"position": 1, "waittime": 10.0, "number": "+15551"}
    assert h.router.position("c1") == 1 and h.router.contact("c1").callback  # type: ignore[union-attr]
    h.at(200)                                                   # no max wait for a callback
    assert h.router.position("c1") == 1 and h.router.position("c2") is None
    h.do("login", "ann")
    offer = h.offers_to()[0]
    assert (offer.contact, offer.callback) == ("c1", True)
    effects = h.answer("ann")
    assert not any(isinstance(e, Exit) for e in effects)
    assert h.logs("CALLBACKDIAL")[0].data == {"attempt": 1, "number": "+15551"}
    assert h.state("ann") == "on_call" and h.router.position("c1") is None
    with pytest.raises(InvalidTransition):
        h.do("completed", "c1", "agent")
    assert h.do("callback_answered", "c1")[-1] == Exit("c1", "q", "called_back", agent="ann")
    h.do("completed", "c1", "agent")
    assert h.state("ann") == "available"


def test_a_failed_callback_waits_for_its_retry_time_in_its_place_or_gives_up() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann", wrap_up_s=0)], check=True)
    h.enqueue("cb", "q", callback=True, caller="+1")
    h.wait(1)
    h.enqueue("later", "q")
    h.do("login", "ann")
    h.answer("ann")
    h.wait(30)
    h.do("callback_failed", "cb", h.now + 120, status="busy")
    assert h.logs("CALLBACKFAIL")[0].data == {"attempt": 1, "status": "busy", "final": False}
    assert h.router.position("cb") == 1                        # its place, though not offered yet
    assert h.offers_to()[-1].contact == "later"
    h.answer("ann")
    h.do("completed", "later", "caller")
    assert h.state("ann") == "available"
    h.wait(119)
    assert h.offers_to()[-1].contact == "later"
    h.wait(1)
    offer = h.offers_to()[-1]
    assert (offer.contact, offer.callback) == ("cb", True)
    h.answer("ann")
    h.do("callback_failed", "cb", None)
    assert h.exits()[-1] == Exit("cb", "q", "abandoned", reason="callback_unreachable")
    assert h.router.contact("cb") is None


def test_a_restored_callback_waits_for_not_before() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann")], check=True)
    h.do("login", "ann")
    h.enqueue("cb", "q", callback=True, attempts=1, entered_at=h.now - 600, not_before=h.now + 50)
    assert h.offers_to() == [] and h.router.next_deadline() == h.now + 50
    h.wait(50)
    assert h.offers_to()[0].callback
    h.answer("ann")
    h.do("callback_failed", "cb", h.now + 10)
    assert h.logs("CALLBACKFAIL")[0].data["attempt"] == 2


def test_requesting_a_callback_while_ringing_cancels_the_live_offer() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann")], check=True)
    h.do("login", "ann")
    h.enqueue("c1", "q")
    effects = h.do("request_callback", "c1")
    assert [(type(e).__name__, getattr(e, "callback", None)) for e in effects if isinstance(e, (CancelOffer, Offer))] \
        == [("CancelOffer", None), ("Offer", True)]
    assert h.do("request_callback", "c1") == []


def test_estimated_wait_is_position_times_handle_time_over_staffed_agents() -> None:
    h = Harness(queues=[QueueSpec("q", wrap_up_s=10)], agents=[AgentSpec(a) for a in ("ann", "bob", "cy")])
    h.enqueue("c1", "q")
    assert h.router.estimated_wait("c1", h.now) is None         # nobody staffed
    h.do("login", "ann")
    h.do("login", "bob")
    h.do("login", "cy")
    h.do("pause", "cy", "x")                                    # on a break: not staffed
    h.answer("ann")
    h.enqueue("c2", "q")
    h.answer("bob")
    for c in ("c3", "c4", "c5"):
        h.enqueue(c, "q")
    assert h.router.estimated_wait("c4", h.now) == 2 * DEFAULT_HANDLE_S / 2
    h.wait(50)
    h.do("completed", "c1", "caller")                           # 50 s talk + 10 s wrap-up
    assert h.router.estimated_wait("c5", h.now) == 3 * 60.0 / 2  # ann in wrap-up: c5 still third
    assert h.router.estimated_wait("nobody", h.now) is None


def test_snapshot_counts_waiting_and_agents_by_state() -> None:
    queues = [QueueSpec("a", skills={"a": 1}), QueueSpec("b", skills={"b": 1})]
    h = Harness(queues=queues, agents=[AgentSpec("ann", skills={"a": 1}), AgentSpec("bob", skills={"a": 1, "b": 1})])
    h.do("login", "ann")
    h.enqueue("b1", "b")
    h.wait(30)
    h.enqueue("b2", "b")
    snap = h.router.snapshot(h.now)
    assert snap["queues"]["b"]["waiting"] == 2 and snap["queues"]["b"]["longest_wait_s"] == 30.0
    assert snap["queues"]["a"]["agents"]["available"] == 1 and snap["queues"]["a"]["agents"]["logged_out"] == 1
    assert snap["agents"]["ann"]["state"] == "available" and snap["at"] == h.now


def test_enqueue_errors_and_unknown_queues() -> None:
    h = Harness(queues=[QueueSpec("q")])
    effects = h.enqueue("c1", "nope")
    assert effects[-1] == Exit("c1", "nope", "overflowed", reason="no_queue")
    assert [e.event for e in effects if isinstance(e, Log)] == ["EXITEMPTY"]
    h.enqueue("c1", "q")
    with pytest.raises(DuplicateContact):
        h.enqueue("c1", "q")
    with pytest.raises(InvalidSpec):
        h.enqueue("c2", "q", skills={"x": 0})
    with pytest.raises(UnknownQueue):
        h.do("remove_queue", "nope")
    assert h.router.position("c1") == 1


@pytest.mark.parametrize(("spec", "word"), [
    (QueueSpec(""), "name"), (QueueSpec("q", strategy="fastest"), "strategy"),  # type: ignore[arg-type]
    (QueueSpec("q", ring_timeout_s=0), "ring_timeout_s"), (QueueSpec("q", max_length=-1), "max_length"),
    (QueueSpec("q", overflow="elsewhere"), "overflow"), (QueueSpec("q", overflow="queue:q"), "itself"),
    (QueueSpec("q", escalation=(EscalationStep(-1),)), "after_s"), (QueueSpec("q", skills={"a": 6}), "proficiency"),
])
def test_bad_queue_specs_are_refused_with_the_field_named(spec: QueueSpec, word: str) -> None:
    with pytest.raises(InvalidSpec, match=word):
        Harness(queues=[spec])


def test_reconfiguring_a_queue_applies_to_waiting_contacts_and_removing_it_overflows_them() -> None:
    h = Harness(queues=[QueueSpec("q", skills={"x": 3})], agents=[AgentSpec("ann", skills={"x": 1})], check=True)
    h.do("login", "ann")
    h.enqueue("c1", "q")
    h.enqueue("c2", "q")
    assert h.offers_to() == []
    h.do("set_queue", QueueSpec("q", skills={"x": 1}))
    assert [o.contact for o in h.offers_to()] == ["c1"]
    effects = h.do("remove_queue", "q")
    assert [(e.contact, e.reason) for e in effects if isinstance(e, CancelOffer)] == [("c1", "overflowed")]
    assert [e for e in effects if isinstance(e, Exit)] == [Exit("c1", "q", "overflowed", reason="queue_removed"),
                                                            Exit("c2", "q", "overflowed", reason="queue_removed")]
    assert h.state("ann") == "available"
    assert h.router.snapshot(h.now)["queues"] == {}


def test_a_ring_all_callback_that_fails_rings_everyone_again_even_who_refused_before() -> None:
    """Found by the property tests: the refusals of an answered round must not outlive it."""
    h = Harness(queues=[QueueSpec("q", strategy="ring-all")], check=True,
                agents=[AgentSpec("bob", max_offers=2, wrap_up_s=0), AgentSpec("dee", wrap_up_s=0)])
    h.do("login", "bob")
    h.do("login", "dee")
    h.enqueue("cb", "q", callback=True)
    h.decline("bob")
    h.answer("dee")
    h.do("callback_failed", "cb", h.now)
    assert sorted(o.agent for o in h.offers_to()[-2:]) == ["bob", "dee"]

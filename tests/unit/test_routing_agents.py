"""Agent states and reservations in routing/: login, pause, pending changes, wrap-up across queues,
no-answer handling, offers that time out or are refused, max_offers, errors."""

from __future__ import annotations

import pytest

from routing.effects import CancelOffer, Exit, Log, Offer, StateChanged
from routing.exceptions import InvalidSpec, InvalidTransition, UnknownAgent, UnknownReservation
from routing.model import AgentSpec, QueueSpec
from routing.testing import Harness


def two_queues(**agent: object) -> Harness:
    queues = [QueueSpec("sales", skills={"sales": 1}), QueueSpec("tech", skills={"tech": 1}, wrap_up_s=30)]
    return Harness(queues=queues, check=True,
                   agents=[AgentSpec("ann", skills={"sales": 2, "tech": 2}, wrap_up_s=5, **agent)])  # type: ignore[arg-type]


def states(h: Harness, agent: str) -> list[tuple[str, str]]:
    return [(e.previous, e.state) for e in h.effects(StateChanged) if e.agent == agent]


def test_every_state_change_is_a_state_changed_and_an_agentstate_row() -> None:
    h = two_queues()
    h.do("login", "ann")
    h.do("pause", "ann", "lunch")
    h.do("pause", "ann", "meeting")
    h.do("resume", "ann")
    h.do("logout", "ann")
    assert states(h, "ann") == [("logged_out", "available"), ("available", "break"), ("break", "break"),
                                ("break", "available"), ("available", "logged_out")]
    rows = [(e.event, e.data.get("state"), e.data.get("reason")) for e in h.logs()]
    assert rows == [("AGENTLOGIN", None, None), ("AGENTSTATE", "available", ""),
                    ("PAUSE", None, "lunch"), ("AGENTSTATE", "break", "lunch"),
                    ("PAUSE", None, "meeting"), ("AGENTSTATE", "break", "meeting"),
                    ("UNPAUSE", None, None), ("AGENTSTATE", "available", ""),
                    ("AGENTLOGOFF", None, None), ("AGENTSTATE", "logged_out", "")]
    assert all(e.data["auto"] is False for e in h.logs("PAUSE"))


def test_login_twice_and_logout_twice_change_nothing() -> None:
    h = two_queues()
    h.do("login", "ann")
    assert h.do("login", "ann") == []
    h.do("logout", "ann")
    assert h.do("logout", "ann") == []
    with pytest.raises(InvalidTransition):
        h.do("pause", "ann", "lunch")
    with pytest.raises(InvalidTransition):
        h.do("resume", "ann")
    with pytest.raises(UnknownAgent):
        h.do("login", "nobody")


def test_wrap_up_is_the_queues_if_set_and_blocks_every_queue() -> None:
    h = two_queues()
    h.do("login", "ann")
    h.enqueue("t1", "tech")
    h.answer("ann")
    h.at(60)
    h.do("completed", "t1", "agent")
    assert h.state("ann") == "wrap_up" and h.router.next_deadline() == h.start + 90     # tech's 30 s
    h.enqueue("s1", "sales")                                   # ann is in wrap-up: sales waits too
    assert h.offers_to()[-1].contact == "t1"
    h.at(89.9)
    assert h.state("ann") == "wrap_up"
    h.at(90)
    assert h.offers_to()[-1].contact == "s1"
    h.answer("ann")
    h.wait(10)
    h.do("completed", "s1", "caller")
    assert h.router.next_deadline() == h.now + 5                # sales has none: ann's own 5 s
    assert [e.event for e in h.logs("COMPLETEAGENT", "COMPLETECALLER")] == ["COMPLETEAGENT", "COMPLETECALLER"]
    done = h.logs("COMPLETEAGENT")[0]
    assert done.data == {"holdtime": 0.0, "calltime": 60.0}


def test_pause_and_logout_on_a_call_are_pending_until_wrap_up_ends() -> None:
    h = two_queues()
    h.do("login", "ann")
    h.enqueue("s1", "sales")
    assert h.do("pause", "ann", "coaching") == []              # ringing: pending
    assert h.router.agent_status("ann")["pending"] == "break"
    h.answer("ann")
    h.do("logout", "ann")                                      # the last request wins
    status = h.router.agent_status("ann")
    assert status["state"] == "on_call" and status["pending"] == "logged_out" and status["contact"] == "s1"
    h.wait(20)
    h.do("completed", "s1", "caller")
    h.enqueue("s2", "sales")
    h.wait(5)
    assert h.state("ann") == "logged_out" and h.router.agent_status("ann")["pending"] == ""
    assert states(h, "ann")[-2:] == [("on_call", "wrap_up"), ("wrap_up", "logged_out")]
    assert [o.contact for o in h.offers_to()] == ["s1"]        # never offered s2


def test_a_pending_pause_applies_when_a_ringing_offer_is_refused() -> None:
    h = two_queues()
    h.do("login", "ann")
    h.enqueue("s1", "sales")
    h.do("pause", "ann", "coaching")
    h.decline("ann")
    assert h.router.agent_status("ann")["state"] == "break"
    assert h.router.agent_status("ann")["reason"] == "coaching"
    resumed = h.do("resume", "ann")
    assert any(isinstance(e, Offer) and e.contact == "s1" for e in resumed)


def test_resume_and_login_cancel_pending_changes() -> None:
    h = two_queues()
    h.do("login", "ann")
    h.enqueue("s1", "sales")
    h.answer("ann")
    h.do("pause", "ann", "x")
    h.do("resume", "ann")
    assert h.router.agent_status("ann")["pending"] == ""
    h.do("logout", "ann")
    h.do("login", "ann")
    assert h.router.agent_status("ann")["pending"] == ""
    h.do("completed", "s1", "caller")
    h.wait(5)
    assert h.state("ann") == "available"


def test_a_timeout_moves_on_to_the_next_agent_and_logs_ringnoanswer() -> None:
    q = QueueSpec("q", ring_timeout_s=15, max_no_answer=0)
    h = Harness(queues=[q], agents=[AgentSpec("ann"), AgentSpec("bob")], check=True)
    h.do("login", "ann")
    h.wait(1)
    h.do("login", "bob")
    h.enqueue("c1", "q")
    assert h.offers_to()[0].deadline == h.now + 15
    fired = h.wait(15)
    assert isinstance(fired[0], CancelOffer) and fired[0].reason == "timeout" and fired[0].agent == "ann"
    noanswer = h.logs("RINGNOANSWER")[0]
    assert noanswer.data == {"reservation": "r1", "reason": "timeout", "ring_s": 15.0}
    assert [o.agent for o in h.offers_to()] == ["ann", "bob"]  # not ann again while bob is free
    h.decline("bob", "busy")
    assert [o.agent for o in h.offers_to()] == ["ann", "bob", "ann"]
    assert h.logs("RINGNOANSWER")[-1].data["reason"] == "busy"


def test_a_refusing_agent_gets_another_contact_first_and_the_same_one_only_if_alone() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann")], check=True)
    h.do("login", "ann")
    h.enqueue("c1", "q")
    h.enqueue("c2", "q")
    h.decline("ann")
    assert [o.contact for o in h.offers_to()] == ["c1", "c2"]
    h.decline("ann")
    assert [o.contact for o in h.offers_to()] == ["c1", "c2", "c1"]
    h.do("abandon", "c2")
    h.decline("ann")                                           # only c1 left: offered to ann again
    assert [o.contact for o in h.offers_to()][-1] == "c1"


def test_max_no_answer_puts_the_agent_on_break_with_the_queues_reason() -> None:
    q = QueueSpec("q", ring_timeout_s=10, max_no_answer=2, no_answer_reason="missed-calls")
    h = Harness(queues=[q], agents=[AgentSpec("ann")], check=True)
    h.do("login", "ann")
    h.enqueue("c1", "q")
    h.wait(10)
    assert h.state("ann") == "reserved"                        # one no-answer: re-offered (alone)
    h.wait(10)
    status = h.router.agent_status("ann")
    assert (status["state"], status["reason"]) == ("break", "missed-calls")
    assert h.logs("PAUSE")[-1].data == {"reason": "missed-calls", "auto": True}
    assert h.router.position("c1") == 1
    h.do("resume", "ann")
    h.answer("ann")                                            # an answer resets the count
    assert h.router.agent_status("ann")["state"] == "on_call"


def test_max_offers_lets_an_agent_ring_for_several_contacts_but_take_one() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann", max_offers=2), AgentSpec("bob")], check=True)
    h.do("login", "ann")
    for c in ("c1", "c2", "c3"):
        h.enqueue(c, "q")
    assert [(o.contact, o.agent) for o in h.offers_to()] == [("c1", "ann"), ("c2", "ann")]
    h.do("login", "bob")
    assert h.offers_to()[-1].agent == "bob" and h.offers_to()[-1].contact == "c3"
    effects = h.do("accepted", h.offers_to()[1].reservation)
    cancel = next(e for e in effects if isinstance(e, CancelOffer))
    assert (cancel.contact, cancel.reason) == ("c1", "busy")
    assert h.router.position("c1") == 1 and h.state("ann") == "on_call"


def test_unknown_or_finished_reservations_are_refused_and_change_nothing() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann")], check=True)
    h.do("login", "ann")
    h.enqueue("c1", "q")
    rid = h.offers_to()[0].reservation
    h.wait(15)
    with pytest.raises(UnknownReservation):
        h.do("accepted", rid)
    with pytest.raises(UnknownReservation):
        h.do("rejected", "r999")
    with pytest.raises(InvalidSpec):
        h.do("completed", "c1", "nobody")


def test_bad_agent_specs_are_refused_with_the_field_named() -> None:
    h = Harness()
    for spec, word in ((AgentSpec(""), "id"), (AgentSpec("a", skills={"x": 9}), "proficiency"),
                       (AgentSpec("a", max_offers=0), "max_offers"), (AgentSpec("a", weight=0), "weight"),
                       (AgentSpec("a", wrap_up_s=-1), "wrap_up_s")):
        with pytest.raises(InvalidSpec, match=word):
            h.do("set_agent", spec)
    with pytest.raises(UnknownAgent):
        h.router.agent_status("a")


def test_changing_an_agents_skills_live_reindexes_them() -> None:
    h = two_queues()
    h.do("login", "ann")
    h.do("set_agent", AgentSpec("ann", skills={"tech": 1}))
    h.enqueue("s1", "sales")
    assert h.offers_to() == []
    effects = h.do("set_agent", AgentSpec("ann", skills={"sales": 1}))
    assert [e.contact for e in effects if isinstance(e, Offer)] == ["s1"]
    assert h.state("ann") == "reserved"                        # state kept across the change


def test_remove_agent_cancels_ringing_and_waits_for_a_call_to_end() -> None:
    h = Harness(queues=[QueueSpec("q")], agents=[AgentSpec("ann", wrap_up_s=0), AgentSpec("bob")], check=True)
    h.do("login", "ann")
    h.enqueue("c1", "q")
    effects = h.do("remove_agent", "ann")
    assert [(e.agent, e.reason) for e in effects if isinstance(e, CancelOffer)] == [("ann", "logged_out")]
    assert [e.event for e in effects if isinstance(e, Log)][-1] == "AGENTSTATE"
    with pytest.raises(UnknownAgent):
        h.router.agent_status("ann")
    h.do("login", "bob")
    h.answer("bob")
    h.do("remove_agent", "bob")
    assert h.router.agent_status("bob")["pending"] == "logged_out"
    h.do("completed", "c1", "agent")
    h.wait(10)
    with pytest.raises(UnknownAgent):
        h.router.agent_status("bob")
    assert [e.outcome for e in h.exits()] == ["answered"]
    assert not any(isinstance(e, Exit) and e.outcome != "answered" for e in h.exits())

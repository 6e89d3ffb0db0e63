"""Conversations the router did not route (routing/engagements.py): a consulted agent is on a call
and is offered nothing; a canceled consultation leaves no wrap-up and no handle time; a completed
attended transfer is the second agent's call, which ends with the queue's wrap-up."""

from __future__ import annotations

import pytest

from routing.effects import Offer
from routing.exceptions import DuplicateContact, InvalidTransition, UnknownContact
from routing.model import AgentSpec, QueueSpec
from routing.testing import Harness


def desk() -> Harness:
    return Harness(queues=[QueueSpec("help", skills={"help": 1}, wrap_up_s=7)], check=True,
                   agents=[AgentSpec("ann", skills={"help": 1}, wrap_up_s=2),
                           AgentSpec("bob", skills={"help": 1}, wrap_up_s=2)])


def test_a_consulted_agent_is_on_a_call_and_offered_nothing_until_the_consultation_ends() -> None:
    h = desk()
    h.do("login", "bob")
    h.do("engage", "bob", "consult-1", "help")
    assert h.state("bob") == "on_call"
    assert h.router.agent_status("bob")["contact"] == "consult-1"
    h.enqueue("c1", "help")
    h.wait(30)
    assert h.offers_to("bob") == []                 # busy: the caller waits
    h.do("disengage", "consult-1")
    assert [o.contact for o in h.offers_to("bob")] == ["c1"]   # free again: offered at once, no wrap-up
    assert [e.event for e in h.logs("ENGAGE", "DISENGAGE")] == ["ENGAGE", "DISENGAGE"]
    assert h.logs("DISENGAGE")[0].data["talk_s"] == pytest.approx(30)
    assert {e.contact for e in h.logs("ENGAGE", "DISENGAGE")} == {"consult-1"}   # (no contact named: the key)


def test_the_log_rows_name_the_contact_an_engagement_concerns() -> None:
    h = desk()
    h.do("login", "bob")
    h.do("engage", "bob", "consult-1", "help", about="c9")
    h.do("disengage", "consult-1")
    rows = [(e.event, e.contact, e.data["engagement"]) for e in h.logs("ENGAGE", "DISENGAGE")]
    assert rows == [("ENGAGE", "c9", "consult-1"), ("DISENGAGE", "c9", "consult-1")]


def test_only_an_available_agent_can_be_engaged_and_refusals_change_nothing() -> None:
    h = desk()
    with pytest.raises(InvalidTransition, match="logged_out"):
        h.do("engage", "bob", "k1", "help")
    h.do("login", "bob")
    h.do("pause", "bob", "lunch")
    with pytest.raises(InvalidTransition, match=r"break \(lunch\)"):
        h.do("engage", "bob", "k1", "help")
    h.do("resume", "bob")
    h.enqueue("c1", "help")                         # bob rings for c1
    with pytest.raises(InvalidTransition, match="reserved"):
        h.do("engage", "bob", "k1", "help")
    with pytest.raises(DuplicateContact):
        h.do("engage", "ann", "c1", "help")         # a key must not name a contact
    with pytest.raises(UnknownContact):
        h.do("disengage", "nothing")
    with pytest.raises(UnknownContact):
        h.do("take_over", "nothing", "c1")
    assert h.state("bob") == "reserved" and h.logs("ENGAGE") == []


def test_a_completed_transfer_is_the_second_agents_call_with_the_queues_wrap_up() -> None:
    h = desk()
    h.do("login", "ann")
    h.enqueue("c1", "help")
    h.answer("ann")
    h.do("login", "bob")
    h.do("engage", "bob", "consult-1", "help")     # ann consults bob
    h.wait(10)
    with pytest.raises(DuplicateContact):
        h.do("take_over", "consult-1", "c1")       # ann's call is not over yet
    with pytest.raises(InvalidTransition):
        h.do("completed", "consult-1", "agent")    # an engagement is not a call to complete
    h.do("completed", "c1", "agent")               # ann hands over: wrap-up
    h.do("take_over", "consult-1", "c1")
    assert h.state("ann") == "wrap_up" and h.state("bob") == "on_call"
    assert h.router.agent_status("bob")["contact"] == "c1"
    h.enqueue("c2", "help")
    h.wait(20)
    assert [o.agent for o in h.effects(Offer) if o.contact == "c2"] == ["ann"]   # after her wrap-up, not bob
    handle_times = list(h.router._queues["help"].handle_times)
    h.do("completed", "c1", "caller")               # the caller hangs up on bob
    assert h.state("bob") == "wrap_up"              # the queue's wrap-up
    done = h.logs("COMPLETETRANSFER")
    assert len(done) == 1 and done[0].agent == "bob" and done[0].data == {"by": "caller", "calltime": 20}
    assert len(h.logs("COMPLETEAGENT", "COMPLETECALLER")) == 1      # the queue counts the contact once (ann's)
    assert list(h.router._queues["help"].handle_times) == handle_times
    h.wait(8)
    assert h.state("bob") == "available"


def test_a_logout_asked_during_a_consultation_applies_when_it_ends() -> None:
    h = desk()
    h.do("login", "bob")
    h.do("engage", "bob", "consult-1", "help")
    h.do("logout", "bob")
    assert h.state("bob") == "on_call"
    h.do("disengage", "consult-1")
    assert h.state("bob") == "logged_out"

"""Interpreter unit tests: fail() and on_error, the runaway guard, hang-up clean-up, stale and early events."""

from __future__ import annotations

import pytest

from ivr import actions as act
from ivr import events as ev
from ivr.machine import APOLOGY, MAX_STEPS, FlowMachine, FlowRuntimeError
from ivr.nodes import (
    CollectNode,
    Flow,
    GotoNode,
    HttpNode,
    MenuNode,
    PlayNode,
    Prompt,
    SpeechNode,
    SubflowNode,
    Variable,
)
from ivr.testing import run_flow
from tests.unit.test_machine import T0, Call, flow

MENU = MenuNode("main", Prompt("Press 1."), {"1": "bye"})
OOPS = PlayNode("oops", Prompt("Let us start again."), next="bye")


def test_fail_apologises_then_goes_to_on_error() -> None:
    c = Call(flow(MENU, OOPS, on_error="oops"), version="v7")
    c.done()
    timer = c.timer
    out = c.fail("play failed: KeyError")
    assert c.kinds(out) == ["cancel_timer", "play"]
    apology = c.of(act.Play, out)[0]
    assert apology.text == APOLOGY["en"] and apology.node == "main"
    assert c.traces("ERROR")[0].data == {"message": "play failed: KeyError", "version": "v7"}
    assert c.press("1") == []                                  # nothing listens during the apology
    assert timer and c.send(ev.TimerFired(timer.deadline, timer.timer)) == []
    c.done()
    assert c.m.node == "oops" and c.traces("NODE")[-1].data["from"] is None


def test_fail_without_on_error_ends_the_call_after_the_apology() -> None:
    c = Call(flow(MENU), )
    c.fail()
    assert not c.m.finished
    assert c.done()[-1] == act.EndCall("main", "error") and c.m.finish_reason == "error"


def test_the_apology_speaks_the_callers_language() -> None:
    c = Call(flow(MENU), language="zh")
    c.fail()
    assert c.of(act.Play)[0].text == APOLOGY["zh"] and c.of(act.Play)[0].language == "zh"


def test_a_second_failure_while_handling_the_first_ends_the_call() -> None:
    c = Call(flow(MENU, OOPS, on_error="oops"))
    c.fail("first")
    out = c.fail("second")                                     # e.g. the apology itself could not play
    assert c.kinds(out) == ["stop_playback", "end_call"] and c.m.finish_reason == "error"
    assert [t.data["message"] for t in c.traces("ERROR")] == ["first", "second"]
    assert c.fail("third") == []


def test_a_failure_right_after_reaching_on_error_ends_the_call_but_a_later_one_apologises_again() -> None:
    f = flow(MENU, MenuNode("oops", Prompt("Start again."), {"1": "main"}), on_error="oops")
    c = Call(f)
    c.fail()
    c.done()                                                   # apology over: "oops" plays
    c.fail()
    assert c.m.finish_reason == "error"

    c = Call(f)
    c.fail()
    c.done()
    c.done()                                                   # "oops" prompt over: the call is healthy again
    c.fail()
    assert not c.m.finished and c.of(act.Play)[0].text == APOLOGY["en"]


def test_fail_releases_what_is_live() -> None:
    f = flow(CollectNode("pin", Prompt("PIN?"), "pin", next="bye", sensitive=True), on_error="bye")
    c = Call(f)
    c.done()
    out = c.fail()
    assert c.kinds(out) == ["cancel_timer", "recording_resume", "play"]
    speech = flow(SpeechNode("s", Prompt("Say it."), {"yes": "bye"}))
    c = Call(speech)
    out = c.fail()
    assert c.kinds(out) == ["stop_playback", "stop_listening", "play"]


def test_a_loop_without_input_is_stopped_by_the_runaway_guard() -> None:
    f = flow(GotoNode("a", "b"), GotoNode("b", "a"), OOPS, on_error="oops")
    c = Call(f)
    assert len(c.traces("NODE")) == MAX_STEPS
    assert "runaway flow" in c.traces("ERROR")[0].data["message"]
    assert c.of(act.Play)[0].text == APOLOGY["en"]
    c.done()
    assert c.m.node == "oops"


def test_an_on_error_target_that_loops_ends_the_call() -> None:
    f = flow(GotoNode("a", "b"), GotoNode("b", "a"), on_error="a")
    c = Call(f)
    out = c.done()
    assert out[-1] == act.EndCall("b", "error") and c.m.finish_reason == "error"
    assert len(c.traces("ERROR")) == 2


def test_a_subflow_error_goes_to_the_innermost_on_error() -> None:
    inner = Flow("inner", "x", {"x": SubflowNode("x", "missing", next="y"),
                                "y": PlayNode("y", Prompt("Inner recovery."))}, on_error="y")
    c = Call(flow(SubflowNode("s", "inner", next="bye"), OOPS, on_error="oops"), {"inner": inner})
    c.done()
    assert c.traces("NODE")[-1].data["flow"] == "inner" and c.m.node == "y"
    c.done()                                                   # the subflow ends: back to the caller's next
    assert c.m.finished and c.nodes()[-1] == "bye"

    inner = Flow("inner", "x", {"x": SubflowNode("x", "missing")})
    c = Call(flow(SubflowNode("s", "inner", next="bye"), OOPS, on_error="oops"), {"inner": inner})
    c.done()
    assert c.m.node == "oops" and c.traces("NODE")[-1].data["flow"] == "t"


def test_an_unknown_target_fails_cleanly() -> None:
    c = Call(flow(PlayNode("p", Prompt("x"), next="nowhere")))
    c.done()
    assert "has no node 'nowhere'" in c.traces("ERROR")[0].data["message"]


def test_a_bad_variable_default_is_refused_up_front() -> None:
    with pytest.raises(FlowRuntimeError, match="'n'.*not a number"):
        FlowMachine(flow(MENU, variables={"n": Variable("n", "number", default="x")}))


# -- hang-up and stale events ----------------------------------------------------------------------
def test_caller_hangup_releases_everything_and_the_machine_goes_quiet() -> None:
    f = flow(SpeechNode("s", Prompt("Say it."), {"yes": "bye"}))
    c = Call(f)
    c.done()
    out = c.hangup()
    assert c.kinds(out) == ["cancel_timer", "stop_listening"]
    assert c.m.finished and c.m.finish_reason == "caller_hangup"
    for e in (ev.Digit(T0 + 9, "1"), ev.TimerFired(T0 + 9, 1), ev.Hangup(T0 + 9)):
        assert c.send(e) == []
    assert c.fail() == []


def test_events_before_call_started_and_a_second_call_started_are_ignored() -> None:
    m = FlowMachine(flow(MENU))
    assert m.receive(ev.Digit(T0, "1")) == [] and m.receive(ev.PromptDone(T0, 1)) == []
    assert m.receive(ev.CallStarted(T0, {"caller_number": "1"}))
    assert m.receive(ev.CallStarted(T0, {})) == []
    assert m.node == "main"


def test_hangup_before_the_call_started() -> None:
    m = FlowMachine(flow(MENU))
    assert m.receive(ev.Hangup(T0)) == [] and m.finish_reason == "caller_hangup"


def test_a_digit_while_waiting_for_something_else_is_ignored() -> None:
    c = Call(flow(HttpNode("h", "http://x.test", next="bye", error="bye")))
    assert c.press("1") == [] and c.send(ev.PromptDone(c.now, 99)) == []
    assert c.send(ev.HttpResult(c.now, 99, 200, {})) == []     # not our request
    assert c.send(ev.QueueResult(c.now, "answered")) == []
    assert c.send(ev.VoicemailDone(c.now, 1.0)) == []
    assert c.send(ev.TransferResult(c.now, True)) == []
    assert c.m.node == "h" and not c.m.finished


def test_run_flow_hands_a_crash_inside_the_machine_to_fail_as_the_driver_does() -> None:
    class Bogus:
        now = T0 + 1
        type = "bogus"

    steps = run_flow(flow(MENU), [ev.CallStarted(T0), Bogus(), ev.PromptDone(T0 + 2, 2)])  # type: ignore[list-item]
    assert [a.type for a in steps[1] if a.type != "trace"] == ["stop_playback", "play"]
    assert any(isinstance(a, act.Trace) and "unknown event" in a.data["message"] for a in steps[1])
    assert steps[2][-1] == act.EndCall("main", "error")

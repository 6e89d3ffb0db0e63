"""Interpreter unit tests: branch, http, set, goto, subflow, queue, voicemail, transfer, hangup, return."""

from __future__ import annotations

from typing import Any

import pytest

from ivr import actions as act
from ivr import events as ev
from ivr.machine import HTTP_MARGIN, VOICEMAIL_MARGIN
from ivr.nodes import (
    BranchNode,
    BranchRule,
    CollectNode,
    Flow,
    GotoNode,
    HangupNode,
    HttpNode,
    PlayNode,
    Prompt,
    QueueNode,
    ReturnNode,
    Schedule,
    SetNode,
    SubflowNode,
    TransferNode,
    Variable,
    VoicemailNode,
)
from tests.unit.test_machine import T0, Call, flow, say

OPEN = PlayNode("open", Prompt("We are open."), next="bye")
SHUT = PlayNode("shut", Prompt("We are closed."), next="bye")
OFFICE = Schedule("office", "Europe/London", {d: (("09:00", "17:00"),) for d in range(5)}, holidays=("2026-12-25",))


# -- branch ----------------------------------------------------------------------------------------
def branch(*rules: tuple[str, str], otherwise: str = "shut") -> BranchNode:
    return BranchNode("check", tuple(BranchRule(c, n) for c, n in rules), otherwise)


@pytest.mark.parametrize("caller, target", [("+441234", "open"), ("+15551234", "vip"), ("+33", "shut")])
def test_branch_takes_the_first_rule_that_holds(caller: str, target: str) -> None:
    f = flow(branch(("caller_number startswith '+44'", "open"), ("caller_number == '+15551234'", "vip")),
             OPEN, SHUT, PlayNode("vip", Prompt("Hi."), next="bye"))
    c = Call(f, caller_number=caller)
    assert c.nodes() == ["check", target]
    assert c.traces("NODE")[1].data["from"] == "check"


@pytest.mark.parametrize("when, target", [
    (T0, "open"),                       # Monday 10:00 in London (UTC in January)
    (T0 + 8 * 3600, "shut"),            # 18:00
    (T0 + 5 * 86400, "shut"),           # Saturday
    (1_798_189_200.0, "shut"),          # 2026-12-25 09:00 UTC, a Friday: a holiday
])
def test_branch_on_business_hours_uses_the_events_time(when: float, target: str) -> None:
    c = Call(flow(branch(("open('office')", "open")), OPEN, SHUT, hours={"office": OFFICE}), now=when)
    assert c.m.node == target


def test_branch_on_a_number_from_a_variable() -> None:
    f = flow(SetNode("s", {"balance": "150"}, next="check"), branch(("balance > 100", "open")), OPEN, SHUT,
             variables={"balance": Variable("balance", "number")})
    assert Call(f).m.node == "open"


def test_branch_on_unknown_business_hours_fails_the_call() -> None:
    c = Call(flow(branch(("open('nowhere')", "open")), OPEN, SHUT))
    assert "nowhere" in c.traces("ERROR")[0].data["message"]
    assert c.of(act.Play)[0].text == "Sorry, something went wrong."


# -- http ------------------------------------------------------------------------------------------
def http(**kw: Any) -> HttpNode:
    kw.setdefault("url", "http://crm.test/customers/{caller_number}")
    kw.setdefault("results", {"name": "customer.name", "balance": "account.balance", "vip": "flags.0"})
    return HttpNode("lookup", next="hello", error="sorry", **kw)


HELLO = PlayNode("hello", Prompt("Hello {name}, you owe {balance}."), next="bye")
SORRY = PlayNode("sorry", Prompt("We could not look you up."), next="bye")
TYPES = {"name": Variable("name"), "balance": Variable("balance", "number"), "vip": Variable("vip", "boolean")}


def test_http_request_is_templated_and_its_reply_mapped_into_typed_variables() -> None:
    c = Call(flow(http(headers={"X-Caller": "{caller_number}"}, timeout=2), HELLO, SORRY, variables=TYPES),
             caller_number="+4412")
    req = c.of(act.HttpRequest)[0]
    assert (req.method, req.url, req.headers, req.body, req.timeout) == (
        "GET", "http://crm.test/customers/%2B4412", {"X-Caller": "+4412"}, None, 2)
    assert c.of(act.StartTimer)[0].deadline == T0 + 2 + HTTP_MARGIN
    out = c.reply(200, {"customer": {"name": "Ann"}, "account": {"balance": "12.50"}, "flags": ["yes"]})
    assert c.kinds(out) == ["cancel_timer", "play"]
    assert c.m.variables["name"] == "Ann" and c.m.variables["balance"] == 12.5 and c.m.variables["vip"] is True
    assert c.of(act.Play, out)[0].text == "Hello Ann, you owe 12.5."
    assert c.traces("HTTP")[0].data == {"url": "http://crm.test/customers/%2B4412", "status": 200, "error": ""}


def test_http_post_body_is_templated() -> None:
    c = Call(flow(http(method="POST", body={"number": "{caller_number}", "note": "hi"}, results={}), HELLO, SORRY),
             caller_number="100")
    assert c.of(act.HttpRequest)[0].body == {"number": "100", "note": "hi"}
    c.reply(204, None)
    assert c.m.node == "hello"                                   # no results wanted: a 204 is fine


@pytest.mark.parametrize("status, body, error, why", [
    (500, {"customer": {}}, "", "HTTP status 500"),
    (404, None, "", "HTTP status 404"),
    (None, None, "timeout", "timeout"),
    (None, None, "connection refused", "connection refused"),
    (200, None, "not JSON", "not JSON"),
    (200, None, "", "the reply is not JSON"),
    (200, {"customer": {"name": "Ann"}}, "", "the reply has no 'account.balance'"),
    (200, {"customer": {"name": "A"}, "account": {"balance": "lots"}, "flags": [True]}, "", "'lots' is not a number"),
])
def test_http_failures_take_the_error_branch_and_set_nothing(status: int | None, body: Any, error: str,
                                                             why: str) -> None:
    c = Call(flow(http(), HELLO, SORRY, variables=TYPES))
    c.reply(status, body, error)
    assert c.m.node == "sorry"
    assert why in c.traces("HTTP")[0].data["error"]
    assert c.m.variables["name"] == "" and c.m.variables["balance"] == 0


def test_http_never_answered_is_ended_by_the_guard_timer_and_a_late_reply_is_stale() -> None:
    c = Call(flow(http(timeout=3), HELLO, SORRY, variables=TYPES))
    request = c.request
    out = c.fire()
    assert c.m.node == "sorry" and c.of(act.Play, out)
    assert c.traces("HTTP")[0].data["error"].startswith("no reply")
    assert c.send(ev.HttpResult(c.now + 5, request.request if request else 0, 200, {})) == []


def test_http_trace_masks_sensitive_values_in_the_url() -> None:
    f = flow(CollectNode("pin", Prompt("PIN?"), "pin", next="lookup", sensitive=True),
             http(url="http://crm.test/check?pin={pin}", results={}), HELLO, SORRY)
    c = Call(f)
    c.press("1234#")
    assert c.request is not None and c.request.url == "http://crm.test/check?pin=1234"
    c.reply(200, {})
    assert c.traces("HTTP")[0].data["url"] == "http://crm.test/check?pin=****"
    assert "1234" not in repr(c.m.path)


# -- set -------------------------------------------------------------------------------------------
def test_set_templates_and_converts_to_the_declared_types() -> None:
    values = {"language": "zh", "count": "{dialled_number}", "flag": "yes", "greeting": "Hi {caller_name}"}
    f = flow(SetNode("s", values, next="p"), PlayNode("p", Prompt("{greeting}"), next="bye"),
             variables={"count": Variable("count", "number"), "flag": Variable("flag", "boolean")})
    c = Call(f, caller_name="Bo", dialled_number="007")
    assert c.m.variables["count"] == 7 and c.m.variables["flag"] is True and c.m.variables["greeting"] == "Hi Bo"
    assert c.of(act.Play)[0].language == "zh"                   # `language` steers the prompts
    assert [t.data for t in c.traces("VAR")][-4:] == [
        {"name": "language", "value": "zh"}, {"name": "count", "value": 7}, {"name": "flag", "value": True},
        {"name": "greeting", "value": "Hi Bo"}]


def test_set_with_a_value_that_does_not_convert_keeps_the_old_value_and_goes_on() -> None:
    f = flow(SetNode("s", {"count": "many"}, next="p"), PlayNode("p", Prompt("n={count}"), next="bye"),
             variables={"count": Variable("count", "number", default=3)})
    c = Call(f)
    assert c.m.variables["count"] == 3 and c.m.node == "p"
    assert "'many' is not a number" in c.traces("ERROR")[0].data["message"]
    assert not c.m.finished


def test_set_from_a_sensitive_variable_makes_the_copy_sensitive() -> None:
    f = flow(CollectNode("pin", Prompt("PIN?"), "pin", next="s", sensitive=True),
             SetNode("s", {"copy": "x{pin}", "plain": "{caller_number}"}, next="bye"))
    c = Call(f, caller_number="555")
    c.press("42#")
    assert c.m.variables["copy"] == "x42"
    assert c.m.visible_variables()["copy"] == "****" and c.m.visible_variables()["plain"] == "555"


# -- goto ------------------------------------------------------------------------------------------
def test_goto_loops_at_most_max_visits_then_takes_otherwise() -> None:
    f = flow(PlayNode("again", Prompt("Still waiting."), next="loop"),
             GotoNode("loop", "again", max_visits=2, otherwise="out"), say("Out.", next="bye"))
    c = Call(f)
    for _ in range(3):
        c.done()
    assert c.nodes() == ["again", "loop", "again", "loop", "again", "loop", "out"]


def test_goto_without_otherwise_ends_the_call_when_used_up() -> None:
    f = flow(PlayNode("again", Prompt("x"), next="loop"), GotoNode("loop", "again", max_visits=1))
    c = Call(f)
    c.done()
    out = c.done()
    assert out[-1] == act.EndCall("loop", "flow_end")


# -- subflow / return ------------------------------------------------------------------------------
def sub(**kw: Any) -> Flow:
    nodes = kw.pop("nodes", None) or {
        "ask": CollectNode("ask", Prompt("Your zip code?"), "zip", next="done", min_length=5, max_length=5),
        "done": ReturnNode("done")}
    return Flow("address", "ask", nodes, **kw)


def test_subflow_runs_another_flow_and_returns_to_next_sharing_variables() -> None:
    f = flow(SubflowNode("addr", "address", next="thanks"), PlayNode("thanks", Prompt("Zip {zip}."), next="bye"))
    s = sub(variables={"zip": Variable("zip", default="00000")})
    c = Call(f, {"address": s})
    assert c.m.variables["zip"] == "00000"                     # the subflow's declarations join the namespace
    assert c.traces("NODE")[1].data == {"flow": "address", "from": None}
    out = c.press("12345")
    assert c.of(act.Play, out)[0].text == "Zip 12345."
    assert [(t.data["flow"], t.node) for t in c.traces("NODE")] == [
        ("t", "addr"), ("address", "ask"), ("address", "done"), ("t", "thanks")]
    assert c.traces("NODE")[-1].data["from"] == "addr"


def test_a_subflow_node_with_no_next_returns_too_and_nested_returns_unwind() -> None:
    inner = Flow("inner", "hi", {"hi": PlayNode("hi", Prompt("Inner."))})
    outer = Flow("outer", "call", {"call": SubflowNode("call", "inner")})      # no next: returns on
    f = flow(SubflowNode("s", "outer", next="end"), PlayNode("end", Prompt("Back."), next="bye"))
    c = Call(f, {"inner": inner, "outer": outer})
    out = c.done()
    assert c.of(act.Play, out)[0].text == "Back."
    c = Call(flow(SubflowNode("s", "inner")), {"inner": inner})
    assert c.done()[-1] == act.EndCall("s", "flow_end")


def test_a_missing_subflow_fails_the_call_to_on_error() -> None:
    f = flow(SubflowNode("s", "nope", next="bye"), PlayNode("oops", Prompt("Oops."), next="bye"), on_error="oops")
    c = Call(f)
    assert "subflow 'nope' is not available" in c.traces("ERROR")[0].data["message"]
    c.done()                                                   # the apology
    assert c.m.node == "oops"


def test_a_subflow_calling_itself_is_stopped_by_the_depth_limit() -> None:
    loop = Flow("loop", "again", {"again": SubflowNode("again", "loop", next="again")})
    c = Call(flow(SubflowNode("s", "loop", next="bye")), {"loop": loop})
    assert "nested more than" in c.traces("ERROR")[0].data["message"]


def test_return_in_the_top_flow_hangs_up() -> None:
    c = Call(flow(ReturnNode("r")))
    assert c.out[-1] == act.EndCall("r", "flow_end")


# -- queue -----------------------------------------------------------------------------------------
def queue(**kw: Any) -> QueueNode:
    return QueueNode("q", "sales", skills={"sales": 2}, priority=3, **kw)


def test_queue_hands_the_caller_to_the_acd_with_masked_variables() -> None:
    f = flow(CollectNode("pin", Prompt("PIN?"), "pin", next="q", sensitive=True), queue())
    c = Call(f, caller_number="555")
    c.press("99#")
    enq = c.of(act.Enqueue)[0]
    assert (enq.queue, enq.skills, enq.priority) == ("sales", {"sales": 2}, 3)
    assert enq.variables["pin"] == "****" and enq.variables["caller_number"] == "555"
    assert c.press("1") == []                                   # keys while queued: nothing listens
    out = c.send(ev.QueueResult(c.now + 30, "answered"))
    assert c.kinds(out) == [] and c.m.finished and c.m.finish_reason == "queue"
    assert c.traces("QUEUE")[0].data == {"queue": "sales", "outcome": "answered"}


@pytest.mark.parametrize("outcome, kw, node, reason", [
    ("no_agents", {"no_agents": "vm"}, "vm", ""),
    ("no_agents", {"next": "after"}, "q", "no_agents"),
    ("returned", {"next": "after"}, "after", ""),
    ("called_back", {}, "q", "flow_end"),
    ("abandoned", {"next": "after"}, "q", "caller_hangup"),
])
def test_queue_outcomes(outcome: ev.QueueOutcome, kw: dict[str, Any], node: str, reason: str) -> None:
    f = flow(queue(**kw), VoicemailNode("vm", "general"), PlayNode("after", Prompt("Anything else?"), next="bye"))
    c = Call(f)
    c.send(ev.QueueResult(c.now + 1, outcome))
    assert c.m.node == node and c.m.finish_reason == reason
    assert c.send(ev.QueueResult(c.now + 2, outcome)) == []   # a second answer is stale


# -- voicemail -------------------------------------------------------------------------------------
def test_voicemail_greeting_beep_record_and_hash_ends_it() -> None:
    f = flow(VoicemailNode("vm", "sales", prompt=Prompt("Leave a message."), max_length=30, next="thanks"),
             PlayNode("thanks", Prompt("Thanks."), next="bye"))
    c = Call(f)
    assert c.kinds() == ["play"]
    out = c.done()
    assert c.kinds(out) == ["beep"]
    out = c.done()
    assert c.kinds(out) == ["record_voicemail", "start_timer"]
    assert c.of(act.RecordVoicemail, out) == [act.RecordVoicemail("sales", 30, "vm")]
    assert c.press("5") == []                                  # only '#' ends it
    out = c.press("#")
    assert c.kinds(out) == ["stop_voicemail", "cancel_timer", "start_timer"]
    out = c.send(ev.VoicemailDone(c.now + 0.3, 12.5))
    assert c.kinds(out) == ["cancel_timer", "play"] and c.m.node == "thanks"
    assert c.traces("VOICEMAIL")[0].data == {"mailbox": "sales", "seconds": 12.5}


def test_voicemail_stops_at_max_length_and_a_lost_done_is_guarded() -> None:
    c = Call(flow(VoicemailNode("vm", "general", beep=False, max_length=60)))
    assert c.kinds() == ["record_voicemail", "start_timer"] and c.timer and c.timer.deadline == T0 + 60
    out = c.fire()
    assert c.kinds(out) == ["stop_voicemail", "start_timer"]
    assert c.timer and c.timer.deadline == T0 + 60 + VOICEMAIL_MARGIN
    out = c.fire()                                             # no VoicemailDone ever came
    assert out[-1] == act.EndCall("vm", "flow_end")
    assert "did not report its end" in c.traces("ERROR")[0].data["message"]


def test_hangup_while_recording_a_voicemail_stops_it() -> None:
    c = Call(flow(VoicemailNode("vm", "general", beep=False)))
    out = c.hangup()
    assert c.kinds(out) == ["cancel_timer", "stop_voicemail"] and c.m.finish_reason == "caller_hangup"


# -- transfer --------------------------------------------------------------------------------------
def test_transfer_says_its_prompt_then_transfers_to_the_templated_target() -> None:
    f = flow(TransferNode("t", "sip:{dialled_number}@pbx.test", prompt=Prompt("Transferring.")))
    c = Call(f, dialled_number="200")
    assert c.kinds() == ["play"]
    out = c.done()
    assert out == [act.Transfer("sip:200@pbx.test")]
    out = c.send(ev.TransferResult(c.now + 2, True))
    assert c.kinds(out) == [] and c.m.finished and c.m.finish_reason == "transfer"
    assert c.traces("TRANSFER")[0].data == {"target": "sip:200@pbx.test", "ok": True, "reason": ""}


def test_a_failed_transfer_goes_to_error_or_hangs_up() -> None:
    c = Call(flow(TransferNode("t", "sip:x@y", error="sorry"), PlayNode("sorry", Prompt("No."), next="bye")))
    assert c.kinds() == ["transfer"]
    c.send(ev.TransferResult(c.now + 1, False, "not allowed"))
    assert c.m.node == "sorry"
    c = Call(flow(TransferNode("t", "sip:x@y")))
    out = c.send(ev.TransferResult(c.now + 1, False, "busy"))
    assert out[-1] == act.EndCall("t", "transfer_failed") and c.m.finish_reason == "transfer_failed"


# -- hangup ----------------------------------------------------------------------------------------
def test_hangup_says_goodbye_first() -> None:
    c = Call(flow(HangupNode("bye", prompt=Prompt("Goodbye {caller_name}."))), caller_name="Ann")
    assert c.of(act.Play)[0].text == "Goodbye Ann." and not c.m.finished
    assert c.done()[-1] == act.EndCall("bye", "flow_end")
    assert c.nodes() == ["bye"]

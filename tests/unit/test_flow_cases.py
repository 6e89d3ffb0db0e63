"""The flow test harness (ivr.testing: scripted callers, coverage) and the cases-file runner (ivr.cases)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr import actions as act
from ivr.cases import CasesError, run_cases
from ivr.flow import parse_flow
from ivr.nodes import Flow, GotoNode, PlayNode, Prompt
from ivr.testing import HangUp, HttpReply, Press, Say, Wait, simulate, step_from_dict

FLOW = """\
name: shop
start: welcome
variables:
  account: {type: string, sensitive: true}
  customer: string
  balance: {type: number, default: 0}
hours:
  office:
    timezone: Europe/London
    weekly:
      mon-fri: "09:00-17:00"
nodes:
  welcome:
    type: play
    say: "Welcome."
    barge_in: true
    next: hours
  hours:
    type: branch
    rules:
      - if: "open('office')"
        next: main
    else: closed
  closed:
    type: hangup
    prompt: "We are closed."
  main:
    type: menu
    prompt: "For your balance press 1. For sales press 2. To talk press 3."
    options:
      "1": account
      "2": sales
      "3": talk
    timeout: 5
    retries: 1
    fallback: bye
  account:
    type: collect
    prompt: "Your account number, then hash."
    variable: account
    min_length: 4
    max_length: 8
    sensitive: true
    next: lookup
    fallback: bye
  lookup:
    type: http
    url: "http://crm.test/accounts/{account}"
    results:
      customer: customer.name
      balance: balance
    next: balance
    error: sorry
  balance:
    type: play
    say: "Hello {customer}, your balance is {balance}."
    next: bye
  sorry:
    type: play
    say: "We could not find you."
    next: bye
  sales:
    type: queue
    queue: sales
    no_agents: bye
  talk:
    type: speech
    prompt: "Say billing or support."
    phrases:
      billing: sales
      support: sales
    variable: topic
    timeout: 4
    retries: 0
    no_input: bye
    no_match: bye
  bye:
    type: hangup
    prompt: "Goodbye."
"""


@pytest.fixture()
def shop() -> Flow:
    return parse_flow(FLOW, "shop.yaml")


CRM = [HttpReply("http://crm.test/accounts/1234*", json={"customer": {"name": "Ann"}, "balance": 12.5}),
       HttpReply("http://crm.test/accounts/*", status=404)]


# -- simulate --------------------------------------------------------------------------------------
def test_a_scripted_caller_walks_the_menu_and_the_http_lookup(shop: Flow) -> None:
    run = simulate(shop, [Press("1"), Press("1234#")], http=CRM)
    assert run.path == ["welcome", "hours", "main", "account", "lookup", "balance", "bye"]
    assert run.end == "flow_end"
    assert run.said[-2:] == ["Hello Ann, your balance is 12.5.", "Goodbye."]
    assert run.variables["account"] == "1234" and run.visible["account"] == "****"
    assert run.action_types[:2] == ["play", "play"] and run.action_types[-1] == "end_call"
    assert "recording_pause" in run.action_types and "recording_resume" in run.action_types
    assert ("shop", "lookup", "balance") in run.coverage.edges and ("shop", "lookup") in run.coverage.nodes


def test_http_replies_by_rule_timeout_and_never(shop: Flow) -> None:
    assert simulate(shop, [Press("1"), Press("9999#")], http=CRM).path[-2:] == ["sorry", "bye"]
    for error in ("timeout", "never", "connection refused"):
        run = simulate(shop, [Press("1"), Press("1234#")], http=[HttpReply(error=error)])
        assert run.path[-2:] == ["sorry", "bye"], error
    run = simulate(shop, [Press("1"), Press("1234#")])
    assert run.path[-2:] == ["sorry", "bye"] and "no HTTP reply given" in run.notes[0]
    slow = simulate(shop, [Press("1"), Press("1234#")], http=[HttpReply(delay=10, json={})])
    assert slow.path[-2:] == ["sorry", "bye"]                          # slower than the node's 3 s timeout


def test_waiting_fires_timers_in_order_and_a_silent_caller_runs_out_the_retries(shop: Flow) -> None:
    run = simulate(shop, [Wait(4), Press("2")], queue="no_agents")
    assert run.path == ["welcome", "hours", "main", "sales", "bye"]    # 4 s < the 5 s timeout
    run = simulate(shop, [])
    assert run.path[-2:] == ["main", "bye"] and run.end == "flow_end"
    assert [t.event for t in run.traces if t.event == "TIMEOUT"] == ["TIMEOUT", "TIMEOUT"]
    assert run.events[-1].now == run.events[0].now + 10               # two 5 s timeouts, prompts take no time


def test_speech_and_queue_outcomes(shop: Flow) -> None:
    run = simulate(shop, [Press("3"), Say("Billing", 0.8)], queue="answered")
    assert run.path[-2:] == ["talk", "sales"] and run.end == "queue" and run.variables["topic"] == "billing"
    run = simulate(shop, [Press("3"), Say("billing", 0.2)])
    assert run.path[-1] == "bye"                                         # below the 0.5 threshold
    run = simulate(shop, [Say("hello")])
    assert "while nothing listened" in run.notes[0]


def test_prompt_seconds_lets_the_caller_barge_in(shop: Flow) -> None:
    run = simulate(shop, [Press("2")], prompt_seconds=3, queue="no_agents")
    assert run.path == ["welcome", "hours", "main", "sales", "bye"]    # typed ahead into the menu
    assert run.action_types[:2] == ["play", "stop_playback"]
    assert run.events[-1].now == run.events[0].now + 3                 # the goodbye took its 3 s


def test_business_hours_follow_the_start_time(shop: Flow) -> None:
    friday_noon = datetime(2026, 1, 9, 12, tzinfo=UTC).timestamp()
    assert simulate(shop, [Press("2")], start=friday_noon).path[:3] == ["welcome", "hours", "main"]
    assert simulate(shop, [], start=friday_noon + 86400).path == ["welcome", "hours", "closed"]  # Saturday


def test_hangup_and_steps_after_the_end(shop: Flow) -> None:
    run = simulate(shop, [Press("1"), Press("12"), HangUp(), Press("3")])
    assert run.end == "caller_hangup" and run.path[-1] == "account"
    assert "ended before step 4" in run.notes[0]
    assert run.action_types[-1] == "recording_resume"


def test_a_call_that_never_ends_is_hung_up_at_max_seconds() -> None:
    # (validation refuses such a loop; built directly, as a flow from an older validator could be)
    loop = Flow("l", "a", {"a": PlayNode("a", Prompt("hi"), next="b"), "b": GotoNode("b", "a")})
    run = simulate(loop, [], max_seconds=60, prompt_seconds=1)
    assert run.end == "caller_hangup" and "still up after 60 s" in run.notes[-1]


def test_coverage_report_lists_what_was_never_reached(shop: Flow) -> None:
    run = simulate(shop, [Press("2")], queue="no_agents")
    rep = run.coverage.report([shop])
    assert (rep.nodes_hit, rep.nodes_total) == (5, 11)
    assert ("shop", "closed") in rep.missed_nodes and ("shop", "main", "account") in rep.missed_edges
    assert (rep.edges_hit, rep.edges_total) == (4, 16)                  # welcome>hours>main>sales>bye
    text = "\n".join(rep.lines("shop"))
    assert "node coverage: 5/11 (45%)" in text and "main -> account" in text


@pytest.mark.parametrize("data, words", [
    ({"press": "1x"}, "is not keys"), ({"press": "1", "say": "x"}, "unknown key 'say'"),
    ({"say": "x", "confidence": 2}, "from 0 to 1"), ({"wait": -1}, "number of seconds"), ({"jump": 1}, "one of"),
])
def test_bad_steps_are_refused(data: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        step_from_dict(data)


def test_steps_from_dicts() -> None:
    assert step_from_dict({"press": "12#", "gap": 1}) == Press("12#", 1.0)
    assert step_from_dict({"say": "yes"}) == Say("yes", 0.9)
    assert step_from_dict({"hangup": True}) == HangUp()


# -- the cases file --------------------------------------------------------------------------------
CASES = """\
cases:
  - name: balance by key
    caller: {number: "+15551234", name: Ann}
    steps: [{press: "1"}, {press: "1234#"}]
    http: [{url: "http://crm.test/accounts/*", json: {customer: {name: Ann}, balance: 12.5}}]
    expect:
      path: [welcome, hours, main, account, lookup, balance, bye]
      variables: {account: "1234", balance: 12.5, customer: Ann}
      actions: [recording_pause, http_request, end_call]
      said: ["balance is 12.5", "Goodbye"]
      end: flow_end
  - name: closed at night
    time: "2026-01-05T22:00:00"
    expect: {visits: [closed], end: flow_end}
  - name: sales, nobody there
    steps: [{press: "2"}]
    queue: no_agents
    expect: {visits: [sales, bye]}
"""


def write(tmp_path: Path, cases: str) -> tuple[Path, Path]:
    (tmp_path / "shop.yaml").write_text(FLOW)
    (tmp_path / "cases.yaml").write_text(cases)
    return tmp_path / "shop.yaml", tmp_path / "cases.yaml"


def test_cases_pass_and_coverage_is_summed(tmp_path: Path) -> None:
    report = run_cases(*write(tmp_path, CASES))
    assert report.passed, report.text()
    assert [r.name for r in report.results] == ["balance by key", "closed at night", "sales, nobody there"]
    assert report.coverage.nodes_hit == 9 and report.coverage.nodes_total == 11
    text = report.text()
    assert "PASS  balance by key" in text and "3 of 3 cases passed" in text
    assert "never entered: sorry, talk" in text and "lookup -> sorry" in text


def test_failed_expectations_say_what_happened(tmp_path: Path) -> None:
    cases = """\
cases:
  - name: wrong turn
    steps: [{press: "2"}]
    queue: no_agents
    expect:
      path: [welcome, hours, main, account]
      variables: {balance: 3, customer: Bob, nothing: 1}
      actions: [transfer]
      said: [Goodbye, Welcome]
      end: queue
"""
    report = run_cases(*write(tmp_path, cases))
    assert not report.passed
    text = report.text()
    assert "FAIL  wrong turn  (" in text and "cases.yaml:2)" in text
    assert "first difference at step 4: expected 'account', got 'sales'" in text
    assert "variables.balance: expected 3, got 0" in text
    assert "variables.customer: expected 'Bob', got ''" in text
    assert "variables.nothing: expected 1, but it was never set" in text
    assert "actions: no 'transfer'" in text
    assert "said: no prompt containing 'Welcome' (in that order)" in text
    assert "end: expected queue, got flow_end" in text
    assert "0 of 1 cases passed (1 failed)" in text


def test_leading_zeros_in_the_cases_file_survive(tmp_path: Path) -> None:
    cases = """\
cases:
  - name: zeros
    steps: [{press: 1}, {press: 0012#}]
    http: [{url: "*/0012", json: {customer: {name: Z}, balance: 0}}]
    expect: {variables: {account: 0012}, visits: [balance]}
"""
    report = run_cases(*write(tmp_path, cases))
    assert report.passed, report.text()
    assert report.results[0].run.variables["account"] == "0012"


@pytest.mark.parametrize("cases, line, words", [
    ("cases: [\n", 2, "not valid YAML"),
    ("tests: []\n", 1, "unknown key 'tests'"),
    ("cases: []\n", 1, "non-empty list"),
    ("cases:\n  - name: a\n    stpes: []\n", 3, "unknown key 'stpes'"),
    ("cases:\n  - steps: []\n", 2, "needs a `name:`"),
    ("cases:\n  - name: a\n    steps:\n      - {press: x}\n", 4, "is not keys"),
    ("cases:\n  - name: a\n    queue: maybe\n", 3, "not one of"),
    ("cases:\n  - name: a\n    time: yesterday\n", 3, "ISO 8601"),
    ("cases:\n  - name: a\n    http:\n      - {url: x, status: 999}\n", 4, "not an HTTP status"),
    ("cases:\n  - name: a\n    http:\n      - {uri: x}\n", 4, "unknown key 'uri'"),
    ("cases:\n  - name: a\n    expect:\n      path: [welcome, mian]\n", 4, "'mian' is not a node"),
    ("cases:\n  - name: a\n    expect: {ends: x}\n", 3, "unknown key 'ends'"),
    ("cases:\n  - name: a\n  - name: a\n", 3, "a second case named 'a'"),
])
def test_cases_file_errors_name_the_line(tmp_path: Path, cases: str, line: int, words: str) -> None:
    with pytest.raises(CasesError) as err:
        run_cases(*write(tmp_path, cases))
    first = err.value.problems[0]
    assert (first.line, words in first.message) == (line, True), str(err.value)
    assert str(first).startswith(f"{tmp_path / 'cases.yaml'}:{line}: ")


def test_subflows_from_the_cases_file(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("name: m\nstart: s\nnodes:\n  s: {type: subflow, flow: greet, next: bye}\n"
                                        "  bye: {type: hangup}\n")
    (tmp_path / "greet.yaml").write_text("name: greet\nstart: hi\nnodes:\n  hi: {type: play, say: Hi there}\n")
    (tmp_path / "cases.yaml").write_text("subflows: {greet: greet.yaml}\ncases:\n  - name: a\n"
                                         "    expect: {path: [s, hi, bye], said: [Hi there]}\n")
    report = run_cases(tmp_path / "main.yaml", tmp_path / "cases.yaml")
    assert report.passed, report.text()
    assert report.coverage.nodes_total == 3 and report.coverage.nodes_hit == 3
    assert report.coverage.edges_hit == report.coverage.edges_total == 1
    assert isinstance(report.results[0].run.actions[-1], act.EndCall)

"""ivr/validate.py through check_flow: every semantic error and warning, with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.exceptions import FlowError
from ivr.flow import check_flow, parse_flow
from ivr.nodes import Flow, GotoNode, HangupNode, PlayNode, Prompt
from ivr.validate import validate_flow


def check(body: str, head: str = "", **kw: object) -> tuple[Flow | None, list[FlowError]]:
    """A flow named t starting at `a`: ``head`` is inserted before `nodes:`, ``body`` is the nodes."""
    return check_flow(f"name: t\nstart: a\n{head}nodes:\n{body}", "t.yaml", **kw)  # type: ignore[arg-type]


def find(problems: list[FlowError], words: str) -> FlowError:
    hits = [p for p in problems if words in p.message]
    assert len(hits) == 1, [str(p) for p in problems]
    return hits[0]


def errors(problems: list[FlowError]) -> list[str]:
    return [p.message for p in problems if p.severity == "error"]


BYE = "  bye: {type: hangup}\n"


def test_a_clean_flow_has_no_problems() -> None:
    flow, problems = check("  a: {type: play, say: hi, next: bye}\n" + BYE)
    assert problems == [] and flow is not None


def test_unknown_targets_with_suggestions() -> None:
    body = ("  a:\n    type: menu\n    prompt: p\n    options:\n      1: bye\n      2: byee\n      3: zzz\n"
            "    fallback: nowhere\n" + BYE)
    flow, problems = check(body)
    assert flow is None
    e = find(problems, "`options.2` names 'byee'")
    assert e.line == 9 and "(did you mean 'bye'?)" in e.message and e.severity == "error"
    e = find(problems, "`options.3` names 'zzz'")
    assert e.line == 10 and "did you mean" not in e.message
    assert find(problems, "`fallback` names 'nowhere'").line == 11
    assert str(find(problems, "byee")).startswith("t.yaml:9: node 'a': ")


def test_start_and_on_error_must_name_nodes() -> None:
    _, problems = check_flow("name: t\nstart: mian\non_error: oops\nnodes:\n  main: {type: hangup}\n", "t.yaml")
    assert find(problems, "`start` names 'mian', which is not a node (did you mean 'main'?)").line == 2
    assert find(problems, "`on_error` names 'oops'").line == 3


def test_branch_and_other_targets_are_checked() -> None:
    body = ("  a:\n    type: branch\n    rules:\n      - if: caller_number == '1'\n        next: b\n"
            "      - if: 'true'\n        next: nope1\n    else: nope2\n"
            "  b: {type: http, url: 'http://x', next: nope3, error: bye}\n"
            "  c: {type: goto, target: bye, max_visits: 1, otherwise: nope4}\n"
            "  d: {type: queue, queue: q, no_agents: nope5}\n" + BYE)
    _, problems = check(body)
    assert find(problems, "`rules.1.next` names 'nope1'").line == 10
    assert find(problems, "`else` names 'nope2'").line == 11
    assert find(problems, "`next` names 'nope3'").line == 12
    assert find(problems, "`otherwise` names 'nope4'").line == 13
    assert find(problems, "`no_agents` names 'nope5'").line == 14


def test_unreachable_nodes() -> None:
    body = "  a: {type: play, say: hi, next: bye}\n  lost:\n    type: play\n    say: x\n    next: bye\n" + BYE
    flow, problems = check(body)
    assert flow is None
    e = find(problems, "node 'lost' is never reached")
    assert e.line == 5
    assert errors(problems) == [e.message]


def test_on_error_makes_nodes_reachable() -> None:
    body = "  a: {type: play, say: hi, next: bye}\n  sorry: {type: play, say: sorry, next: bye}\n" + BYE
    _, problems = check(body, "on_error: sorry\n")
    assert problems == []


@pytest.mark.parametrize("body, line, cycle", [
    ("  a: {type: goto, target: b}\n  b: {type: goto, target: a}\n", 4, "a -> b -> a"),
    ("  a: {type: play, say: one, next: b}\n  b: {type: play, say: two, next: a}\n", 4, "a -> b -> a"),
    ("  a: {type: play, say: hi, next: b}\n  b: {type: set, values: {x: '1'}, next: c}\n"
     "  c: {type: goto, target: b}\n", 5, ": b -> c -> b"),
    ("  a: {type: branch, rules: [{if: 'x == 1', next: a}], else: a}\n", 4, "a -> a"),
    ("  a: {type: menu, prompt: p, options: {1: a}, fallback: a}\n", 4, "a -> a"),
    ("  a: {type: http, url: 'http://x', next: a, error: a}\n", 4, "a -> a"),
    ("  a: {type: goto, target: a, max_visits: 3, otherwise: a}\n", 4, "a -> a"),
])
def test_loops_with_no_exit(body: str, line: int, cycle: str) -> None:
    _, problems = check(body)
    e = find(problems, "loop with no exit")
    assert e.line == line and cycle in e.message


@pytest.mark.parametrize("body", [
    "  a: {type: goto, target: b, max_visits: 3}\n  b: {type: play, say: x, next: a}\n",         # max_visits: ends
    "  a: {type: goto, target: b, max_visits: 3, otherwise: bye}\n  b: {type: play, say: x, next: a}\n" + BYE,
    "  a: {type: menu, prompt: p, options: {1: a}}\n",                       # retries run out: hang up
    "  a: {type: menu, prompt: p, options: {1: a}, no_match: a}\n",           # timeouts still hang up
    "  a: {type: menu, prompt: p, options: {1: a, 2: bye}, fallback: a}\n" + BYE,
    "  a: {type: play, say: x, next: b}\n  b: {type: subflow, flow: other}\n",   # the subflow's end ends it
    "  a: {type: play, say: x, next: b}\n  b: {type: queue, queue: q, next: a}\n",
    "  a: {type: play, say: x, next: b}\n  b: {type: transfer, target: 'sip:x@y', error: a}\n",
    "  a: {type: play, say: x, next: b}\n  b: {type: voicemail, mailbox: m, next: a}\n",
    "  a: {type: play, say: x, next: b}\n  b: {type: return}\n",
    "  a: {type: http, url: 'http://x', next: a, error: bye}\n" + BYE,
])
def test_loops_with_an_exit_are_fine(body: str) -> None:
    flow, problems = check(body)
    assert errors(problems) == [] and flow is not None


def test_several_separate_loops_are_each_reported() -> None:
    body = ("  a: {type: menu, prompt: p, options: {1: b, 2: d}}\n  b: {type: goto, target: c}\n"
            "  c: {type: goto, target: b}\n  d: {type: play, say: x, next: e}\n  e: {type: play, say: y, next: d}\n")
    _, problems = check(body)
    loops = [p for p in problems if "loop with no exit" in p.message]
    assert [(p.line, p.message.split(" (")[0]) for p in loops] == [
        (5, "loop with no exit: b -> c -> b"), (7, "loop with no exit: d -> e -> d")]


VARS = "variables:\n  balance: number\n  pin: {type: string, sensitive: true}\n"


def test_undefined_variables_everywhere_they_can_appear() -> None:
    body = (
        "  a:\n    type: menu\n    prompt: 'Hi {caller_nmber}'\n    invalid_prompt: {say: 'Bad {x1}'}\n"
        "    options: {1: h}\n"
        "  h:\n    type: http\n    url: 'https://crm/{x2}'\n    headers: {Auth: '{x3}'}\n    method: POST\n"
        "    body: {q: '{x4}'}\n    next: br\n    error: br\n"
        "  br:\n    type: branch\n    rules:\n      - if: x5 > 1\n        next: s\n    else: s\n"
        "  s: {type: set, values: {balance: '{x6}'}, next: t}\n"
        "  t: {type: transfer, target: 'sip:{x7}@pbx'}\n")
    _, problems = check(body, VARS)
    lines = {p.message.split("undefined variable ")[1].split(" ")[0]: p.line
             for p in problems if "undefined variable" in p.message}
    assert lines == {"'caller_nmber'": 9, "'x1'": 10, "'x2'": 14, "'x3'": 15, "'x4'": 17, "'x5'": 23,
                     "'x6'": 26, "'x7'": 27}
    assert "(did you mean 'caller_number'?)" in find(problems, "caller_nmber").message


def test_variables_assigned_anywhere_count_as_defined() -> None:
    body = ("  a:\n    type: play\n    say: 'You have {balance} and chose {choice}, code {code}, {greeting}'\n"
            "    next: c\n"
            "  c: {type: collect, prompt: 'Code?', variable: code, next: s}\n"
            "  s: {type: speech, prompt: 'Say yes', phrases: {yes: h}, variable: choice}\n"
            "  h: {type: http, url: 'http://x', results: {balance: a.b}, next: g, error: g}\n"
            "  g: {type: set, values: {greeting: hello, language: zh}, next: b}\n"
            "  b: {type: hangup, prompt: 'Bye {caller_name} on {dialled_number}, {language}'}\n")
    flow, problems = check(body)
    assert problems == [] and flow is not None


def test_builtins_cannot_be_assigned_or_declared() -> None:
    body = ("  a: {type: collect, prompt: p, variable: caller_number, next: b}\n"
            "  b: {type: set, values: {call_id: x}, next: bye}\n" + BYE)
    _, problems = check(body, "variables:\n  caller_name: string\n")
    assert find(problems, "'caller_number' is set by the call").line == 6
    assert find(problems, "'call_id' is set by the call").line == 7
    assert find(problems, "'caller_name' is a built-in variable").line == 4


def test_malformed_templates_and_conditions() -> None:
    body = ("  a:\n    type: play\n    say: 'Balance {balance'\n    next: b\n"
            "  b:\n    type: branch\n    rules:\n      - if: balance = 1\n        next: bye\n    else: bye\n" + BYE)
    _, problems = check(body, VARS)
    e = find(problems, "never closed")
    assert e.line == 9 and "(column 9)" in e.message
    e = find(problems, "use '=='")
    assert e.line == 14 and "node 'b' rule 1" in e.message and "(column 9)" in e.message


def test_set_literals_must_fit_the_declared_type() -> None:
    body = "  a: {type: set, values: {balance: lots, vip: maybe, ok: '{balance}'}, next: bye}\n" + BYE
    _, problems = check(body, "variables:\n  balance: number\n  vip: boolean\n  ok: number\n")
    assert "'balance' is a number, but 'lots' is not one" in errors(problems)[0]
    assert "'vip' is a boolean" in errors(problems)[1]
    assert len(errors(problems)) == 2


def test_schedules_timezones_and_open() -> None:
    head = ("hours:\n  office:\n    timezone: Europe/Lodnon\n    weekly: {mon-fri: '09:00-17:00'}\n"
            "  desk:\n    timezone: UTC\n    weekly: {sat: 24h}\n")
    body = ("  a:\n    type: branch\n    rules:\n      - if: open('ofice') or open('desk')\n        next: bye\n"
            "    else: bye\n" + BYE)
    _, problems = check(body, head)
    assert find(problems, "unknown time zone 'Europe/Lodnon'").line == 5
    e = find(problems, "open('ofice') names no schedule")
    assert e.line == 14 and "(did you mean 'office'?)" in e.message
    assert len(errors(problems)) == 2


def test_bad_collect_pattern() -> None:
    body = "  a:\n    type: collect\n    prompt: p\n    variable: v\n    pattern: '[0-9'\n    next: bye\n" + BYE
    _, problems = check(body)
    assert find(problems, "`pattern` '[0-9' is not a regular expression").line == 8


def test_url_and_transfer_target_forms() -> None:
    body = ("  a: {type: http, url: 'ftp://x', next: b, error: b}\n"
            "  b: {type: http, url: '{base}/x', next: c, error: c}\n"
            "  c: {type: transfer, target: 'desk@pbx', error: d}\n"
            "  d: {type: transfer, target: 'SIP:desk@pbx'}\n")
    _, problems = check(body, "variables: {base: string}\n")
    assert find(problems, "must start with http:// or https://").line == 5
    assert find(problems, "is not a SIP URI").line == 7
    assert len(errors(problems)) == 2


def test_audio_files_are_looked_for_beside_the_flow(tmp_path: Path) -> None:
    (tmp_path / "hello.wav").write_bytes(b"RIFF")
    body = ("  a: {type: play, audio: hello.wav, next: b}\n"
            "  b:\n    type: menu\n    prompt: {audio: menu.wav}\n    invalid_prompt: {audio: /nonexistent/x.wav}\n"
            "    options: {1: c}\n"
            "  c: {type: play, audio: notes.mp3}\n")
    (tmp_path / "notes.mp3").write_bytes(b"ID3")
    _, problems = check(body, base_dir=tmp_path)
    e = find(problems, "audio file 'menu.wav' not found")
    assert e.line == 7 and str(tmp_path / "menu.wav") in e.message
    assert find(problems, "audio file '/nonexistent/x.wav' not found").line == 8
    w = find(problems, "should be a WAV file")
    assert w.severity == "warning" and w.line == 10
    assert len(errors(problems)) == 2
    _, without_dir = check(body)
    assert errors(without_dir) == []


def test_subflows_against_known_flows() -> None:
    body = "  a: {type: subflow, flow: survy, next: b}\n  b: {type: subflow, flow: t}\n"
    _, problems = check(body, known_flows={"survey", "t"})
    e = find(problems, "no flow named 'survy'")
    assert e.line == 4 and "(did you mean 'survey'?)" in e.message
    assert find(problems, "calls itself").severity == "warning"
    _, unchecked = check(body)
    assert errors(unchecked) == []


def test_warnings_do_not_stop_a_flow() -> None:
    body = (
        "  a:\n    type: menu\n    prompt: 'Enter {pin}'\n    retries: 0\n    timeout_prompt: Hello?\n"
        "    options: {1: s}\n"
        "  s:\n    type: speech\n    prompt: p\n    phrases: {one: g, '2': g}\n    options: {1: bye}\n"
        "    no_match: bye\n    no_input: bye\n    fallback: bye\n"
        "  g: {type: goto, target: h, otherwise: bye}\n"
        "  h: {type: http, url: 'http://x/{pin}', body: {a: b}, next: bye, error: bye}\n" + BYE)
    flow, problems = check(body, VARS)
    assert flow is not None
    assert all(p.severity == "warning" for p in problems)
    expected = {
        "variable 'balance' is declared but never used": 4,
        "speaks the sensitive variable 'pin'": 9,
        "`timeout_prompt` is never heard with `retries: 0`": 11,
        "saying 'one' goes to 'g' but pressing 1 goes to 'bye'": 16,
        "phrase '2' is digits": 16,
        "`fallback` is never used": 20,
        "`otherwise` is never used without `max_visits`": 21,
        "the sensitive variable 'pin' in a URL": 22,
        "a GET request sends no `body`": 22,
    }
    assert {w: find(problems, w).line for w in expected} == expected
    assert len(problems) == len(expected)
    assert str(find(problems, "never used without")).startswith("t.yaml:21: warning: node 'g': ")
    parse_flow(f"name: t\nstart: a\n{VARS}nodes:\n{body}")      # warnings never raise


def test_collect_sensitive_marks_the_variable() -> None:
    body = ("  a: {type: collect, prompt: p, variable: card, sensitive: true, next: b}\n"
            "  b: {type: play, say: 'You said {card}', next: bye}\n" + BYE)
    _, problems = check(body)
    assert find(problems, "speaks the sensitive variable 'card'").severity == "warning"


def test_all_semantic_errors_are_reported_sorted_by_line() -> None:
    body = ("  a: {type: play, say: '{nope}', next: b}\n  b: {type: play, say: x, next: zz}\n"
            "  c: {type: hangup}\n")
    _, problems = check(body)
    assert [p.line for p in problems] == [4, 5, 6]
    assert [p.message.split(":")[0] for p in problems] == ["node 'a'", "node 'b'", "node 'c' is never reached (nothing "
                                                                                   "leads to it from `start`)"]


def test_validate_flow_on_a_flow_built_in_memory() -> None:
    flow = Flow("m", "a", {"a": PlayNode("a", Prompt(say="{x}"), next="b", line=3),
                           "b": GotoNode("b", "a", line=7), "z": HangupNode("z", line=9)})
    problems = validate_flow(flow)
    assert {(p.line, p.message.split(" (")[0]) for p in problems} == {
        (3, "node 'a': undefined variable 'x'"), (3, "loop with no exit: a -> b -> a"),
        (9, "node 'z' is never reached")}
    assert all(p.file == "<flow>" for p in problems)

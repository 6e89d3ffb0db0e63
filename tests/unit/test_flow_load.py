"""ivr/flow.py + ivr/schema.py: YAML -> Flow for every node type, structural errors with their lines, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from ivr.exceptions import FlowError
from ivr.flow import check_flow, load_flow, parse_flow
from ivr.nodes import (
    BranchNode,
    BranchRule,
    CollectNode,
    GotoNode,
    HangupNode,
    HttpNode,
    InputRetry,
    MenuNode,
    PlayNode,
    Prompt,
    QueueNode,
    ReturnNode,
    SetNode,
    SpeechNode,
    SubflowNode,
    TransferNode,
    Variable,
    VoicemailNode,
)
from ivr.schema import NODE_TYPES, flow_schema

EXAMPLE = """\
name: example
start: main
nodes:
  main:
    type: menu
    prompt: "For sales press 1. To end this call press 2."
    options:
      "1": sales
      "2": bye
  sales:
    type: play
    say: "Connecting you to sales."
    next: bye
  bye:
    type: hangup
"""

FULL = """\
name: full
description: Every node type.
start: lang
language: en
voice: en-gb
on_error: sorry
variables:
  balance: number
  vip: {type: boolean, default: false}
  account: {type: string, sensitive: true}
  greeting: {default: "hi"}
hours:
  office:
    timezone: Europe/London
    weekly:
      mon-fri: "09:00-12:00, 13:00-17:30"
      sat: closed
      "sun": 24h
    holidays: [2026-12-25, "2026-12-26"]
nodes:
  lang:
    type: menu
    prompt: {audio: welcome.wav}
    options:
      1: main
      2: main_zh
      "*": lang
      "#": bye
    timeout: 4
    retries: 1
    invalid_prompt: "Sorry, I did not get that."
    timeout_prompt: {say: "Are you still there?", rate: 160}
    fallback: bye
  main_zh:
    type: play
    say: "欢迎"
    language: zh
    voice: cmn
    rate: 150
    barge_in: true
    next: main
  main:
    type: speech
    prompt: "Say sales or support, {greeting}."
    phrases:
      Sales: account
      "customer  Support!": queue
      yes: account
    options: {"1": account, "2": queue}
    variable: choice
    confidence: 0.6
    language: en
    no_match: sorry
    no_input: bye
  account:
    type: collect
    prompt: "Enter your account number, then hash."
    variable: account
    min_length: 4
    max_length: 8
    terminator: null
    inter_digit_timeout: 2.5
    pattern: "[0-9]{4,8}"
    sensitive: true
    timeout: 7
    retries: 3
    next: lookup
  lookup:
    type: http
    url: "https://crm.example.com/accounts"
    method: POST
    headers: {Authorization: "Bearer token"}
    body: {account: "{account}", limit: 10, live: true}
    timeout: 2
    results: {balance: account.balance, vip: account.flags.vip}
    next: route
    error: sorry
  route:
    type: branch
    rules:
      - if: "vip == true and open('office')"
        next: queue
      - if: "balance > 100"
        next: rich
    else: count
  rich:
    type: set
    values: {greeting: "Welcome back", balance: 0, vip: true}
    next: again
  again:
    type: goto
    target: count
    max_visits: 2
    otherwise: bye
  count:
    type: subflow
    flow: survey
    next: queue
  queue:
    type: queue
    queue: support
    skills: {billing: 3, english: 1}
    priority: 5
    no_agents: vm
    next: bye
  queue2:
    type: queue
    queue: sales
    skills: [spanish, billing]
    no_agents: done
  vm:
    type: voicemail
    mailbox: support
    prompt: "Leave a message after the tone."
    beep: false
    max_length: 60
    next: bye
  sorry:
    type: transfer
    target: "sip:desk@pbx.example.com"
    prompt: "Transferring you."
    error: queue2
  done:
    type: return
  bye:
    type: hangup
    prompt: "Goodbye."
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issue_example_validates_as_written(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, EXAMPLE))
    assert flow.name == "example" and flow.start == "main" and flow.source == str(tmp_path / "flow.yaml")
    assert flow.nodes == {
        "main": MenuNode("main", Prompt(say="For sales press 1. To end this call press 2."),
                         {"1": "sales", "2": "bye"}, line=4),
        "sales": PlayNode("sales", Prompt(say="Connecting you to sales."), next="bye", line=10),
        "bye": HangupNode("bye", line=14),
    }
    assert flow.language == "en" and flow.variables == {} and flow.hours == {} and flow.on_error is None
    flow2, problems = check_flow(EXAMPLE, "x.yaml")
    assert problems == [] and flow2 == parse_flow(EXAMPLE, "x.yaml")


def test_schema_validates_the_example() -> None:
    Draft202012Validator.check_schema(flow_schema())
    Draft202012Validator(flow_schema()).validate(yaml.safe_load(EXAMPLE))


def test_flow_schema_is_documented_and_discriminated() -> None:
    schema = flow_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] and schema["additionalProperties"] is False
    node = schema["$defs"]["node"]
    assert [b["$ref"] for b in node["oneOf"]] == [f"#/$defs/{k}_node" for k in NODE_TYPES]
    for kind in NODE_TYPES:
        d = schema["$defs"][f"{kind}_node"]
        assert d["properties"]["type"]["const"] == kind and d["additionalProperties"] is False
        for key, prop in d["properties"].items():
            assert prop.get("description"), f"{kind}.{key} has no description"
    for key, prop in schema["properties"].items():
        assert prop.get("description"), key
    json.dumps(schema)                      # plain JSON
    schema["title"] = "changed"
    assert flow_schema()["title"] != "changed"


def test_every_node_type_builds(tmp_path: Path) -> None:
    text = FULL
    (tmp_path / "welcome.wav").write_bytes(b"RIFF")
    flow, problems = check_flow(text, "full.yaml", base_dir=tmp_path, known_flows={"survey"})
    assert [str(p) for p in problems] == []
    assert flow is not None
    n = flow.nodes
    assert {type(x) for x in n.values()} == {MenuNode, PlayNode, SpeechNode, CollectNode, HttpNode, BranchNode,
                                              SetNode, GotoNode, SubflowNode, QueueNode, VoicemailNode,
                                              TransferNode, ReturnNode, HangupNode}
    retry = InputRetry(timeout=4.0, retries=1, invalid_prompt=Prompt(say="Sorry, I did not get that."),
                       timeout_prompt=Prompt(say="Are you still there?", rate=160), fallback="bye")
    assert n["lang"] == MenuNode("lang", Prompt(audio="welcome.wav"),
                                 {"1": "main", "2": "main_zh", "*": "lang", "#": "bye"}, retry=retry,
                                 line=n["lang"].line)
    assert n["main_zh"] == PlayNode("main_zh", Prompt(say="欢迎", voice="cmn", language="zh", rate=150),
                                    next="main", barge_in=True, line=n["main_zh"].line)
    sp = n["main"]
    assert isinstance(sp, SpeechNode)
    assert sp.phrases == {"sales": "account", "customer support": "queue", "yes": "account"}
    assert sp.options == {"1": "account", "2": "queue"} and sp.variable == "choice" and sp.confidence == 0.6
    assert sp.retry == InputRetry(no_match="sorry", no_input="bye") and sp.language == "en"
    assert n["account"] == CollectNode(
        "account", Prompt(say="Enter your account number, then hash."), "account", "lookup", min_length=4,
        max_length=8, terminator=None, inter_digit_timeout=2.5, pattern="[0-9]{4,8}", sensitive=True,
        retry=InputRetry(timeout=7.0, retries=3), line=n["account"].line)
    assert n["lookup"] == HttpNode(
        "lookup", "https://crm.example.com/accounts", "route", "sorry", method="POST",
        headers={"Authorization": "Bearer token"}, body={"account": "{account}", "limit": "10", "live": "true"},
        timeout=2.0, results={"balance": "account.balance", "vip": "account.flags.vip"}, line=n["lookup"].line)
    route = n["route"]
    assert isinstance(route, BranchNode) and route.otherwise == "count"
    assert [(r.condition, r.next) for r in route.rules] == [("vip == true and open('office')", "queue"),
                                                            ("balance > 100", "rich")]
    assert all(isinstance(r, BranchRule) and r.line > route.line for r in route.rules)
    assert n["rich"] == SetNode("rich", {"greeting": "Welcome back", "balance": "0", "vip": "true"}, "again",
                                line=n["rich"].line)
    assert n["again"] == GotoNode("again", "count", max_visits=2, otherwise="bye", line=n["again"].line)
    assert n["count"] == SubflowNode("count", "survey", next="queue", line=n["count"].line)
    assert n["queue"] == QueueNode("queue", "support", skills={"billing": 3, "english": 1}, priority=5,
                                   no_agents="vm", next="bye", line=n["queue"].line)
    q2 = n["queue2"]
    assert isinstance(q2, QueueNode) and q2.skills == {"spanish": 1, "billing": 1} and q2.priority == 0
    assert n["vm"] == VoicemailNode("vm", "support", prompt=Prompt(say="Leave a message after the tone."),
                                    beep=False, max_length=60.0, next="bye", line=n["vm"].line)
    assert n["sorry"] == TransferNode("sorry", "sip:desk@pbx.example.com", prompt=Prompt(say="Transferring you."),
                                      error="queue2", line=n["sorry"].line)
    assert n["done"] == ReturnNode("done", line=n["done"].line)
    assert n["bye"] == HangupNode("bye", prompt=Prompt(say="Goodbye."), line=n["bye"].line)
    assert flow.variables == {
        "balance": Variable("balance", "number"), "vip": Variable("vip", "boolean", False),
        "account": Variable("account", "string", None, True), "greeting": Variable("greeting", "string", "hi"),
    }
    office = flow.hours["office"]
    assert office.timezone == "Europe/London" and office.holidays == ("2026-12-25", "2026-12-26")
    assert office.weekly == {d: (("09:00", "12:00"), ("13:00", "17:30")) for d in range(5)} | {
        6: (("00:00", "24:00"),)}
    assert flow.on_error == "sorry" and flow.voice == "en-gb" and flow.description == "Every node type."


def test_every_node_line_is_its_key_line() -> None:
    flow = parse_flow(FULL.replace("prompt: {audio: welcome.wav}", "prompt: hi"))
    lines = FULL.splitlines()
    for nid, node in flow.nodes.items():
        assert lines[node.line - 1] == f"  {nid}:", nid
    assert lines[flow.hours["office"].line - 1] == "  office:"


def test_anchors_and_merge_keys() -> None:
    text = """\
name: m
start: a
nodes:
  a: &menu
    type: menu
    prompt: "Press 1."
    options: {1: b}
    timeout: 9
  b:
    <<: *menu
    timeout: 3
    options: {"1": c}
  c: {type: hangup}
"""
    flow = parse_flow(text)
    a, b = flow.nodes["a"], flow.nodes["b"]
    assert isinstance(a, MenuNode) and isinstance(b, MenuNode)
    assert a.retry.timeout == 9.0 and b.retry.timeout == 3.0 and b.options == {"1": "c"}
    assert b.prompt == a.prompt
    late_merge = text.replace("    <<: *menu\n    timeout: 3\n", "    timeout: -3\n    <<: *menu\n")
    _, problems = check_flow(late_merge)
    assert [(p.line, p.message) for p in problems] == [(10, "`timeout` must be more than 0, not -3")]


def test_yaml_1_2_scalars() -> None:
    text = """\
name: y
start: s
variables:
  flag: {type: string, default: "no"}
nodes:
  s:
    type: speech
    prompt: "Yes or no?"
    phrases: {yes: a, no: b, on: a, off: b}
  a: {type: set, values: {flag: yes}, next: b}
  b: {type: hangup}
"""
    flow = parse_flow(text)
    s = flow.nodes["s"]
    assert isinstance(s, SpeechNode) and s.phrases == {"yes": "a", "no": "b", "on": "a", "off": "b"}
    a = flow.nodes["a"]
    assert isinstance(a, SetNode) and a.values == {"flag": "yes"}


def test_numbers_and_int_option_keys() -> None:
    text = EXAMPLE.replace('"1": sales', "1: sales").replace('"2": bye', "2: bye\n      3: x").replace(
        "    type: hangup", "    type: hangup\n  x:\n    type: menu\n    prompt: p\n    options: {0: bye, 9: bye}"
        "\n    timeout: 1e1\n    retries: 010")
    flow = parse_flow(text)
    main, x = flow.nodes["main"], flow.nodes["x"]
    assert isinstance(main, MenuNode) and main.options == {"1": "sales", "2": "bye", "3": "x"}
    assert isinstance(x, MenuNode) and x.options == {"0": "bye", "9": "bye"}
    assert x.retry.timeout == 10.0 and x.retry.retries == 10     # YAML 1.2: 010 is ten, not octal eight
    _, problems = check_flow(text.replace("      3: x", "      03: x"))
    assert any("'03' is not a key" in p.message for p in problems)


@pytest.mark.parametrize("text, line, words", [
    ("name: x\nstart: [\n", 3, "not valid YAML"),
    ("name: x\n  start: a\n", 2, "not valid YAML"),
    ("name: x\nnodes:\n  a:\n    options: {*: b}\n", 4, "quote keys and values that start with * or #"),
    ("", 1, "the file is empty"),
    ("# only a comment\n", 1, "the file is empty"),
    ("- name: x\n- start: a\n", 1, "top level must be a mapping"),
    ("just text\n", 1, "top level must be a mapping"),
    ("name: x\n---\nname: y\n", 2, "not valid YAML"),
    ("name: x\nstart: a\nnodes: {a: {type: hangup}}\nname: y\n", 4, "duplicate key 'name' (first given on line 1)"),
    ("name: x\nstart: a\nnodes:\n  a: {type: hangup}\n  a: {type: hangup}\n", 5, "duplicate key 'a'"),
    ("name: x\nstart: a\nnodes:\n  a:\n    type: hangup\n    type: play\n", 6, "duplicate key 'type'"),
    ("name: x\nstart: a\nnodes: {a: {type: hangup}}\nx: !!binary aGk=\n", 4, "tag"),
    ("a: &a [*a]\n", 1, "recursive alias"),
    ("a: " + "[" * 1000 + "]" * 1000 + "\n", 1, "nested too deeply"),
    ("name: x\nstart: a\nnodes: {a: {type: hangup}}\n\x07\n", 4, "not valid YAML"),
])
def test_unreadable_yaml(text: str, line: int, words: str) -> None:
    flow, problems = check_flow(text, "f.yaml")
    assert flow is None
    hits = [p for p in problems if words in p.message]
    assert hits, [str(p) for p in problems]
    assert (hits[0].line, hits[0].file) == (line, "f.yaml"), str(hits[0])
    assert str(hits[0]).startswith(f"f.yaml:{line}: ")
    with pytest.raises(FlowError):
        parse_flow(text, "f.yaml")


def test_yaml_traps_get_a_clear_message() -> None:
    collect = BASE + "    type: collect\n    prompt: p\n    variable: v\n    next: b\n    terminator: #\n" \
        "  b: {type: hangup}\n"
    _, problems = check_flow(collect, "f.yaml")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(9, "`terminator")]
    assert 'write terminator: "#"' in problems[0].message
    flow = parse_flow(collect.replace("terminator: #", "terminator: null  # none"))
    assert flow.nodes["a"].terminator is None  # type: ignore[union-attr]
    _, problems = check_flow(BASE + "    type: menu\n    prompt: p\n    options: {1: a}\n    timeout: .nan\n")
    assert any(p.line == 8 and "`.nan`" in p.message for p in problems)
    assert yaml.safe_load("a: yes")["a"] is True            # PyYAML's own loader is left as it was


def test_alias_bomb_is_refused() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 7):
        text += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]\n"
    with pytest.raises(FlowError, match="too large"):
        parse_flow(text)


BASE = "name: x\nstart: a\nnodes:\n  a:\n"


@pytest.mark.parametrize("node, line, words", [
    ("    type: plya\n", 5, "unknown node type 'plya' (did you mean 'play'?)"),
    ("    say: hi\n", 4, "node 'a' needs a `type`"),
    ("    type: 3\n", 5, "unknown node type 3"),
    ("    type: menu\n    promt: hi\n    options: {1: a}\n", 6, "unknown key 'promt' in menu node 'a' (did you mean "
     "'prompt'?)"),
    ("    type: menu\n    promt: hi\n    options: {1: a}\n", 4, "menu node 'a' needs `prompt`"),
    ("    type: menu\n    prompt: hi\n    options:\n      1: a\n      ab: a\n", 9, "'ab' is not a key"),
    ("    type: menu\n    prompt: hi\n    options:\n      1: a\n      10: a\n", 9, "'10' is not a key"),
    ("    type: menu\n    prompt: hi\n    options: {}\n", 7, "`options` is empty"),
    ("    type: menu\n    prompt: hi\n    options: {1: a}\n    timeout: 5s\n", 8, "`timeout` must be a number, "
     "not '5s'"),
    ("    type: menu\n    prompt: hi\n    options: {1: a}\n    retries: 1.5\n", 8, "must be a whole number"),
    ("    type: menu\n    prompt: hi\n    options: {1: a}\n    retries: -1\n", 8, "must be at least 0"),
    ("    type: menu\n    prompt:\n      say: hi\n      audio: x.wav\n    options: {1: a}\n", 8,
     "give only one of `say`, `audio`"),
    ("    type: menu\n    prompt:\n      voice: en\n    options: {1: a}\n", 6, "`prompt` needs `say` or `audio`"),
    ("    type: menu\n    prompt:\n      say: hi\n      colour: red\n    options: {1: a}\n", 8,
     "unknown key 'colour' in `prompt`"),
    ("    type: menu\n    prompt: 5\n    options: {1: a}\n", 6, "`prompt`: A text to speak, or a mapping"),
    ("    type: menu\n    prompt: ''\n    options: {1: a}\n", 6, "`prompt` must not be empty"),
    ("    type: menu\n    prompt: {say: hi, rate: 10}\n    options: {1: a}\n", 6, "`prompt.rate` must be at least 80"),
    ("    type: play\n", 4, "play node 'a' needs `say` or `audio`"),
    ("    type: play\n    prompt: hi\n", 6, "a play node takes `say` or `audio` directly"),
    ("    type: hangup\n    say: bye\n", 6, "put the text under `prompt`"),
    ("    type: play\n    say: hi\n    barge_in: maybe\n", 7, "`barge_in` must be true or false, not 'maybe'"),
    ("    type: play\n    say: hi\n    next: 5\n", 7, "`next` must be text"),
    ("    type: play\n    say: hi\n    next: 'a b'\n", 7, "'a b' is not a node id"),
    ("    type: collect\n    prompt: p\n    variable: 9x\n    next: a\n", 7, "'9x' is not a variable name"),
    ("    type: collect\n    prompt: p\n    variable: v\n    next: a\n    terminator: x\n", 9, "'x' is not a key"),
    ("    type: collect\n    prompt: p\n    variable: v\n    next: a\n    min_length: 5\n    max_length: 3\n", 9,
     "`min_length` (5) is more than `max_length` (3)"),
    ("    type: speech\n    prompt: p\n    phrases: {}\n", 7, "`phrases` is empty"),
    ("    type: speech\n    prompt: p\n    phrases:\n      sales: a\n      Sales!: a\n", 9,
     "phrase 'Sales!' is the same words as 'sales'"),
    ("    type: speech\n    prompt: p\n    phrases:\n      '?!': a\n", 8, "phrase '?!' has no words"),
    ("    type: speech\n    prompt: p\n    phrases: {a: a}\n    confidence: 1.5\n", 8, "at most 1"),
    ("    type: branch\n    rules: []\n    else: a\n", 6, "`rules` is empty"),
    ("    type: branch\n    rules:\n      - if: x\n        then: a\n    else: a\n", 8, "unknown key 'then' in "
     "`rules.0`"),
    ("    type: branch\n    rules:\n      - if: x\n        then: a\n    else: a\n", 7, "`rules.0` needs `next`"),
    ("    type: branch\n    rules:\n      - {if: x, next: a}\n", 4, "branch node 'a' needs `else`"),
    ("    type: http\n    url: http://x\n    next: a\n    error: a\n    method: PUT\n", 9,
     "`method` must be GET or POST, not 'PUT'"),
    ("    type: http\n    url: http://x\n    next: a\n    error: a\n    method: get\n", 9, "did you mean 'GET'"),
    ("    type: http\n    url: http://x\n    next: a\n    error: a\n    timeout: 31\n", 9, "at most 30"),
    ("    type: http\n    url: http://x\n    next: a\n    error: a\n    timeout: 0\n", 9, "more than 0"),
    ("    type: http\n    url: http://x\n    next: a\n    error: a\n    results: {v: 'a..b'}\n", 9,
     "not a dotted path"),
    ("    type: http\n    url: http://x\n    next: a\n    error: a\n    headers: {X: 1}\n", 9, "`headers.X` must be "
     "text"),
    ("    type: set\n    values: {x: [1]}\n    next: a\n", 6, "`values.x` must be text or a number or true or false"),
    ("    type: set\n    set: {x: 1}\n    next: a\n", 6, "unknown key 'set'"),
    ("    type: goto\n    target: a\n    max_visits: 0\n", 7, "at least 1"),
    ("    type: queue\n    queue: q\n    skills: {billing: 7}\n", 7, "`skills.billing` must be at most 5"),
    ("    type: queue\n    queue: q\n    skills: [a, a]\n", 7, "lists an item twice"),
    ("    type: queue\n    queue: q\n    skills: billing\n", 7, "`skills`: Skills the agent needs"),
    ("    type: queue\n    queue: q\n    priority: 101\n", 7, "at most 100"),
    ("    type: voicemail\n", 4, "voicemail node 'a' needs `mailbox`"),
    ("    type: transfer\n    target: sip:x@y\n    next: a\n", 7, "unknown key 'next'"),
    ("    type: return\n    next: a\n", 6, "unknown key 'next' in return node 'a'"),
])
def test_node_structure_errors_point_at_the_line(node: str, line: int, words: str) -> None:
    flow, problems = check_flow(BASE + node, "f.yaml")
    assert flow is None
    hits = [p for p in problems if words in p.message]
    assert hits, [str(p) for p in problems]
    assert hits[0].line == line, str(hits[0])
    assert str(hits[0]).startswith(f"f.yaml:{line}: ")


GOOD_NODES = "nodes:\n  a: {type: hangup}\n"


@pytest.mark.parametrize("top, line, words", [
    ("start: a\n" + GOOD_NODES, 1, "the flow needs `name`"),
    ("name: x\n" + GOOD_NODES, 1, "the flow needs `start`"),
    ("name: x\nstart: a\n", 1, "the flow needs `nodes`"),
    ("name: x\nstrat: a\nstart: a\n" + GOOD_NODES, 2, "unknown key 'strat' in the flow (did you mean 'start'?)"),
    ("name: x\nstart: a\nnodes: []\n", 3, "`nodes` must be a mapping, not a list"),
    ("name: x\nstart: a\nnodes: {}\n", 3, "`nodes` is empty"),
    ("name: x\nstart: a\nnodes:\n  a: hangup\n", 4, "`nodes.a` must be a mapping"),
    ("name: x\nstart: a\nnodes:\n  'a b': {type: hangup}\n", 4, "'a b' is not a valid id"),
    ("name: 'my flow'\nstart: a\n" + GOOD_NODES, 1, "is not a node id"),
    ("name: x\nstart: a\nlanguage: english!\n" + GOOD_NODES, 3, "not a language code"),
    ("name: x\nstart: a\nvariables:\n  v: strin\n" + GOOD_NODES, 4, "must be string or number or boolean, not "
     "'strin' (did you mean 'string'?)"),
    ("name: x\nstart: a\nvariables:\n  v: {type: number, sensitve: true}\n" + GOOD_NODES, 4, "unknown key 'sensitve'"),
    ("name: x\nstart: a\nvariables:\n  9v: string\n" + GOOD_NODES, 4, "'9v' is not a variable name"),
    ("name: x\nstart: a\nvariables:\n  v: {type: number, default: abc}\n" + GOOD_NODES, 4,
     "variable 'v' is a number, but its default is 'abc'"),
    ("name: x\nstart: a\nvariables:\n  v:\n    type: string\n    default: 5\n" + GOOD_NODES, 6, "(quote it)"),
    ("name: x\nstart: a\nhours:\n  o:\n    weekly: {mon: closed}\n" + GOOD_NODES, 4, "`hours.o` needs `timezone`"),
    ("name: x\nstart: a\nhours:\n  o:\n    timezone: UTC\n    weekly:\n      mon-fry: closed\n" + GOOD_NODES, 7,
     "'mon-fry' is not a day or days"),
    ("name: x\nstart: a\nhours:\n  o:\n    timezone: UTC\n    weekly:\n      mon: 9-5\n" + GOOD_NODES, 7,
     "hours 'o': '9' is not a time of day"),
    ("name: x\nstart: a\nhours:\n  o:\n    timezone: UTC\n    weekly: {mon: closed}\n    holidays:\n"
     "      - 2026-01-01\n      - 2026-02-30\n" + GOOD_NODES, 9, "'2026-02-30' is not a date"),
    ("name: x\nstart: a\nhours:\n  o:\n    timezone: UTC\n    weekly: {mon: closed}\n    holidays: [12/25]\n"
     + GOOD_NODES, 7, "not a date (write YYYY-MM-DD)"),
])
def test_top_level_structure_errors(top: str, line: int, words: str) -> None:
    flow, problems = check_flow(top, "f.yaml")
    assert flow is None
    hits = [p for p in problems if words in p.message]
    assert hits, [str(p) for p in problems]
    assert hits[0].line == line, str(hits[0])


def test_all_structure_errors_are_reported_at_once() -> None:
    text = BASE + "    type: menu\n    prompt: 5\n    options: {x: a}\n  b:\n    type: plya\n  c:\n    type: hangup\n" \
        "    colour: red\n"
    _, problems = check_flow(text, "f.yaml")
    assert [p.line for p in problems] == [6, 7, 9, 12]
    assert all(p.severity == "error" for p in problems)


def test_parse_flow_raises_the_first_error() -> None:
    text = BASE + "    type: menu\n    prompt: 5\n    options: {x: a}\n"
    with pytest.raises(FlowError) as err:
        parse_flow(text, "f.yaml")
    assert err.value.line == 6


def test_load_flow_errors(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot read flow file") as err:
        load_flow(tmp_path / "absent.yaml")
    assert err.value.line == 1
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\n")
    with pytest.raises(FlowError, match="cannot read flow file"):
        load_flow(bad)


def test_load_flow_checks_audio_beside_the_file(tmp_path: Path) -> None:
    text = EXAMPLE.replace('say: "Connecting you to sales."', "audio: sounds/sales.wav")
    path = write(tmp_path, text)
    with pytest.raises(FlowError, match="audio file 'sounds/sales.wav' not found") as err:
        load_flow(path)
    assert err.value.line == 12 and err.value.file == str(path)
    (tmp_path / "sounds").mkdir()
    (tmp_path / "sounds" / "sales.wav").write_bytes(b"RIFF")
    sales = load_flow(path).nodes["sales"]
    assert isinstance(sales, PlayNode) and sales.prompt == Prompt(audio="sounds/sales.wav")
    parse_flow(text)                        # no base_dir: files are not looked for


# -- the published schema on its own (what an editor sees) -----------------------------------------------

def schema_errors(text: str) -> list[str]:
    validator = Draft202012Validator(flow_schema())
    return [e.message for e in validator.iter_errors(yaml.safe_load(text))]


def test_schema_accepts_the_full_flow() -> None:
    data = yaml.safe_load(FULL)
    data["hours"]["office"]["holidays"] = ["2026-12-25", "2026-12-26"]   # PyYAML's 1.1 reads dates as dates
    for node in data["nodes"].values():
        for key in ("options",):
            if key in node:
                node[key] = {str(k): v for k, v in node[key].items()}
    node = data["nodes"]["main"]
    node["phrases"] = {str(k): v for k, v in node["phrases"].items()}
    assert [e.message for e in Draft202012Validator(flow_schema()).iter_errors(data)] == []


@pytest.mark.parametrize("mutation", [
    "strat: main\n",
    "nodes:\n  a: {type: fly}\n",
    "nodes:\n  a: {type: play}\n",
    "nodes:\n  a: {type: play, say: hi, audio: x.wav}\n",
    "nodes:\n  a: {type: menu, prompt: p, options: {'x': a}}\n",
    "nodes:\n  a: {type: http, url: u, next: a, error: a, timeout: 60}\n",
    "nodes:\n  a: {type: hangup, next: a}\n",
    "variables: {v: text}\n",
    "hours: {o: {timezone: UTC, weekly: {someday: closed}}}\n",
])
def test_schema_rejects_bad_flows(mutation: str) -> None:
    base = yaml.safe_load(EXAMPLE)
    extra = yaml.safe_load(mutation)
    if "nodes" in extra:
        base["nodes"].update(extra.pop("nodes"))
    base.update(extra)
    assert list(Draft202012Validator(flow_schema()).iter_errors(base)), mutation

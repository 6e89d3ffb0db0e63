from __future__ import annotations

from pathlib import Path

import pytest

from ivr.exceptions import FlowError
from ivr.flow import HangupNode, PlayNode, load_flow, parse_flow
from ivr.machine import CallStarted, EndCall, FlowMachine, Hangup, Play, PromptDone
from ivr.testing import run_flow

ROOT = Path(__file__).resolve().parents[2]

FLOW = """\
[flow]
name = "t"
start = "a"

[nodes.a]
type = "play"
say = "one"
next = "b"

[nodes.b]
type = "play"
say = "two"

[nodes.c]
type = "hangup"
"""


def test_demo_flow_loads() -> None:
    flow = load_flow(ROOT / "config" / "flows" / "demo.toml")
    assert flow.name == "demo"
    assert isinstance(flow.nodes[flow.start], PlayNode)
    assert flow.prompts() and all(p.strip() for p in flow.prompts())


def test_machine_plays_then_ends() -> None:
    flow = parse_flow(FLOW)
    steps = run_flow(flow, [CallStarted(0), PromptDone(1), PromptDone(2), PromptDone(3)])
    assert steps == [[Play("one", "a")], [Play("two", "b")], [EndCall("b")], []]


def test_hangup_node_ends_call_and_caller_hangup_stops_machine() -> None:
    flow = parse_flow(FLOW.replace('say = "one"\nnext = "b"', 'say = "one"\nnext = "c"'))
    assert run_flow(flow, [CallStarted(0), PromptDone(1)])[1] == [EndCall("c")]
    assert isinstance(flow.nodes["c"], HangupNode)
    m = FlowMachine(flow)
    m.receive(CallStarted(0))
    assert m.receive(Hangup(0.5)) == [] and m.finished and m.finish_reason == "caller_hangup"
    assert m.receive(PromptDone(1)) == []


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("[flow\n", 1, "not valid TOML"),
        ('[nodes.a]\ntype = "hangup"\n', 1, "missing [flow]"),
        ('[flow]\nname = "x"\nstart = "zz"\n\n[nodes.a]\ntype = "hangup"\n', 3, "'zz', which is not a node"),
        ('[flow]\nname = "x"\nstart = "a"\n\n[nodes.a]\ntype = "play"\nsay = ""\n', 7, "non-empty `say`"),
        ('[flow]\nname = "x"\nstart = "a"\n\n[nodes.a]\ntype = "play"\nsay = "hi"\nnext = "q"\n', 8, "'q'"),
        ('[flow]\nname = "x"\nstart = "a"\n\n[nodes.a]\ntype = "hangup"\ncolour = 1\n', 7, "unknown key 'colour'"),
        ('[flow]\nname = "x"\nstart = "a"\n\n[nodes.a]\ntype = "fly"\n', 6, "unknown type 'fly'"),
    ],
)
def test_validation_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(FlowError) as err:
        parse_flow(text, "f.toml")
    assert err.value.line == line, str(err.value)
    assert str(err.value).startswith(f"f.toml:{line}: ")
    assert words in str(err.value)


def test_unreadable_flow_file(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot read flow file"):
        load_flow(tmp_path / "absent.toml")

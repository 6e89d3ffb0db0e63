"""docs/flows.md stays true: its examples run, its tables match the code, the published schema is current.

- every ```yaml block with ``nodes:`` is a flow and validates with no error and no warning;
- every ```yaml block with ``cases:`` follows an ``<!-- cases for: NAME -->`` comment naming a flow of
  the page, and passes when run against it with the cases runner (``callcenter flow test``);
- every other ```yaml / ```toml / ```json block is marked ``<!-- fragment -->`` and parses;
- the ```python blocks run (their ``test_*`` functions are called) in a folder holding the page's flows
  as ``flows/<name>.yaml``;
- each node type has a section with a flow using it, and the key tables list exactly the schema's keys;
- docs/flow.schema.json is exactly what ``callcenter flow schema`` writes; config/flows/demo.yaml validates.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from callcenter.storage.flows import IVR_EVENTS
from ivr import actions as act
from ivr.cases import CASE_KEYS, EXPECT_KEYS, run_cases
from ivr.flow import check_flow, parse_flow
from ivr.nodes import BUILTIN_VARIABLES
from ivr.schema import NODE_TYPES, flow_schema
from ivr.testing import Press, simulate

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "flows.md"
SCHEMA_FILE = ROOT / "docs" / "flow.schema.json"
DEMO = ROOT / "config" / "flows" / "demo.yaml"

# The issue's minimal flow: it must be on the page exactly like this, validate and run.
MINIMAL = """\
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

_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$")
_ROW_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int            # of the opening fence, 1-based
    marker: str          # the HTML comment on the line before the fence ("" if none)

    @property
    def label(self) -> str:
        return f"docs/flows.md:{self.line}"


def _blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        assert i < len(lines), f"docs/flows.md:{start + 1}: a code block is never closed"
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = _MARKER.match(before)
        out.append(Block(lang, "\n".join(body) + "\n", start + 1, marker.group(1) if marker else ""))
        i += 1
    return out


DOC_TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = _blocks(DOC_TEXT)


def _top_keys(block: Block) -> set[str]:
    data = yaml.safe_load(block.text)
    return set(data) if isinstance(data, dict) else set()


FLOW_BLOCKS = [b for b in BLOCKS if b.lang == "yaml" and "nodes" in _top_keys(b)]
CASES_BLOCKS = [b for b in BLOCKS if b.lang == "yaml" and "cases" in _top_keys(b)]
FLOW_TEXTS = {yaml.safe_load(b.text)["name"]: b.text for b in FLOW_BLOCKS}


def _ids(blocks: list[Block]) -> list[str]:
    return [f"line{b.line}" for b in blocks]


def _write_flows(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in FLOW_TEXTS.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


# -- the examples -------------------------------------------------------------------------------------

def test_the_page_has_examples() -> None:
    assert len(FLOW_BLOCKS) >= len(NODE_TYPES) and CASES_BLOCKS
    assert len(FLOW_TEXTS) == len(FLOW_BLOCKS), "two flow examples share a name (cases are paired by name)"


@pytest.mark.parametrize("block", FLOW_BLOCKS, ids=_ids(FLOW_BLOCKS))
def test_flow_example_validates(block: Block) -> None:
    flow, problems = check_flow(block.text, file=block.label, known_flows=set(FLOW_TEXTS))
    assert not problems, "\n".join(str(p) for p in problems)
    assert flow is not None


def test_minimal_flow_of_the_issue_is_on_the_page_and_runs() -> None:
    assert MINIMAL in [b.text for b in FLOW_BLOCKS]
    flow = parse_flow(MINIMAL)
    run = simulate(flow, [Press("1")])
    assert run.path == ["main", "sales", "bye"] and run.end == "flow_end"
    assert run.said == ["For sales press 1. To end this call press 2.", "Connecting you to sales."]


@pytest.mark.parametrize("block", CASES_BLOCKS, ids=_ids(CASES_BLOCKS))
def test_cases_example_passes(block: Block, tmp_path: Path) -> None:
    m = re.fullmatch(r"cases for:\s*(\S+)", block.marker)
    assert m, f"{block.label}: a cases block needs <!-- cases for: FLOW_NAME --> on the line before it"
    name = m.group(1)
    assert name in FLOW_TEXTS, f"{block.label}: no flow named {name!r} on the page"
    _write_flows(tmp_path)
    cases = tmp_path / f"{name}.cases.yaml"
    cases.write_text(block.text, encoding="utf-8")
    report = run_cases(tmp_path / f"{name}.yaml", cases)
    assert report.passed, f"{block.label}:\n{report.text()}"


def test_other_blocks_are_marked_fragments_and_parse() -> None:
    parsers: dict[str, Callable[[str], Any]] = {"yaml": yaml.safe_load, "toml": tomllib.loads, "json": json.loads}
    for b in BLOCKS:
        if b in FLOW_BLOCKS or b in CASES_BLOCKS or b.lang not in parsers:
            continue
        assert b.marker == "fragment", (f"{b.label}: a {b.lang} block that is no flow (`nodes:`) and no cases "
                                        "(`cases:`) must be marked <!-- fragment -->")
        parsers[b.lang](b.text)


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = [b for b in BLOCKS if b.lang == "python"]
    assert code
    _write_flows(tmp_path / "flows")
    monkeypatch.chdir(tmp_path)
    for b in code:
        namespace: dict[str, Any] = {"__name__": "docs_example"}
        exec(compile(b.text, b.label, "exec"), namespace)  # our own documentation's example
        tests = [f for n, f in namespace.items() if n.startswith("test_") and callable(f)]
        assert tests, f"{b.label}: a python example defines no test_ function"
        for test in tests:
            test()


# -- the tables match the code --------------------------------------------------------------------------

def _section(heading: str) -> str:
    """The text under ``heading`` (a whole line) up to the next heading of the same or a higher level."""
    lines = DOC_TEXT.splitlines()
    assert heading in lines, f"docs/flows.md has no heading {heading!r}"
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    end = next((i for i in range(start + 1, len(lines))
                if re.match(rf"#{{1,{level}}} ", lines[i]) and not _in_code(lines, i)), len(lines))
    return "\n".join(lines[start + 1:end])


def _in_code(lines: list[str], index: int) -> bool:
    return sum(1 for ln in lines[:index] if _FENCE.match(ln) or ln.strip() == "```") % 2 == 1


def _tables(section: str) -> list[set[str]]:
    """The first-column `keys` of each table in ``section``."""
    tables: list[set[str]] = []
    current: set[str] | None = None
    for line in section.splitlines():
        if line.startswith("|"):
            m = _ROW_KEY.match(line)
            if current is None:
                current = set()
                tables.append(current)
            if m:
                current.add(m.group(1))
        else:
            current = None
    return tables


SCHEMA = flow_schema()
DEFS = SCHEMA["$defs"]


def _props(definition: dict[str, Any]) -> set[str]:
    return set(definition["properties"]) - {"type"}


RETRY_KEYS = (_props(DEFS["menu_node"]) & _props(DEFS["collect_node"]) & _props(DEFS["speech_node"])) - {
    "prompt", "barge_in"}


@pytest.mark.parametrize("kind", NODE_TYPES)
def test_each_node_type_has_a_section_with_an_example_and_its_keys(kind: str) -> None:
    section = _section(f"### `{kind}`")
    kinds = set()
    for b in _blocks(section):
        data = yaml.safe_load(b.text) if b.lang == "yaml" else None
        if isinstance(data, dict) and isinstance(data.get("nodes"), dict):
            kinds |= {n.get("type") for n in data["nodes"].values()}
    assert kind in kinds, f"the `{kind}` section has no flow example using a {kind} node"
    expected = _props(DEFS[f"{kind}_node"])
    if kind in ("menu", "collect", "speech"):
        expected -= RETRY_KEYS
    documented = set().union(*_tables(section)) if _tables(section) else set()
    assert documented == expected, f"`{kind}` keys: missing {expected - documented}, unknown {documented - expected}"


def _has_table(heading: str, expected: set[str]) -> None:
    tables = _tables(_section(heading))
    assert expected in tables, f"{heading!r}: no table of exactly {sorted(expected)}; tables: {tables}"


def test_shared_tables_match_the_code() -> None:
    _has_table("### Input retries (menu, collect, speech)", RETRY_KEYS)
    _has_table("## The file", set(SCHEMA["properties"]))
    _has_table("## Prompts", set(DEFS["prompt_object"]["properties"]))
    _has_table("## Variables", set(DEFS["variable"]["oneOf"][1]["properties"]))
    _has_table("## Variables", set(BUILTIN_VARIABLES))
    _has_table("## Business hours", set(DEFS["schedule"]["properties"]))
    _has_table("## Testing flows", CASE_KEYS)
    _has_table("## The IVR path of a call", set(IVR_EVENTS))


def test_testing_section_names_every_expectation_and_action_type() -> None:
    section = _section("## Testing flows")
    action_types = {cls.__dataclass_fields__["type"].default for cls in get_args(act.Action)} - {"trace"}
    for word in EXPECT_KEYS | action_types:
        assert f"`{word}`" in section, f"the testing section does not mention `{word}`"


def test_links_to_sections_resolve() -> None:
    lines = DOC_TEXT.splitlines()
    slugs = {re.sub(r"[^\w\- ]", "", ln.lstrip("#").strip().lower()).replace(" ", "-")
             for i, ln in enumerate(lines) if ln.startswith("#") and not _in_code(lines, i)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", DOC_TEXT):
        assert anchor in slugs, f"link to #{anchor}, which is no heading"


# -- the published schema and the demo -----------------------------------------------------------------

def test_published_schema_is_current() -> None:
    expected = json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"   # as `flow schema --out` writes it
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected, (
        "docs/flow.schema.json is stale: run `.venv/bin/python -m callcenter.cli flow schema "
        "--out docs/flow.schema.json`")


def test_demo_flow_validates_and_points_at_the_schema() -> None:
    text = DEMO.read_text(encoding="utf-8")
    flow, problems = check_flow(text, file=str(DEMO), base_dir=DEMO.parent)
    errors = [str(p) for p in problems if p.severity == "error"]
    assert flow is not None and not errors, "\n".join(errors)
    modeline = re.match(r"# yaml-language-server: \$schema=(\S+)", text)
    assert modeline and (DEMO.parent / modeline.group(1)).resolve() == SCHEMA_FILE

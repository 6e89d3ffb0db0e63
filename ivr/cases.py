"""``callcenter flow test FILE --cases CASES.yaml``: scripted callers run through a flow, with coverage.

A cases file lists calls; each runs through ``ivr.testing.simulate`` (no telephony) and is checked
against what it expects::

    subflows: {address: address.yaml}          # optional: flows the subflow nodes call (paths
                                               # relative to this file)
    cases:
      - name: sales by key
        time: "2026-12-01T10:00:00+00:00"       # optional, for business hours; without an offset it
                                                # is read in the flow's first schedule's time zone
        caller: {number: "+15551234", name: "Ann"}
        variables: {dialled_number: "100"}      # optional: more initial variables
        steps: [{press: "1"}, {wait: 10}, {say: "billing", confidence: 0.9}, {hangup: true}]
        http: [{url: "http://crm/*", status: 200, json: {name: "Ann"}}]   # or {error: timeout | never | ...}
        queue: no_agents                        # the ACD's answer (default: answered)
        transfer: false                         # whether a transfer succeeds (default: true)
        prompt_seconds: 0                       # how long each prompt plays (default 0: keys come after it)
        expect:
          path: [main, sales, bye]              # exactly the nodes entered, in order
          visits: [main, bye]                   # ... or: these nodes entered, in this order, among others
          variables: {account: "1234"}
          actions: [play, end_call]             # these action types, in this order, among others
          said: ["Connecting you"]              # prompt texts containing these, in this order
          end: flow_end                         # flow_end | caller_hangup | no_input | error | queue ...

Each failed expectation prints what was expected and what happened. Node and branch coverage are
summed over all cases (an edge is a declared target: a menu option, ``next``, ``error`` ...), with
the nodes and edges no case reached. Problems in the cases file raise ``CasesError`` whose lines
read ``file:line: message``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

import yaml

from .events import QueueOutcome
from .exceptions import FlowError, IvrError
from .flow import load_flow
from .machine import convert
from .nodes import Flow
from .testing import DEFAULT_START, Coverage, CoverageReport, HttpReply, Run, Step, simulate, step_from_dict

CASE_KEYS = {"name", "time", "caller", "variables", "steps", "http", "queue", "transfer", "prompt_seconds",
             "expect", "description"}
EXPECT_KEYS = {"path", "visits", "variables", "actions", "said", "end"}
HTTP_KEYS = {"url", "method", "status", "json", "error", "delay"}


class CasesError(IvrError):
    """The cases file is unreadable or wrong; ``problems`` are ``FlowError``s (``file:line: message``)."""

    def __init__(self, problems: list[FlowError]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


# -- YAML with line numbers ----------------------------------------------------------------------------
class _Map(dict[Any, Any]):
    line = 0
    key_lines: dict[Any, int]
    raw: dict[Any, str]                # the source text of scalar values (leading zeros survive)


class _Seq(list[Any]):
    line = 0
    lines: list[int]


def _py(node: yaml.Node, scalars: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        m = _Map()
        m.line, m.key_lines, m.raw = node.start_mark.line + 1, {}, {}
        for k, v in node.value:
            key = _py(k, scalars)
            if not isinstance(key, str | int | float | bool):
                raise FlowError("", k.start_mark.line + 1, "a key must be plain text")
            m[key] = _py(v, scalars)
            m.key_lines[key] = k.start_mark.line + 1
            if isinstance(v, yaml.ScalarNode):
                m.raw[key] = v.value
        return m
    if isinstance(node, yaml.SequenceNode):
        s = _Seq(_py(v, scalars) for v in node.value)
        s.line, s.lines = node.start_mark.line + 1, [v.start_mark.line + 1 for v in node.value]
        return s
    return scalars.construct_object(node, deep=True)


# -- results ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class CaseResult:
    name: str
    line: int
    run: Run
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(slots=True)
class CasesReport:
    flow: Flow
    cases_file: str
    results: list[CaseResult]
    coverage: CoverageReport

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def text(self) -> str:
        out: list[str] = []
        for r in self.results:
            if r.passed:
                out.append(f"PASS  {r.name}")
                continue
            out.append(f"FAIL  {r.name}  ({self.cases_file}:{r.line})")
            out += ["      " + line for failure in r.failures for line in failure.splitlines()]
            out += [f"      note: {n}" for n in r.run.notes]
            out += [f"      error: {e}" for e in r.run.errors]
        failed = sum(not r.passed for r in self.results)
        out.append(f"{len(self.results) - failed} of {len(self.results)} cases passed"
                   + (f" ({failed} failed)" if failed else ""))
        out += self.coverage.lines(self.flow.name)
        return "\n".join(out)


# -- running ---------------------------------------------------------------------------------------
def run_cases(flow_path: str | Path, cases_path: str | Path,
              subflows: Mapping[str, Flow] | None = None) -> CasesReport:
    """Run every case of ``cases_path`` against the flow file ``flow_path``.

    Raises FlowError for a bad flow file, CasesError for a bad cases file.
    """
    flow = load_flow(flow_path)
    cases_path = Path(cases_path)
    file = str(cases_path)
    try:
        text = cases_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CasesError([FlowError(file, 1, f"cannot read the cases file: {exc}")]) from None
    try:
        root = yaml.compose(text)
        data = _py(root, yaml.SafeLoader("")) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise CasesError([FlowError(file, line, f"not valid YAML: {exc.problem}")]) from None
    except FlowError as exc:
        raise CasesError([FlowError(file, exc.line, exc.message)]) from None
    parser = _Parser(file, flow, dict(subflows or {}), cases_path.parent)
    cases = parser.document(data)
    if parser.problems:
        raise CasesError(parser.problems)
    flows = [flow, *parser.subflows.values()]
    coverage = Coverage()
    results = []
    for case in cases:
        run = simulate(flow, case.steps, parser.subflows, start=case.start, caller=case.caller,
                       variables=case.variables, http=case.http, queue=case.queue, transfer_ok=case.transfer,
                       prompt_seconds=case.prompt_seconds)
        coverage.update(run.coverage)
        results.append(CaseResult(case.name, case.line, run, check(run, case.expect)))
    return CasesReport(flow, file, results, coverage.report(flows))


@dataclass(slots=True)
class _Case:
    name: str
    line: int
    steps: list[Step]
    start: float = DEFAULT_START
    caller: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    http: list[HttpReply] = field(default_factory=list)
    queue: QueueOutcome = "answered"
    transfer: bool = True
    prompt_seconds: float = 0.0
    expect: _Map = field(default_factory=_Map)


def check(run: Run, expect: Mapping[str, Any]) -> list[str]:
    """What of ``expect`` (a case's ``expect:`` mapping) ``run`` did not do, one message each."""
    failures: list[str] = []
    raw: dict[Any, str] = getattr(expect, "raw", {})
    if "path" in expect and [str(x) for x in expect["path"]] != run.path:
        failures.append(_sequence_diff("path", [str(x) for x in expect["path"]], run.path))
    if "visits" in expect:
        missing = _not_in_order([str(x) for x in expect["visits"]], run.path)
        if missing is not None:
            failures.append(f"visits: {missing!r} was not entered (in that order)\n"
                            f"  path: {' -> '.join(run.path) or '(none)'}")
    for name, want in (expect.get("variables") or {}).items():
        raw_want = getattr(expect["variables"], "raw", {}).get(name)
        if name not in run.variables:
            failures.append(f"variables.{name}: expected {want!r}, but it was never set")
            continue
        got = run.variables[name]
        if not _same(got, want, raw_want):
            failures.append(f"variables.{name}: expected {want!r}, got {got!r}")
    if "actions" in expect:
        wanted = [str(x) for x in expect["actions"]]
        missing = _not_in_order(wanted, run.action_types)
        if missing is not None:
            failures.append(f"actions: no {missing!r} where expected in {wanted}\n"
                            f"  actions: {', '.join(run.action_types) or '(none)'}")
    if "said" in expect:
        texts = iter(run.said)
        for want in expect["said"]:
            if not any(str(want) in t for t in texts):
                failures.append(f"said: no prompt containing {str(want)!r} (in that order)\n"
                                + "".join(f"  said: {t!r}\n" for t in run.said).rstrip())
                break
    if "end" in expect and str(expect["end"]) != run.end:
        failures.append(f"end: expected {raw.get('end', expect['end'])}, got {run.end or '(still running)'}")
    return failures


def _same(got: Any, want: Any, raw: str | None) -> bool:
    if isinstance(got, str):
        return got == (raw if raw is not None and not isinstance(want, str) else str(want))
    try:
        if isinstance(got, bool):
            return got is convert(want if raw is None else raw, "boolean")
        if isinstance(got, int | float):
            return math.isclose(got, convert(want if raw is None else raw, "number"), rel_tol=1e-9)
    except ValueError:
        return False
    return bool(got == want)


def _not_in_order(wanted: Sequence[str], seen: Sequence[str]) -> str | None:
    """The first of ``wanted`` not found in ``seen`` after the ones before it; None if all are."""
    it = iter(seen)
    for w in wanted:
        if not any(s == w for s in it):
            return w
    return None


def _sequence_diff(what: str, want: list[str], got: list[str]) -> str:
    i = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), min(len(want), len(got)))
    if i < len(want) and i < len(got):
        why = f"first difference at step {i + 1}: expected {want[i]!r}, got {got[i]!r}"
    elif i < len(want):
        why = f"the call never reached {want[i]!r} (step {i + 1})"
    else:
        why = f"then went on to {got[i]!r} (step {i + 1})"
    return (f"{what}: expected {' -> '.join(want) or '(none)'}\n"
            f"  {' ' * len(what)}got      {' -> '.join(got) or '(none)'}\n  {why}")


# -- reading the cases file --------------------------------------------------------------------------
class _Parser:
    def __init__(self, file: str, flow: Flow, subflows: dict[str, Flow], base: Path) -> None:
        self.file = file
        self.flow = flow
        self.subflows = subflows
        self.base = base
        self.problems: list[FlowError] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(FlowError(self.file, line, message))

    def document(self, data: Any) -> list[_Case]:
        if not isinstance(data, _Map):
            self.error(getattr(data, "line", 1), "a cases file is a mapping with a `cases:` list")
            return []
        for key in data:
            if key not in ("cases", "subflows"):
                self.error(data.key_lines[key], f"unknown key {key!r} (a cases file has `cases:` and `subflows:`)")
        for name, path in (data.get("subflows") or {}).items():
            try:
                self.subflows[str(name)] = load_flow(self.base / str(path))
            except FlowError as exc:
                self.error(data["subflows"].key_lines[name], f"subflow {name!r}: {exc}")
        cases = data.get("cases")
        if not isinstance(cases, _Seq) or not cases:
            self.error(data.key_lines.get("cases", data.line), "`cases:` must be a non-empty list of cases")
            return []
        out: list[_Case] = []
        for i, raw in enumerate(cases):
            case = self.case(raw, cases.lines[i])
            if case is not None:
                out.append(case)
        seen: set[str] = set()
        for c in out:
            if c.name in seen:
                self.error(c.line, f"a second case named {c.name!r}")
            seen.add(c.name)
        return out

    def case(self, raw: Any, line: int) -> _Case | None:
        if not isinstance(raw, _Map):
            self.error(line, "a case is a mapping with at least `name:` and `steps:`")
            return None
        before = len(self.problems)
        for key in raw:
            if key not in CASE_KEYS:
                self.error(raw.key_lines[key],
                           f"unknown key {key!r} in a case (allowed: {', '.join(sorted(CASE_KEYS))})")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.error(line, "a case needs a `name:`")
            name = f"case {line}"
        case = _Case(name, line, self.steps(raw.get("steps"), raw.key_lines.get("steps", line)))
        at = raw.key_lines.get
        if "time" in raw:
            case.start = self.time(raw["time"], at("time", line))
        if "caller" in raw:
            caller = raw["caller"]
            if not isinstance(caller, _Map) or set(caller) - {"number", "name"}:
                self.error(at("caller", line), "`caller:` takes `number:` and `name:`")
            else:
                case.caller = {k: caller.raw.get(k, str(v)) for k, v in caller.items()}
        if "variables" in raw:
            if not isinstance(raw["variables"], _Map):
                self.error(at("variables", line), "`variables:` is a mapping of name: value")
            else:
                case.variables = dict(raw["variables"])
        if "http" in raw:
            case.http = self.http(raw["http"], at("http", line))
        if "queue" in raw:
            if raw["queue"] not in get_args(QueueOutcome):
                self.error(at("queue", line),
                           f"queue: {raw['queue']!r} is not one of {', '.join(get_args(QueueOutcome))}")
            else:
                case.queue = raw["queue"]
        if "transfer" in raw:
            if not isinstance(raw["transfer"], bool):
                self.error(at("transfer", line), "transfer: true (it succeeds) or false (it fails)")
            else:
                case.transfer = raw["transfer"]
        if "prompt_seconds" in raw:
            value = raw["prompt_seconds"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                self.error(at("prompt_seconds", line), "prompt_seconds: a number of seconds")
            else:
                case.prompt_seconds = float(value)
        if "expect" in raw:
            case.expect = self.expect(raw["expect"], at("expect", line))
        return case if len(self.problems) == before else None

    def steps(self, raw: Any, line: int) -> list[Step]:
        if raw is None:
            return []
        if not isinstance(raw, _Seq):
            self.error(line, "`steps:` is a list, e.g. [{press: \"1\"}, {wait: 5}]")
            return []
        out: list[Step] = []
        for i, s in enumerate(raw):
            if not isinstance(s, _Map):
                self.error(raw.lines[i], "a step is a mapping: {press: \"1\"}, {say: ...}, {wait: ...}, {hangup: true}")
                continue
            data = dict(s)
            for key in ("press", "say"):          # as written: 0042 stays 0042, yes stays yes
                if key in data:
                    data[key] = s.raw.get(key, str(data[key]))
            try:
                out.append(step_from_dict(data))
            except ValueError as exc:
                self.error(raw.lines[i], str(exc))
        return out

    def time(self, value: Any, line: int) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            if isinstance(value, datetime):
                when = value
            elif isinstance(value, date):
                when = datetime(value.year, value.month, value.day)
            else:
                when = datetime.fromisoformat(str(value))
        except ValueError:
            self.error(line, f"time: {value!r} is not an ISO 8601 time such as \"2026-12-01T10:00:00+00:00\"")
            return DEFAULT_START
        if when.tzinfo is None:
            schedules = list(self.flow.hours.values())
            when = when.replace(tzinfo=ZoneInfo(schedules[0].timezone) if schedules else UTC)
        return when.timestamp()

    def http(self, raw: Any, line: int) -> list[HttpReply]:
        if not isinstance(raw, _Seq):
            self.error(line, "`http:` is a list of replies, e.g. [{url: \"http://crm/*\", status: 200, json: {}}]")
            return []
        out: list[HttpReply] = []
        for i, r in enumerate(raw):
            if not isinstance(r, _Map) or set(r) - HTTP_KEYS:
                extra = sorted(map(str, set(r) - HTTP_KEYS)) if isinstance(r, _Map) else []
                self.error(raw.lines[i], (f"unknown key {extra[0]!r} in an HTTP reply" if extra else "an HTTP reply")
                           + f" (keys: {', '.join(sorted(HTTP_KEYS))})")
                continue
            status, delay = r.get("status", 200), r.get("delay", 0.0)
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                self.error(r.key_lines.get("status", raw.lines[i]), f"status: {status!r} is not an HTTP status")
                continue
            if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                self.error(r.key_lines.get("delay", raw.lines[i]), f"delay: {delay!r} is not a number of seconds")
                continue
            method = r.get("method")
            out.append(HttpReply(str(r.get("url", "*")), status, _plain(r.get("json")), str(r.get("error") or ""),
                                 str(method).upper() if method else None, float(delay)))
        return out

    def expect(self, raw: Any, line: int) -> _Map:
        if not isinstance(raw, _Map):
            self.error(line, "`expect:` is a mapping (path, visits, variables, actions, said, end)")
            return _Map()
        known = {(f.name, n) for f in (self.flow, *self.subflows.values()) for n in f.nodes}
        node_ids = {n for _, n in known}
        for key in raw:
            at = raw.key_lines[key]
            if key not in EXPECT_KEYS:
                self.error(at, f"unknown key {key!r} in expect (allowed: {', '.join(sorted(EXPECT_KEYS))})")
            elif key in ("path", "visits", "actions", "said") and not isinstance(raw[key], _Seq):
                self.error(at, f"expect.{key} is a list")
            elif key in ("path", "visits"):
                for i, n in enumerate(raw[key]):
                    if str(n) not in node_ids:
                        self.error(raw[key].lines[i], f"expect.{key}: {n!r} is not a node of flow {self.flow.name!r}")
            elif key == "variables" and not isinstance(raw[key], _Map):
                self.error(at, "expect.variables is a mapping of name: value")
        return raw


def _plain(value: Any) -> Any:
    """YAML data without the line-keeping classes (JSON bodies compare and print as plain data)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

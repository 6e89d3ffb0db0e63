"""Test a flow without telephony (like pipecat's ``run_test``): raw events, or a scripted caller.

``run_flow(flow, events)`` feeds events to a fresh ``FlowMachine`` and returns what each one
caused. ``simulate(flow, script)`` plays a whole call: a scripted caller presses keys, says
phrases, waits and hangs up, while a simulated driver answers the machine's actions::

    run = simulate(flow, [Press("1"), Wait(10), Say("billing", 0.9), HangUp()],
                   http=[HttpReply("http://crm/*", json={"name": "Ann"})], queue="no_agents")
    assert run.path == ["main", "billing", "bye"] and run.end == "flow_end"

The simulated driver, on a clock that starts at ``start`` and moves only when the caller waits:

* every ``Play`` / ``Beep`` lasts ``prompt_seconds`` (0 by default: its ``PromptDone`` comes at
  once, so the caller acts after each prompt; give it seconds to press keys *during* prompts);
* timers fire in deadline order while the caller waits (``Wait``), and after the script ends
  (the caller stays silent until the call ends, at most ``max_seconds``, then hangs up);
* an ``HttpRequest`` is answered by the first ``HttpReply`` whose glob matches its URL (none
  matching: a connection error); ``Enqueue`` by ``queue``; ``Transfer`` by ``transfer_ok``;
  a voicemail records until the machine stops it; ``Say`` reaches the recognizer only while the
  machine listens;
* an exception inside the machine is handed to ``machine.fail`` as the real driver does.

``Run`` holds the node path, every action and event, the final variables, the end reason and
the ``Coverage`` (nodes entered, edges taken); ``Coverage.report(flows)`` sums it up.
"""

from __future__ import annotations

import fnmatch
import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import actions as act
from . import events as ev
from .machine import FlowMachine
from .nodes import Flow

DEFAULT_START = 1_767_607_200.0   # 2026-01-05 10:00 UTC, a Monday morning


def run_flow(flow: Flow, events: Iterable[ev.Event], subflows: Mapping[str, Flow] | None = None,
             ) -> list[list[act.Action]]:
    """Feed ``events`` to a fresh machine; return the actions produced by each event in turn.

    An exception inside the machine is answered with ``machine.fail`` (as the driver does).
    """
    machine = FlowMachine(flow, subflows)
    out: list[list[act.Action]] = []
    for event in events:
        try:
            out.append(machine.receive(event))
        except Exception as exc:
            out.append(machine.fail(event.now, f"{type(exc).__name__}: {exc}"))
    return out


# -- the script ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Press:
    """Press ``digits`` one after the other, ``gap`` seconds apart (timers may fire in a gap)."""

    digits: str
    gap: float = 0.0


@dataclass(frozen=True, slots=True)
class Say:
    """Say ``phrase``; the recognizer reports it with ``confidence``."""

    phrase: str
    confidence: float = 0.9


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class HangUp:
    pass


Step = Press | Say | Wait | HangUp


@dataclass(frozen=True, slots=True)
class HttpReply:
    """How the simulated server answers requests whose URL matches the glob ``url``.

    ``error``: "" answers ``status`` with ``json``; "timeout" answers nothing until the request's
    timeout, then the driver's timeout error; "never" never answers (the machine's guard fires);
    any other text is an immediate connection error of that name.
    """

    url: str = "*"
    status: int = 200
    json: Any = None
    error: str = ""
    method: str | None = None
    delay: float = 0.0

    def matches(self, request: act.HttpRequest) -> bool:
        return fnmatch.fnmatchcase(request.url, self.url) and self.method in (None, request.method)


def step_from_dict(data: Mapping[str, Any]) -> Step:
    """A step written as a mapping: ``{press: "12#"}``, ``{say: "sales", confidence: 0.8}``,
    ``{wait: 5}``, ``{hangup: true}``; raises ValueError naming what is wrong."""
    keys = set(data)
    if "press" in keys:
        _only(keys, {"press", "gap"})
        digits = str(data["press"])
        if not digits or any(d not in "0123456789*#" for d in digits):
            raise ValueError(f"press: {digits!r} is not keys 0-9 * #")
        return Press(digits, _seconds(data.get("gap", 0.0), "gap"))
    if "say" in keys:
        _only(keys, {"say", "confidence"})
        confidence = data.get("confidence", 0.9)
        if not isinstance(confidence, int | float) or isinstance(confidence, bool) or not 0 <= confidence <= 1:
            raise ValueError(f"confidence: {confidence!r} is not a number from 0 to 1")
        return Say(str(data["say"]), float(confidence))
    if "wait" in keys:
        _only(keys, {"wait"})
        return Wait(_seconds(data["wait"], "wait"))
    if "hangup" in keys:
        _only(keys, {"hangup"})
        return HangUp()
    raise ValueError(f"a step is one of press, say, wait, hangup (got {', '.join(map(str, keys)) or 'nothing'})")


def _only(keys: set[str], allowed: set[str]) -> None:
    extra = keys - allowed
    if extra:
        first = sorted(map(str, extra))[0]
        raise ValueError(f"unknown key {first!r} in a step (allowed: {', '.join(sorted(allowed))})")


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: {value!r} is not a number of seconds")
    return float(value)


# -- results ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class Coverage:
    nodes: set[tuple[str, str]] = field(default_factory=set)            # (flow, node)
    edges: set[tuple[str, str, str]] = field(default_factory=set)       # (flow, from, to)

    def update(self, other: Coverage) -> None:
        self.nodes |= other.nodes
        self.edges |= other.edges

    def report(self, flows: Iterable[Flow]) -> CoverageReport:
        """How much of ``flows`` this covers (edges are the targets ``Flow.targets`` declares)."""
        all_nodes: list[tuple[str, str]] = []
        all_edges: list[tuple[str, str, str]] = []
        for flow in flows:
            for node in flow.nodes.values():
                all_nodes.append((flow.name, node.id))
                for target in dict.fromkeys(flow.targets(node)):
                    all_edges.append((flow.name, node.id, target))
        return CoverageReport(
            nodes_total=len(all_nodes), nodes_hit=sum(n in self.nodes for n in all_nodes),
            edges_total=len(all_edges), edges_hit=sum(e in self.edges for e in all_edges),
            missed_nodes=[n for n in all_nodes if n not in self.nodes],
            missed_edges=[e for e in all_edges if e not in self.edges])


@dataclass(frozen=True, slots=True)
class CoverageReport:
    nodes_total: int
    nodes_hit: int
    edges_total: int
    edges_hit: int
    missed_nodes: list[tuple[str, str]]
    missed_edges: list[tuple[str, str, str]]

    def lines(self, main: str | None = None) -> list[str]:
        """Human-readable summary; names in ``main`` (the tested flow) are shown without the flow."""
        def node(flow: str, n: str) -> str:
            return n if flow == main else f"{flow}:{n}"
        out = [f"node coverage: {self.nodes_hit}/{self.nodes_total} ({_pct(self.nodes_hit, self.nodes_total)})",
               f"branch coverage: {self.edges_hit}/{self.edges_total} ({_pct(self.edges_hit, self.edges_total)})"]
        if self.missed_nodes:
            out.append("  never entered: " + ", ".join(node(f, n) for f, n in self.missed_nodes))
        if self.missed_edges:
            out.append("  never taken: " + ", ".join(f"{node(f, a)} -> {b}" for f, a, b in self.missed_edges))
        return out


def _pct(hit: int, total: int) -> str:
    return f"{100 * hit / total:.0f}%" if total else "-"


@dataclass(slots=True)
class Run:
    """What happened in one simulated call."""

    path: list[str]                      # the node ids entered, in order
    actions: list[act.Action]            # everything the machine asked for, in order
    events: list[ev.Event]               # everything it heard
    variables: dict[str, Any]            # final values (real)
    visible: dict[str, Any]              # final values, sensitive ones masked
    end: str                             # the machine's finish_reason
    coverage: Coverage
    traces: list[act.Trace]
    notes: list[str]                     # what the simulation noticed (unmatched requests, ignored speech ...)
    errors: list[str]                    # Trace ERROR messages

    @property
    def action_types(self) -> list[str]:
        return [a.type for a in self.actions if not isinstance(a, act.Trace)]

    @property
    def said(self) -> list[str]:
        """The texts of the TTS prompts played, in order."""
        return [a.text for a in self.actions if isinstance(a, act.Play) and a.text is not None]

    def of(self, kind: type[Any]) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]


# -- the simulated driver ------------------------------------------------------------------------------
def simulate(
    flow: Flow,
    script: Sequence[Step | Mapping[str, Any]],
    subflows: Mapping[str, Flow] | None = None,
    *,
    start: float = DEFAULT_START,
    caller: Mapping[str, str] | None = None,
    variables: Mapping[str, Any] | None = None,
    http: Sequence[HttpReply] = (),
    queue: ev.QueueOutcome = "answered",
    transfer_ok: bool = True,
    prompt_seconds: float = 0.0,
    max_seconds: float = 3600.0,
    version: str = "",
) -> Run:
    """Run one call of ``flow`` with a scripted caller; see the module docstring for the rules."""
    steps = [s if isinstance(s, Press | Say | Wait | HangUp) else step_from_dict(s) for s in script]
    initial: dict[str, Any] = {"call_id": "test-call", "caller_number": "", "caller_name": "",
                               "dialled_number": ""}
    if caller:
        initial["caller_number"] = caller.get("number", "")
        initial["caller_name"] = caller.get("name", "")
    initial.update(variables or {})
    sim = _Sim(FlowMachine(flow, subflows, version=version), start, http, queue, transfer_ok, prompt_seconds)
    sim.feed(ev.CallStarted(start, initial))
    for i, s in enumerate(steps):
        if sim.machine.finished:
            sim.notes.append(f"the call ended before step {i + 1} of {len(steps)}")
            break
        sim.step(s)
    sim.until_end(start + max_seconds)
    m = sim.machine
    traces = list(m.path)
    cov = Coverage()
    path: list[str] = []
    for t in traces:
        if t.event == "NODE":
            path.append(t.node)
            cov.nodes.add((t.data.get("flow", flow.name), t.node))
            if t.data.get("from") is not None:
                cov.edges.add((t.data.get("flow", flow.name), t.data["from"], t.node))
    return Run(path=path, actions=sim.actions, events=sim.events, variables=dict(m.variables),
               visible=m.visible_variables(), end=m.finish_reason, coverage=cov, traces=traces,
               notes=sim.notes, errors=[str(t.data.get("message", "")) for t in traces if t.event == "ERROR"])


class _Sim:
    def __init__(self, machine: FlowMachine, start: float, http: Sequence[HttpReply],
                 queue: ev.QueueOutcome, transfer_ok: bool, prompt_seconds: float) -> None:
        self.machine = machine
        self.start = self.now = start
        self.http = list(http)
        self.queue = queue
        self.transfer_ok = transfer_ok
        self.prompt_seconds = prompt_seconds
        self.actions: list[act.Action] = []
        self.events: list[ev.Event] = []
        self.notes: list[str] = []
        self._soon: deque[ev.Event] = deque()
        self._agenda: list[tuple[float, int, ev.Event]] = []
        self._seq = 0
        self._timers: dict[int, float] = {}
        self._playing: set[int] = set()
        self._listen: int | None = None
        self._voicemail: float | None = None

    # the caller
    def step(self, s: Step) -> None:
        if isinstance(s, Press):
            for i, digit in enumerate(s.digits):
                if self.machine.finished:
                    return
                if i and s.gap:
                    self.advance(self.now + s.gap)
                self.feed(ev.Digit(self.now, digit, "test"))
        elif isinstance(s, Say):
            if self._listen is None:
                self.notes.append(f"said {s.phrase!r} at {self.now:.1f} while nothing listened")
                return
            listen = self._listen
            self.feed(ev.SpeechStarted(self.now, listen))
            if self._listen == listen:
                self.feed(ev.SpeechResult(self.now, listen, s.phrase, s.confidence))
        elif isinstance(s, Wait):
            self.advance(self.now + s.seconds)
        else:
            self.feed(ev.Hangup(self.now))

    def until_end(self, limit: float) -> None:
        while not self.machine.finished and self._agenda and self._agenda[0][0] <= limit:
            self.advance(self._agenda[0][0])
        if not self.machine.finished:
            if self.now < limit and not self._agenda:
                self.notes.append("the flow waits for an event that never comes; the caller hangs up")
            else:
                self.notes.append(f"the call was still up after {limit - self.start:.0f} s; the caller hangs up")
            self.feed(ev.Hangup(self.now))

    def advance(self, until: float) -> None:
        while self._agenda and self._agenda[0][0] <= until and not self.machine.finished:
            when, _, event = heapq.heappop(self._agenda)
            if isinstance(event, ev.TimerFired) and self._timers.get(event.timer) != when:
                continue                      # cancelled (or restarted)
            if isinstance(event, ev.PromptDone) and event.prompt not in self._playing:
                continue                      # stopped: its PromptDone went out then
            self.now = max(self.now, when)
            self.feed(event)
        self.now = max(self.now, until)

    # the driver
    def feed(self, event: ev.Event) -> None:
        self._soon.append(event)
        while self._soon:
            e = self._soon.popleft()
            if isinstance(e, ev.TimerFired):
                self._timers.pop(e.timer, None)
            elif isinstance(e, ev.PromptDone):
                self._playing.discard(e.prompt)
            self.events.append(e)
            try:
                actions = self.machine.receive(e)
            except Exception as exc:
                self.notes.append(f"the machine raised on {e.type}: {type(exc).__name__}: {exc}")
                actions = self.machine.fail(self.now, f"{type(exc).__name__}: {exc}")
            for a in actions:
                self.actions.append(a)
                self._carry_out(a)

    def _later(self, when: float, event: ev.Event) -> None:
        if when <= self.now:
            self._soon.append(event)
        else:
            self._seq += 1
            heapq.heappush(self._agenda, (when, self._seq, event))

    def _carry_out(self, a: act.Action) -> None:
        now = self.now
        if isinstance(a, act.Play | act.Beep):
            self._playing.add(a.prompt)
            self._later(now + self.prompt_seconds, ev.PromptDone(now + self.prompt_seconds, a.prompt))
        elif isinstance(a, act.StopPlayback):
            if a.prompt in self._playing:
                self._playing.discard(a.prompt)
                self._soon.append(ev.PromptDone(now, a.prompt))
        elif isinstance(a, act.StartTimer):
            self._timers[a.timer] = a.deadline
            self._seq += 1
            heapq.heappush(self._agenda, (a.deadline, self._seq, ev.TimerFired(a.deadline, a.timer)))
        elif isinstance(a, act.CancelTimer):
            self._timers.pop(a.timer, None)
        elif isinstance(a, act.Listen):
            self._listen = a.listen
        elif isinstance(a, act.StopListening):
            if self._listen == a.listen:
                self._listen = None
        elif isinstance(a, act.HttpRequest):
            self._http(a)
        elif isinstance(a, act.Enqueue):
            self._soon.append(ev.QueueResult(now, self.queue))
        elif isinstance(a, act.Transfer):
            self._soon.append(ev.TransferResult(now, self.transfer_ok, "" if self.transfer_ok else "refused"))
        elif isinstance(a, act.RecordVoicemail):
            self._voicemail = now
        elif isinstance(a, act.StopVoicemail):
            if self._voicemail is not None:
                self._soon.append(ev.VoicemailDone(now, now - self._voicemail))
                self._voicemail = None

    def _http(self, a: act.HttpRequest) -> None:
        rule = next((r for r in self.http if r.matches(a)), None)
        now = self.now
        if rule is None:
            self.notes.append(f"no HTTP reply given for {a.method} {a.url}: answered as a connection error")
            self._soon.append(ev.HttpResult(now, a.request, None, error="connection refused (no reply in the test)"))
        elif rule.error == "never":
            return
        elif rule.error == "timeout":
            self._later(now + a.timeout, ev.HttpResult(now + a.timeout, a.request, None, error="timeout"))
        elif rule.error:
            self._later(now + rule.delay, ev.HttpResult(now + rule.delay, a.request, None, error=rule.error))
        elif rule.delay >= a.timeout:
            self._later(now + a.timeout, ev.HttpResult(now + a.timeout, a.request, None, error="timeout"))
        else:
            self._later(now + rule.delay, ev.HttpResult(now + rule.delay, a.request, rule.status, body=rule.json))

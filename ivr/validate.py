"""Semantic checks of a built flow: what the JSON Schema cannot see. Reports every problem, not the first.

Errors: targets naming no node, ``start``/``on_error`` naming no node, nodes nothing leads to, loops no
call can leave, variables used but never declared or assigned, built-in variables assigned, malformed
templates and conditions, ``open()`` of an undefined schedule, unknown time zones, bad regular
expressions, audio files that do not exist, URLs and transfer targets of the wrong kind, subflows naming
no known flow. Warnings (``severity="warning"``): settings that can never take effect, a key and a
spoken digit leading to different places, sensitive values spoken or put in URLs, unused variables.

``locate(path, at)`` maps a path into the flow's YAML data (``("nodes", "main", "options", "1")``) to a
line; ivr/flow.py passes the one it recorded while reading the file. Without it, lines are node lines.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from pathlib import Path

from .exceptions import ExpressionError, FlowError, HoursError, Severity, TemplateError
from .expressions import compile_expr
from .hours import zone
from .nodes import (
    BUILTIN_VARIABLES,
    BranchNode,
    CollectNode,
    Flow,
    GotoNode,
    HangupNode,
    HttpNode,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    QueueNode,
    ReturnNode,
    SetNode,
    SpeechNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
)
from .template import names as template_names

DataPath = tuple[str | int, ...]
Locate = Callable[[DataPath, str], int]
ASSIGNABLE_BUILTINS = frozenset({"language"})
_DIGIT_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "star": "*", "hash": "#", "pound": "#"}


def validate_flow(flow: Flow, *, base_dir: Path | None = None, known_flows: Collection[str] | None = None,
                  locate: Locate | None = None) -> list[FlowError]:
    """Every semantic problem of ``flow`` (errors and warnings), in no particular order."""
    checker = _Checker(flow, base_dir, known_flows, locate)
    checker.run()
    return checker.problems


def edges(node: Node) -> list[tuple[DataPath, str | None]]:
    """Each place ``node`` may lead, with the path (inside the node) of the key that names it."""
    out: list[tuple[DataPath, str | None]] = []
    if isinstance(node, MenuNode | SpeechNode):
        out += [(("options", k), t) for k, t in node.options.items()]
    if isinstance(node, SpeechNode):
        out += [(("phrases", k), t) for k, t in node.phrases.items()]
    if isinstance(node, BranchNode):
        out += [(("rules", i, "next"), r.next) for i, r in enumerate(node.rules)] + [(("else",), node.otherwise)]
    if isinstance(node, MenuNode | CollectNode | SpeechNode):
        out += [(("no_match",), node.retry.no_match), (("no_input",), node.retry.no_input),
                (("fallback",), node.retry.fallback)]
    simple = ("next", "error", "no_agents") + (() if isinstance(node, BranchNode) else ("otherwise",))
    out += [((name,), getattr(node, name, None)) for name in simple]
    if isinstance(node, GotoNode):
        out.append((("target",), node.target))
    return out


def _ends(node: Node) -> bool:
    """Whether ``node`` can end the flow itself (hang up, return, leave the IVR, or run out of nodes)."""
    if isinstance(node, HangupNode | ReturnNode | TransferNode | QueueNode | VoicemailNode):
        return True
    if isinstance(node, PlayNode | SubflowNode):
        return node.next is None
    if isinstance(node, GotoNode):
        return node.max_visits is not None and node.otherwise is None
    if isinstance(node, MenuNode | CollectNode | SpeechNode):
        r = node.retry
        return (r.no_match or r.fallback) is None or (r.no_input or r.fallback) is None
    return False


def _suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Checker:
    def __init__(self, flow: Flow, base_dir: Path | None, known_flows: Collection[str] | None,
                 locate: Locate | None) -> None:
        self.flow = flow
        self.base_dir = base_dir
        self.known_flows = known_flows
        self.locate = locate or self._node_line
        self.problems: list[FlowError] = []
        self.used: set[str] = set()
        self.assigned: list[tuple[str, DataPath]] = []
        self.defined: set[str] = set()
        self.sensitive: set[str] = set()

    def _node_line(self, path: DataPath, at: str = "value") -> int:
        if len(path) >= 2 and path[0] == "nodes" and str(path[1]) in self.flow.nodes:
            return self.flow.nodes[str(path[1])].line
        if len(path) >= 2 and path[0] == "hours" and str(path[1]) in self.flow.hours:
            return self.flow.hours[str(path[1])].line
        return 0

    def add(self, path: DataPath, message: str, severity: Severity = "error", at: str = "value") -> None:
        self.problems.append(FlowError(self.flow.source or "<flow>", self.locate(path, at), message, severity))

    def run(self) -> None:
        self.targets()
        self.reachability()
        self.variables()
        self.schedules()
        for node in self.flow.nodes.values():
            self.node(("nodes", node.id), node)
        assigned = {a for a, _ in self.assigned}
        for name in self.flow.variables:
            if name not in self.used and name not in assigned and name not in BUILTIN_VARIABLES:
                self.add(("variables", name), f"variable {name!r} is declared but never used", "warning", "key")

    # -- the graph ------------------------------------------------------------------------------

    def targets(self) -> None:
        nodes = self.flow.nodes
        for key in ("start", "on_error"):
            target = getattr(self.flow, key)
            if target is not None and target not in nodes:
                self.add((key,), f"`{key}` names {target!r}, which is not a node{_suggest(target, nodes)}")
        for node in nodes.values():
            for sub, target in edges(node):
                if target is not None and target not in nodes:
                    what = ".".join(map(str, sub))
                    self.add(("nodes", node.id) + sub, f"node {node.id!r}: `{what}` names {target!r}, which is not "
                             f"a node{_suggest(target, nodes)}")

    def _successors(self, node: Node) -> list[str]:
        return [t for _, t in edges(node) if t is not None and t in self.flow.nodes]

    def reachability(self) -> None:
        nodes = self.flow.nodes
        roots = [r for r in (self.flow.start, self.flow.on_error) if r in nodes]
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            nid = stack.pop()
            if nid not in seen:
                seen.add(nid)
                stack += self._successors(nodes[nid])
        if self.flow.start in nodes:
            for nid in nodes:
                if nid not in seen:
                    self.add(("nodes", nid), f"node {nid!r} is never reached (nothing leads to it from `start`"
                             f"{' or `on_error`' if self.flow.on_error else ''})", at="key")
        self.loops(seen if self.flow.start in nodes else set(nodes))

    def loops(self, reachable: set[str]) -> None:
        nodes = self.flow.nodes
        back: dict[str, list[str]] = {nid: [] for nid in nodes}
        for nid, node in nodes.items():
            for target in self._successors(node):
                back[target].append(nid)
        escapes = {nid for nid, node in nodes.items()
                   if _ends(node) or any(t is not None and t not in nodes for _, t in edges(node))}
        stack = list(escapes)
        while stack:
            for prev in back[stack.pop()]:
                if prev not in escapes:
                    escapes.add(prev)
                    stack.append(prev)
        stuck = {nid for nid in nodes if nid not in escapes and nid in reachable}
        while stuck:
            first = min(stuck, key=lambda n: (nodes[n].line, n))
            group, todo = set(), [first]
            while todo:          # everything the loop can reach is stuck too
                nid = todo.pop()
                if nid not in group:
                    group.add(nid)
                    todo += [t for t in self._successors(nodes[nid]) if t in stuck]
            path, at = [first], first
            while True:
                at = next(t for t in self._successors(nodes[at]) if t not in escapes)
                if at in path:
                    cycle = path[path.index(at):] + [at]
                    break
                path.append(at)
            where = min(cycle, key=lambda n: (nodes[n].line, n))
            self.add(("nodes", where), f"loop with no exit: {' -> '.join(cycle)} (nothing in it leads to a hangup, "
                     "return, transfer, queue, voicemail or the end of the flow; e.g. give a goto `max_visits`)",
                     at="key")
            stuck -= group

    # -- variables --------------------------------------------------------------------------------

    def variables(self) -> None:
        for node in self.flow.nodes.values():
            base: DataPath = ("nodes", node.id)
            if isinstance(node, CollectNode | SpeechNode) and node.variable:
                self.assigned.append((node.variable, base + ("variable",)))
            if isinstance(node, HttpNode):
                self.assigned += [(v, base + ("results", v)) for v in node.results]
            if isinstance(node, SetNode):
                self.assigned += [(v, base + ("values", v)) for v in node.values]
        self.defined = set(self.flow.variables) | set(BUILTIN_VARIABLES) | {a for a, _ in self.assigned}
        for name in self.flow.variables:
            if name in BUILTIN_VARIABLES:
                self.add(("variables", name), f"{name!r} is a built-in variable; it needs no declaration", at="key")
        for name, path in self.assigned:
            if name in BUILTIN_VARIABLES and name not in ASSIGNABLE_BUILTINS:
                self.add(path, f"{name!r} is set by the call and cannot be assigned", at="key")
        self.sensitive = {n for n, v in self.flow.variables.items() if v.sensitive}
        self.sensitive |= {n.variable for n in self.flow.nodes.values() if isinstance(n, CollectNode) and n.sensitive}

    def template(self, path: DataPath, text: str, what: str) -> set[str]:
        try:
            found = template_names(text)
        except TemplateError as exc:
            self.add(path, f"{what}: {exc}")
            return set()
        self.uses(path, found, what)
        return found

    def uses(self, path: DataPath, found: Collection[str], what: str) -> None:
        self.used |= set(found)
        for name in sorted(found):
            if name not in self.defined:
                self.add(path, f"{what}: undefined variable {name!r}{_suggest(name, self.defined)} (declare it "
                         "under `variables`, or set it with a collect, speech, http or set node)")

    def prompt(self, path: DataPath, prompt: Prompt | None, what: str) -> None:
        """Check a prompt; ``path`` is where its `say`/`audio` keys are (the node itself for play)."""
        if prompt is None:
            return
        if prompt.say is not None:
            say_path = path + ("say",)
            found = self.template(say_path, prompt.say, what)
            spoken = sorted(found & self.sensitive)
            if spoken:
                self.add(say_path, f"{what} speaks the sensitive variable {spoken[0]!r} (it ends up in the "
                         "recording)", "warning")
        if prompt.audio is not None:
            audio_path = path + ("audio",)
            if not prompt.audio.lower().endswith(".wav"):
                self.add(audio_path, f"{what}: audio {prompt.audio!r} should be a WAV file (.wav)", "warning")
            if self.base_dir is not None:
                file = Path(prompt.audio)
                full = file if file.is_absolute() else self.base_dir / file
                if not full.is_file():
                    self.add(audio_path, f"{what}: audio file {prompt.audio!r} not found (looked for {full})")

    # -- schedules ------------------------------------------------------------------------------

    def schedules(self) -> None:
        for name, schedule in self.flow.hours.items():
            try:
                zone(schedule.timezone)
            except HoursError as exc:
                self.add(("hours", name, "timezone"), f"hours {name!r}: {exc.message}")

    # -- per node -------------------------------------------------------------------------------

    def node(self, base: DataPath, node: Node) -> None:
        label = f"node {node.id!r}"
        if isinstance(node, PlayNode):
            self.prompt(base, node.prompt, label)
        elif isinstance(node, HangupNode | VoicemailNode | TransferNode):
            self.prompt(base + ("prompt",), node.prompt, label)
        if isinstance(node, MenuNode | CollectNode | SpeechNode):
            self.prompt(base + ("prompt",), node.prompt, label)
            self.retry(base, node)
        if isinstance(node, CollectNode) and node.pattern is not None:
            try:
                re.compile(node.pattern)
            except re.error as exc:
                self.add(base + ("pattern",), f"{label}: `pattern` {node.pattern!r} is not a regular expression: {exc}")
        if isinstance(node, SpeechNode):
            self.speech(base, node)
        if isinstance(node, BranchNode):
            for i, rule in enumerate(node.rules):
                self.condition(base + ("rules", i, "if"), rule.condition, f"{label} rule {i + 1}")
        if isinstance(node, HttpNode):
            self.http(base, node, label)
        if isinstance(node, SetNode):
            self.set_values(base, node, label)
        if isinstance(node, GotoNode) and node.otherwise is not None and node.max_visits is None:
            self.add(base + ("otherwise",), f"{label}: `otherwise` is never used without `max_visits`", "warning")
        if isinstance(node, SubflowNode):
            if self.known_flows is not None and node.flow not in self.known_flows:
                hint = _suggest(node.flow, self.known_flows)
                self.add(base + ("flow",), f"{label}: no flow named {node.flow!r}{hint}")
            if node.flow == self.flow.name:
                self.add(base + ("flow",), f"{label}: the flow calls itself (each call nests deeper)", "warning")
        if isinstance(node, TransferNode):
            self.template(base + ("target",), node.target, f"{label} `target`")
            if not node.target.startswith("{") and not re.match(r"(?i)sips?:", node.target):
                self.add(base + ("target",), f"{label}: `target` {node.target!r} is not a SIP URI (sip:user@host)")

    def retry(self, base: DataPath, node: MenuNode | CollectNode | SpeechNode) -> None:
        r, label = node.retry, f"node {node.id!r}"
        for key, prompt in (("invalid_prompt", r.invalid_prompt), ("timeout_prompt", r.timeout_prompt)):
            self.prompt(base + (key,), prompt, f"{label} `{key}`")
            if prompt is not None and r.retries == 0:
                self.add(base + (key,), f"{label}: `{key}` is never heard with `retries: 0`", "warning")
        if r.fallback is not None and r.no_match is not None and r.no_input is not None:
            self.add(base + ("fallback",), f"{label}: `fallback` is never used (`no_match` and `no_input` are both "
                     "given)", "warning")

    def speech(self, base: DataPath, node: SpeechNode) -> None:
        label = f"node {node.id!r}"
        for phrase, target in node.phrases.items():
            if phrase.replace(" ", "").isdigit():
                self.add(base + ("phrases", phrase), f"{label}: phrase {phrase!r} is digits; callers press keys "
                         "through `options`", "warning", "key")
            key = _DIGIT_WORDS.get(phrase)
            if key is not None and key in node.options and node.options[key] != target:
                self.add(base + ("phrases", phrase), f"{label}: saying {phrase!r} goes to {target!r} but pressing "
                         f"{key} goes to {node.options[key]!r}", "warning", "key")

    def condition(self, path: DataPath, text: str, what: str) -> None:
        try:
            expr = compile_expr(text)
        except ExpressionError as exc:
            self.add(path, f"{what}: {exc}")
            return
        self.uses(path, expr.names, what)
        for schedule in sorted(expr.schedules):
            if schedule not in self.flow.hours:
                self.add(path, f"{what}: open({schedule!r}) names no schedule under `hours`"
                         f"{_suggest(schedule, self.flow.hours)}")

    def http(self, base: DataPath, node: HttpNode, label: str) -> None:
        found = self.template(base + ("url",), node.url, f"{label} `url`")
        if not node.url.startswith("{") and not re.match(r"(?i)https?://[^/{}\s]", node.url):
            self.add(base + ("url",), f"{label}: `url` {node.url!r} must start with http:// or https://")
        secret = sorted(found & self.sensitive)
        if secret:
            self.add(base + ("url",), f"{label}: the sensitive variable {secret[0]!r} in a URL ends up in logs; "
                     "send it in `body` or `headers`", "warning")
        for key, value in node.headers.items():
            self.template(base + ("headers", key), value, f"{label} header {key!r}")
        for key, value in node.body.items():
            self.template(base + ("body", key), value, f"{label} body {key!r}")
        if node.method == "GET" and node.body:
            self.add(base + ("body",), f"{label}: a GET request sends no `body` (use method: POST)", "warning")

    def set_values(self, base: DataPath, node: SetNode, label: str) -> None:
        for name, value in node.values.items():
            path = base + ("values", name)
            found = self.template(path, value, f"{label} `{name}`")
            declared = self.flow.variables.get(name)
            if found or declared is None:
                continue
            if declared.type == "number" and not re.fullmatch(r"\s*[-+]?\d+(\.\d+)?\s*", value):
                self.add(path, f"{label}: {name!r} is a number, but {value!r} is not one")
            if declared.type == "boolean" and value.strip().lower() not in ("true", "false", "yes", "no"):
                self.add(path, f"{label}: {name!r} is a boolean, but {value!r} is not true or false")


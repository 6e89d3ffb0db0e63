"""Loading flows: a YAML file -> checked ``ivr.nodes.Flow``, every problem reported as ``file:line: message``.

```yaml
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
```

Three passes, each reporting everything it finds: (1) the YAML is read with PyYAML's composer, keeping
the line of every key and value and refusing duplicate keys; (2) the data is checked against the JSON
Schema (ivr/schema.py, where every key is documented); (3) the dataclasses are built and checked for
meaning (ivr/validate.py: targets, reachability, loops, variables, audio files, schedules).

The YAML is read with YAML 1.2 rules, as editors read it: only true/false are booleans (so a phrase
``yes:`` or ``no:`` stays text), ``2026-12-25`` stays text, ``010`` is ten. An unquoted key ``1:`` is
the key "1"; ``"*"`` and ``"#"`` must be quoted (YAML reads ``*`` as an alias and ``#`` as a comment).
Anchors, aliases and ``<<`` merge keys work (e.g. to share retry settings between menus).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import yaml

from .exceptions import FlowError, HoursError
from .hours import parse_holiday, parse_weekly
from .nodes import (
    BranchNode,
    BranchRule,
    CollectNode,
    Flow,
    GotoNode,
    HangupNode,
    HttpNode,
    InputRetry,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    QueueNode,
    ReturnNode,
    Schedule,
    SetNode,
    SpeechNode,
    SubflowNode,
    TransferNode,
    Variable,
    VoicemailNode,
)
from .schema import Path as DataPath
from .schema import structure_problems
from .validate import validate_flow

__all__ = ["Flow", "Node", "PlayNode", "HangupNode", "check_flow", "load_flow", "parse_flow", "phrase_words"]

_MAX_NODES = 100_000          # YAML nodes after alias expansion (a "billion laughs" file stops here)
_STR, _INT, _FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_BOOL, _NULL, _MERGE = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's implicit types (what VS Code's YAML extension uses)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
_Loader.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader.add_implicit_resolver(_MERGE, re.compile(r"^(?:<<)$"), ["<"])


class _Doc:
    """The plain data of a YAML file plus the line of every key and value, by path."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.data: Any = None
        self.keys: dict[DataPath, int] = {(): 1}
        self.values: dict[DataPath, int] = {(): 1}
        self.problems: list[FlowError] = []
        self._count = 0

    def line(self, path: DataPath, at: str = "value") -> int:
        """The line of ``path``'s key (``at="key"``) or value; the nearest enclosing one if it is absent."""
        table = self.keys if at == "key" else self.values
        while path not in table:
            path = path[:-1]
        return table[path]

    def error(self, line: int, message: str) -> None:
        self.problems.append(FlowError(self.file, line, message))

    def convert(self, node: yaml.Node, path: DataPath, active: frozenset[int] = frozenset()) -> Any:
        self._count += 1
        if self._count > _MAX_NODES:
            raise FlowError(self.file, node.start_mark.line + 1, "the file is too large (or its aliases expand "
                            f"to more than {_MAX_NODES} values)")
        if id(node) in active:
            raise FlowError(self.file, node.start_mark.line + 1, "a recursive alias (an anchor used inside itself)")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        inner = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            out = []
            for i, item in enumerate(node.value):
                self.keys[path + (i,)] = self.values[path + (i,)] = item.start_mark.line + 1
                out.append(self.convert(item, path + (i,), inner))
            return out
        assert isinstance(node, yaml.MappingNode)
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self.error(line, "`<<` merges a mapping (an alias like *defaults) or a list of them")
                        continue
                    value = self.convert(source, path, inner)
                    merged.update({k: v for k, v in value.items() if k not in merged})
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(line, "a key must be plain text, not a list or mapping")
                continue
            key = str(key_node.value)
            if key in first_line:
                self.error(line, f"duplicate key {key!r} (first given on line {first_line[key]})")
            first_line[key] = line
            self.keys[path + (key,)] = line
            self.values[path + (key,)] = value_node.start_mark.line + 1
            result[key] = self.convert(value_node, path + (key,), inner)
        if merged:      # a `<<` after explicit keys must not take their lines
            for key_node, value_node in node.value:
                if key_node.tag != _MERGE and isinstance(key_node, yaml.ScalarNode):
                    self.keys[path + (str(key_node.value),)] = key_node.start_mark.line + 1
                    self.values[path + (str(key_node.value),)] = value_node.start_mark.line + 1
        return {**{k: v for k, v in merged.items() if k not in result}, **result}

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return text
        if tag == _INT:
            return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)
        if tag == _FLOAT:
            low = text.lower()
            if low == ".nan":
                self.error(node.start_mark.line + 1, "`.nan` (not a number) is not allowed in a flow")
                return text
            if low.lstrip("+-") == ".inf":
                return -math.inf if low.startswith("-") else math.inf
            return float(text)
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _NULL:
            return None
        self.error(node.start_mark.line + 1, f"YAML tag {tag!r} is not supported here")
        return text


def _read(text: str, file: str) -> _Doc:
    doc = _Doc(file, text)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        hint = " (quote keys and values that start with * or #)" if "alias" in detail or "anchor" in detail else ""
        raise FlowError(file, line, f"not valid YAML: {detail}{hint}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise FlowError(file, line, f"not valid YAML: {exc.reason} (character {exc.character!r})") from None
    except yaml.YAMLError as exc:
        raise FlowError(file, 1, f"not valid YAML: {exc}") from None
    except RecursionError:
        raise FlowError(file, 1, "the YAML is nested too deeply") from None
    if root is None:
        raise FlowError(file, 1, "the file is empty: a flow needs `name`, `start` and `nodes`")
    try:
        doc.data = doc.convert(root, ())
    except RecursionError:
        raise FlowError(file, 1, "the YAML is nested too deeply") from None
    if not isinstance(doc.data, dict):
        what = "a list" if isinstance(doc.data, list) else f"the value {doc.data!r}"
        raise FlowError(file, root.start_mark.line + 1,
                        f"the top level must be a mapping with `name`, `start` and `nodes`, not {what}")
    return doc


# -- building the dataclasses (from data the schema has accepted) ------------------------------------------

def phrase_words(phrase: str) -> str:
    """A speech phrase as the recognizer reports it: lower-case words separated by single spaces."""
    return " ".join(re.findall(r"[\w']+", phrase.lower()))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _prompt(value: Any) -> Prompt:
    if isinstance(value, str):
        return Prompt(say=value.strip())
    say, audio = value.get("say"), value.get("audio")
    return Prompt(say=say.strip() if isinstance(say, str) else None, audio=audio, voice=value.get("voice"),
                  language=value.get("language"), rate=value.get("rate"))


def _opt_prompt(value: Any) -> Prompt | None:
    return None if value is None else _prompt(value)


def _retry(raw: dict[str, Any]) -> InputRetry:
    return InputRetry(timeout=float(raw.get("timeout", 5.0)), retries=int(raw.get("retries", 2)),
                      invalid_prompt=_opt_prompt(raw.get("invalid_prompt")),
                      timeout_prompt=_opt_prompt(raw.get("timeout_prompt")),
                      no_match=raw.get("no_match"), no_input=raw.get("no_input"), fallback=raw.get("fallback"))


class _Builder:
    def __init__(self, doc: _Doc) -> None:
        self.doc = doc
        self.problems: list[FlowError] = []

    def error(self, path: DataPath, message: str, at: str = "value") -> None:
        self.problems.append(FlowError(self.doc.file, self.doc.line(path, at), message))

    def node(self, nid: str, raw: dict[str, Any]) -> Node:
        path: DataPath = ("nodes", nid)
        line = self.doc.line(path, "key")
        kind = raw["type"]
        get = raw.get
        if kind == "play":
            say = get("say")
            prompt = Prompt(say=say.strip() if isinstance(say, str) else None, audio=get("audio"),
                            voice=get("voice"), language=get("language"), rate=get("rate"))
            return PlayNode(nid, prompt, next=get("next"), barge_in=bool(get("barge_in", False)), line=line)
        if kind == "menu":
            return MenuNode(nid, _prompt(raw["prompt"]), dict(raw["options"]), retry=_retry(raw),
                            barge_in=bool(get("barge_in", True)), line=line)
        if kind == "collect":
            lo, hi = int(get("min_length", 1)), int(get("max_length", 16))
            if lo > hi:
                self.error(path + ("min_length",), f"`min_length` ({lo}) is more than `max_length` ({hi})")
            if "terminator" in raw and raw["terminator"] is None and self._comment_after(path + ("terminator",)):
                self.error(path + ("terminator",), "`terminator: #` reads as a comment in YAML: write "
                           "terminator: \"#\" (or null for no terminator)")
            return CollectNode(nid, _prompt(raw["prompt"]), raw["variable"], raw["next"], min_length=lo,
                               max_length=hi, terminator=get("terminator", "#"),
                               inter_digit_timeout=float(get("inter_digit_timeout", 3.0)), pattern=get("pattern"),
                               sensitive=bool(get("sensitive", False)), retry=_retry(raw),
                               barge_in=bool(get("barge_in", True)), line=line)
        if kind == "speech":
            return SpeechNode(nid, _prompt(raw["prompt"]), self.phrases(path, raw["phrases"]),
                              options=dict(get("options", {})), variable=get("variable"),
                              confidence=float(get("confidence", 0.5)), language=get("language"),
                              retry=_retry(raw), barge_in=bool(get("barge_in", True)), line=line)
        if kind == "branch":
            rules = tuple(BranchRule(r["if"], r["next"], line=self.doc.line(path + ("rules", i)))
                          for i, r in enumerate(raw["rules"]))
            return BranchNode(nid, rules, raw["else"], line=line)
        if kind == "http":
            return HttpNode(nid, raw["url"], raw["next"], raw["error"], method=get("method", "GET"),
                            headers=dict(get("headers", {})),
                            body={k: _text(v) for k, v in get("body", {}).items()},
                            timeout=float(get("timeout", 3.0)), results=dict(get("results", {})), line=line)
        if kind == "set":
            return SetNode(nid, {k: _text(v) for k, v in raw["values"].items()}, raw["next"], line=line)
        if kind == "goto":
            return GotoNode(nid, raw["target"], max_visits=get("max_visits"), otherwise=get("otherwise"), line=line)
        if kind == "subflow":
            return SubflowNode(nid, raw["flow"], next=get("next"), line=line)
        if kind == "return":
            return ReturnNode(nid, line=line)
        if kind == "queue":
            skills = get("skills", {})
            skill_map = {s: 1 for s in skills} if isinstance(skills, list) else {k: int(v) for k, v in skills.items()}
            return QueueNode(nid, raw["queue"], skills=skill_map, priority=int(get("priority", 0)),
                             no_agents=get("no_agents"), next=get("next"), line=line)
        if kind == "voicemail":
            return VoicemailNode(nid, raw["mailbox"], prompt=_opt_prompt(get("prompt")), beep=bool(get("beep", True)),
                                 max_length=float(get("max_length", 120.0)), next=get("next"), line=line)
        if kind == "transfer":
            return TransferNode(nid, raw["target"], prompt=_opt_prompt(get("prompt")), error=get("error"), line=line)
        assert kind == "hangup", kind
        return HangupNode(nid, prompt=_opt_prompt(get("prompt")), line=line)

    def _comment_after(self, path: DataPath) -> bool:
        """Whether the line of ``path``'s key goes on with a comment right after the colon."""
        line = self.doc.lines[self.doc.line(path, "key") - 1] if self.doc.lines else ""
        return re.search(rf"{re.escape(str(path[-1]))}\s*:\s+#", line) is not None

    def phrases(self, path: DataPath, raw: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        given: dict[str, str] = {}
        for phrase, target in raw.items():
            words = phrase_words(phrase)
            where = path + ("phrases", phrase)
            if not words:
                self.error(where, f"phrase {phrase!r} has no words", "key")
            elif words in out:
                self.error(where, f"phrase {phrase!r} is the same words as {given[words]!r}", "key")
            else:
                out[words], given[words] = target, phrase
        return out

    def variable(self, name: str, raw: Any) -> Variable:
        if isinstance(raw, str):
            return Variable(name, raw)  # type: ignore[arg-type]
        vtype = raw.get("type", "string")
        default = raw.get("default")
        ok = {"string": lambda v: isinstance(v, str),
              "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              "boolean": lambda v: isinstance(v, bool)}[vtype]
        if default is not None and not ok(default):
            hint = " (quote it)" if vtype == "string" else ""
            self.error(("variables", name, "default"), f"variable {name!r} is a {vtype}, but its default is "
                       f"{default!r}{hint}")
        return Variable(name, vtype, default, bool(raw.get("sensitive", False)))

    def schedule(self, name: str, raw: dict[str, Any]) -> Schedule:
        path: DataPath = ("hours", name)
        weekly: dict[int, tuple[tuple[str, str], ...]] = {}
        try:
            weekly = parse_weekly(raw["weekly"])
        except HoursError as exc:
            where = path + ("weekly", exc.key) if exc.key is not None else path + ("weekly",)
            self.error(where, f"hours {name!r}: {exc.message}")
        holidays: list[str] = []
        for i, day in enumerate(raw.get("holidays", [])):
            try:
                holidays.append(parse_holiday(day).isoformat())
            except HoursError as exc:
                self.error(path + ("holidays", i), f"hours {name!r}: {exc.message}")
        return Schedule(name, raw["timezone"], weekly, tuple(holidays), line=self.doc.line(path, "key"))

    def flow(self, broken: set[DataPath]) -> Flow:
        data = self.doc.data
        nodes = {nid: self.node(nid, raw) for nid, raw in _entries(data, "nodes") if ("nodes", nid) not in broken}
        variables = {n: self.variable(n, raw) for n, raw in _entries(data, "variables")
                     if ("variables", n) not in broken}
        hours = {n: self.schedule(n, raw) for n, raw in _entries(data, "hours") if ("hours", n) not in broken}

        def text(key: str, default: Any = "") -> Any:
            value = data.get(key, default)
            return value if isinstance(value, str) or value is None else default

        return Flow(name=text("name"), start=text("start"), nodes=nodes, language=text("language", "en"),
                    voice=text("voice", None), variables=variables, hours=hours, on_error=text("on_error", None),
                    description=text("description"), source=self.doc.file)


def _entries(data: dict[str, Any], key: str) -> list[tuple[str, Any]]:
    value = data.get(key)
    return list(value.items()) if isinstance(value, dict) else []


# -- the public API -----------------------------------------------------------------------------------

PhraseCheck = Callable[[Sequence[str], str], list[str]]  # (phrases, language) -> words the recognizer lacks


def check_flow(text: str, file: str = "<flow>", base_dir: Path | None = None,
               known_flows: Collection[str] | None = None, *,
               check_audio: bool = True,
               phrase_check: PhraseCheck | None = None) -> tuple[Flow | None, list[FlowError]]:
    """Every problem of a flow text, errors and warnings (``severity``) sorted by line.

    Returns the Flow only when there is no error (warnings allowed), else None. ``base_dir`` is where
    audio files are looked for (None, or ``check_audio`` False: not checked) and where the flow's
    relative audio paths resolve at run time; with ``known_flows``, subflow targets must be in it.
    ``phrase_check`` (the composition root's speech recognizer) names the words of each speech node's
    phrases it cannot recognize: each is an error, as is a language it raises for.
    """
    try:
        doc = _read(text, file)
    except FlowError as exc:
        return None, [exc]
    problems = list(doc.problems)
    structural = structure_problems(doc.data)
    broken: set[DataPath] = set()
    for p in structural:
        problems.append(FlowError(file, doc.line(p.path, p.at), p.message))
        broken.add(p.path[:2])
    builder = _Builder(doc)
    flow = builder.flow(broken)
    problems += builder.problems
    if not structural:
        problems += validate_flow(flow, base_dir=base_dir if check_audio else None, known_flows=known_flows,
                                  locate=doc.line)
        if phrase_check is not None:
            problems += _speech_problems(flow, file, phrase_check)
    if base_dir is not None:
        flow = dataclasses.replace(flow, base_dir=str(base_dir))
    unique = list({(e.line, e.severity, e.message): e for e in problems}.values())
    unique.sort(key=lambda e: e.line)
    return (None if any(e.severity == "error" for e in unique) else flow), unique


def _speech_problems(flow: Flow, file: str, check: PhraseCheck) -> list[FlowError]:
    out = []
    for node in flow.nodes.values():
        if not isinstance(node, SpeechNode) or not node.phrases:
            continue
        language = node.language or flow.language
        try:
            unknown = check(list(node.phrases), language)
        except Exception as exc:  # (an engine without that language, a phrase it refuses)
            out.append(FlowError(file, node.line, f"node {node.id!r}: the speech recognizer cannot listen: {exc}"))
            continue
        if unknown:
            out.append(FlowError(file, node.line, f"node {node.id!r}: the speech recognizer does not know "
                                 f"{', '.join(map(repr, unknown))} (use words of its dictionary)"))
    return out


def parse_flow(text: str, file: str = "<flow>", base_dir: Path | None = None, *, check_audio: bool = True) -> Flow:
    """The Flow of a YAML text; raises FlowError (its first error) if it is invalid. Warnings are dropped."""
    flow, problems = check_flow(text, file, base_dir, check_audio=check_audio)
    if flow is None:
        raise next(e for e in problems if e.severity == "error")
    return flow


def load_flow(path: str | Path) -> Flow:
    """Read and check a flow file (audio files relative to its folder); raises FlowError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(str(path), 1, f"cannot read flow file: {exc}") from None
    return parse_flow(text, str(path), base_dir=path.parent)

"""Keyword rules: categories of phrases found in a call's transcript (and by keyword spotting in its audio).

A rules file (YAML, see docs/analytics.md and config/keywords.yaml) lists named rules, each with a category
and an expression over phrases:

* a phrase is words in a row, matched case-insensitively on whole words; ``*`` inside a word matches any
  letters (``refund*``, ``can* cancel``), a lone ``*`` any one word; a phrase matches within one utterance;
* ``any: [...]`` (OR, also a plain list), ``all: [...]`` (AND), ``not: ...`` (NOT),
  ``near: [A, B]`` with ``within: N`` ("A within N words of B": at most N words between the end of one and
  the start of the other, counted in the speaker-filtered word stream, so across utterances; ``ordered: true``
  wants A first);
* ``speaker: customer|agent|any``, ``first_s: N`` (starts before N s into the call), ``last_s: N`` (ends in the
  call's last N s) on a rule or any expression; an inner ``speaker`` overrides an outer one, time windows add up.

``RuleSet.evaluate(transcript, spotted)`` returns one :class:`Hit` per occurrence of a true rule. Keyword-spotting
results (``asr.spotting.Spotted``) count as phrase occurrences too (``Hit.source == "spotting"``), except where the
transcript already has the same phrase from the same speaker at the same time. A rule that is true with no
occurrence (``not: ...`` alone) has one hit spanning its time window with an empty phrase.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import yaml

from asr.exceptions import AsrError
from asr.transcript import SPEAKERS, Transcript

Source = Literal["transcript", "spotting"]
SPEAKER_CHOICES = ("customer", "agent", "any")
_OVERLAP_TOL_S = 0.3        # a spotted phrase this close to the same transcript phrase is the same occurrence
_WORD_RE = re.compile(r"^[^\w']+|[^\w']+$")
_PATTERN_RE = re.compile(r"^[^\w'*?]+|[^\w'*?]+$")


class RulesError(AsrError):
    """A rules (or scorecards) file has problems; ``problems`` lists them as ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class SpottedLike(Protocol):
    """What keyword spotting reports (asr.spotting.Spotted has these fields)."""

    @property
    def phrase(self) -> str: ...
    @property
    def speaker(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    category: str
    speaker: str                # customer | agent | "" (a NOT rule over both, or a `near` across speakers)
    start: float
    end: float
    phrase: str                 # the words as found ("" for a NOT rule's hit)
    source: Source = "transcript"


# -- expressions ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Scope:
    speakers: frozenset[str] = frozenset(SPEAKERS)
    first_s: float | None = None
    last_s: float | None = None


@dataclass(frozen=True, slots=True)
class Phrase:
    text: str
    tokens: tuple[str, ...]
    scope: Scope


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


@dataclass(frozen=True, slots=True)
class Near:
    a: Expr
    b: Expr
    within: int
    ordered: bool
    scope: Scope


Expr = Phrase | AnyOf | AllOf | Not | Near


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    category: str
    expr: Expr
    scope: Scope
    description: str = ""
    line: int = 0


# -- matching ---------------------------------------------------------------------------------------

def normalize(word: str) -> str:
    """A word as rules compare it: lower case, no surrounding punctuation (inner apostrophes kept)."""
    return _WORD_RE.sub("", word.lower().replace("\u2019", "'"))


def _pattern_word(word: str) -> str:
    """A phrase's word as written in a rule: like normalize() but keeping the wildcards * and ?."""
    return _PATTERN_RE.sub("", word.lower().replace("\u2019", "'"))


@dataclass(frozen=True, slots=True)
class _Tok:
    word: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class _Occ:
    speaker: str
    start: float
    end: float
    phrase: str
    source: Source


def _spread(words: Sequence[str], start: float, end: float) -> list[_Tok]:
    """Words without times get equal shares of their span."""
    toks = [w for w in (normalize(x) for x in words) if w]
    step = (end - start) / len(toks) if toks else 0.0
    return [_Tok(w, start + i * step, start + (i + 1) * step) for i, w in enumerate(toks)]


class _Index:
    """A transcript (plus spotted phrases) cut into normalized tokens, per utterance and per speaker."""

    def __init__(self, transcript: Transcript, spotted: Iterable[SpottedLike]) -> None:
        self.duration = transcript.duration_s or max((u.end for u in transcript.utterances), default=0.0)
        self.utterances: list[tuple[str, list[_Tok]]] = []
        for u in transcript.utterances:
            if u.words:
                toks = [_Tok(normalize(w.word), w.start, w.end) for w in u.words]
                toks = [t for t in toks if t.word]
            else:
                toks = _spread(u.text.split(), u.start, u.end)
            self.utterances.append((u.speaker, toks))
        self.spotted = [(s.speaker, _spread(s.phrase.split(), s.start, s.end)) for s in spotted]
        self._mids: dict[frozenset[str], list[float]] = {}

    def mids(self, speakers: frozenset[str]) -> list[float]:
        """Sorted word midpoints of these speakers (for counting words between two occurrences)."""
        if speakers not in self._mids:
            self._mids[speakers] = sorted((t.start + t.end) / 2 for sp, toks in self.utterances
                                          if sp in speakers for t in toks)
        return self._mids[speakers]

    def in_window(self, o: _Occ, scope: Scope) -> bool:
        if scope.first_s is not None and not o.start < scope.first_s:
            return False
        return scope.last_s is None or o.end > self.duration - scope.last_s


def _compile(token: str) -> re.Pattern[str]:
    return re.compile("".join(r"[\w']*" if c == "*" else r"[\w']" if c == "?" else re.escape(c) for c in token))


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _tok_match(pattern: str, word: str) -> bool:
    if "*" not in pattern and "?" not in pattern:
        return pattern == word
    rx = _PATTERNS.get(pattern)
    if rx is None:
        rx = _PATTERNS[pattern] = _compile(pattern)
    return rx.fullmatch(word) is not None


def _find(tokens: tuple[str, ...], toks: list[_Tok]) -> Iterable[tuple[int, int]]:
    n = len(tokens)
    for i in range(len(toks) - n + 1):
        if all(_tok_match(p, toks[i + k].word) for k, p in enumerate(tokens)):
            yield i, i + n


def _phrase_occs(p: Phrase, idx: _Index) -> list[_Occ]:
    found: list[_Occ] = []
    for speaker, toks in idx.utterances:
        if speaker in p.scope.speakers:
            for i, j in _find(p.tokens, toks):
                found.append(_Occ(speaker, toks[i].start, toks[j - 1].end,
                                  " ".join(t.word for t in toks[i:j]), "transcript"))
    for speaker, toks in idx.spotted:
        if speaker in p.scope.speakers:
            for i, j in _find(p.tokens, toks):
                o = _Occ(speaker, toks[i].start, toks[j - 1].end, " ".join(t.word for t in toks[i:j]), "spotting")
                if not any(t.speaker == o.speaker and t.source == "transcript" and t.start < o.end + _OVERLAP_TOL_S
                           and o.start < t.end + _OVERLAP_TOL_S for t in found):
                    found.append(o)
    return [o for o in found if idx.in_window(o, p.scope)]


def _between(idx: _Index, speakers: frozenset[str], a: _Occ, b: _Occ) -> int:
    """Words (of ``speakers``) strictly between two occurrences; 0 when they touch or overlap."""
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.start <= first.end:
        return 0
    mids = idx.mids(speakers)
    return max(0, bisect.bisect_left(mids, second.start) - bisect.bisect_right(mids, first.end))


def _eval(e: Expr, idx: _Index) -> tuple[bool, list[_Occ]]:
    if isinstance(e, Phrase):
        occs = _phrase_occs(e, idx)
        return bool(occs), occs
    if isinstance(e, Not):
        ok, _ = _eval(e.item, idx)
        return not ok, []
    if isinstance(e, AnyOf):
        results = [_eval(x, idx) for x in e.items]
        return any(ok for ok, _ in results), [o for ok, occs in results if ok for o in occs]
    if isinstance(e, AllOf):
        results = [_eval(x, idx) for x in e.items]
        if not all(ok for ok, _ in results):
            return False, []
        return True, [o for _, occs in results for o in occs]
    _, left = _eval(e.a, idx)
    _, right = _eval(e.b, idx)
    out: list[_Occ] = []
    for a in left:
        for b in right:
            if e.ordered and not a.start < b.start:
                continue
            if a == b or _between(idx, e.scope.speakers, a, b) > e.within:
                continue
            first, second = (a, b) if a.start <= b.start else (b, a)
            o = _Occ(a.speaker if a.speaker == b.speaker else "", first.start, max(a.end, b.end),
                     f"{first.phrase} ~ {second.phrase}",
                     "transcript" if a.source == b.source == "transcript" else "spotting")
            if idx.in_window(o, e.scope):
                out.append(o)
    return bool(out), out


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    categories: dict[str, str] = field(default_factory=dict)   # name -> description (may be empty)
    source: str = ""

    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def __contains__(self, name: object) -> bool:
        return any(r.name == name for r in self.rules)

    def evaluate(self, transcript: Transcript, spotted: Iterable[SpottedLike] = ()) -> list[Hit]:
        """Every occurrence of every true rule, in time order."""
        idx = _Index(transcript, spotted)
        hits: list[Hit] = []
        for rule in self.rules:
            ok, occs = _eval(rule.expr, idx)
            if not ok:
                continue
            if not occs:        # true by absence: a hit over the rule's window
                lo = 0.0 if rule.scope.last_s is None else max(0.0, idx.duration - rule.scope.last_s)
                hi = idx.duration if rule.scope.first_s is None else min(idx.duration, rule.scope.first_s)
                speaker = next(iter(rule.scope.speakers)) if len(rule.scope.speakers) == 1 else ""
                hits.append(Hit(rule.name, rule.category, speaker, lo, max(lo, hi), "", "transcript"))
                continue
            seen: set[_Occ] = set()
            for o in occs:
                if o not in seen:
                    seen.add(o)
                    hits.append(Hit(rule.name, rule.category, o.speaker, o.start, o.end, o.phrase, o.source))
        hits.sort(key=lambda h: (h.start, h.rule))
        return hits

    def phrases(self) -> list[str]:
        """Plain phrases worth keyword-spotting in the audio: every phrase without wildcards, and the stem of a
        trailing-``*`` word of 3+ letters (``refund*`` -> ``refund``); lower case, each once."""
        out: dict[str, None] = {}

        def walk(e: Expr) -> None:
            if isinstance(e, Phrase):
                toks = [t[:-1] if t.endswith("*") and len(t) > 3 and "*" not in t[:-1] and "?" not in t else t
                        for t in e.tokens]
                if all(re.fullmatch(r"[a-z']+", t) for t in toks):
                    out[" ".join(toks)] = None
            elif isinstance(e, Not):
                walk(e.item)
            elif isinstance(e, AnyOf | AllOf):
                for x in e.items:
                    walk(x)
            else:
                walk(e.a)
                walk(e.b)

        for r in self.rules:
            walk(r.expr)
        return list(out)


# -- loading ----------------------------------------------------------------------------------------

class YamlFile:
    """Reads a YAML file as nodes (for their lines) and collects ``file:line: message`` problems."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.problems: list[str] = []
        try:
            self.root: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            detail = " ".join(str(x) for x in (exc.context, exc.problem) if x)
            raise RulesError([f"{file}:{mark.line + 1 if mark else 1}: not valid YAML: {detail}"]) from None
        except yaml.YAMLError as exc:
            raise RulesError([f"{file}:1: not valid YAML: {exc}"]) from None

    @staticmethod
    def read_text(path: Path) -> str:
        try:
            return Path(path).read_bytes().decode("utf-8")
        except OSError as exc:
            raise RulesError([f"{path}:0: cannot read: {exc.strerror or exc}"]) from None
        except UnicodeDecodeError:
            raise RulesError([f"{path}:0: not UTF-8 text"]) from None

    def error(self, node: yaml.Node | None, message: str) -> None:
        self.problems.append(f"{self.file}:{node.start_mark.line + 1 if node is not None else 1}: {message}")

    def check(self) -> None:
        if self.problems:
            raise RulesError(self.problems)

    def mapping(self, node: yaml.Node, what: str, allowed: Sequence[str],
                required: Sequence[str] = ()) -> dict[str, yaml.Node] | None:
        """A mapping's keys -> value nodes; unknown, duplicate and missing keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping (key: value)")
            return None
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            key = str(k.value) if isinstance(k, yaml.ScalarNode) else ""
            if key not in allowed:
                self.error(k, f"unknown key {key!r} in {what} (expected one of: {', '.join(allowed)})")
            elif key in out:
                self.error(k, f"duplicate key {key!r} in {what}")
            else:
                out[key] = v
        for key in required:
            if key not in out:
                self.error(node, f"{what} needs `{key}`")
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{what} must be a list")
            return []
        return list(node.value)

    def text(self, node: yaml.Node, what: str) -> str:
        """A scalar's text as written (so `no` and `on` stay words, not booleans)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.error(node, f"{what} must be text")
            return ""
        return str(node.value)

    def number(self, node: yaml.Node, what: str, low: float = 0.0, high: float = float("inf")) -> float:
        try:
            value = float(self.text(node, what))
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            self.error(node, f"{what} must be a number from {low:g} to {high:g}")
            return low
        return value

    def flag(self, node: yaml.Node, what: str) -> bool:
        text = self.text(node, what).lower()
        if text not in ("true", "false"):
            self.error(node, f"{what} must be true or false")
        return text == "true"


_EXPR_KEYS = ("phrase", "any", "all", "not", "near", "within", "ordered", "speaker", "first_s", "last_s")
_OPERATORS = ("phrase", "any", "all", "not", "near")
_RULE_KEYS = ("name", "category", "description", "phrases", "match", "speaker", "first_s", "last_s")


class _Parser:
    def __init__(self, y: YamlFile) -> None:
        self.y = y

    def scope(self, keys: dict[str, yaml.Node], outer: Scope) -> Scope:
        speakers, first, last = outer.speakers, outer.first_s, outer.last_s
        if "speaker" in keys:
            sp = self.y.text(keys["speaker"], "speaker")
            if sp not in SPEAKER_CHOICES:
                self.y.error(keys["speaker"], f"speaker must be one of {', '.join(SPEAKER_CHOICES)}, not {sp!r}")
            else:
                speakers = frozenset(SPEAKERS) if sp == "any" else frozenset((sp,))
        if "first_s" in keys:
            v = self.y.number(keys["first_s"], "first_s")
            first = v if first is None else min(first, v)
        if "last_s" in keys:
            v = self.y.number(keys["last_s"], "last_s")
            last = v if last is None else min(last, v)
        return Scope(speakers, first, last)

    def phrase(self, node: yaml.Node, scope: Scope) -> Phrase:
        text = self.y.text(node, "a phrase")
        tokens = tuple(t for t in (_pattern_word(w) for w in text.split()) if t)
        if text and not tokens:
            self.y.error(node, f"phrase {text!r} has no words")
        elif tokens and all(set(t) <= {"*", "?"} for t in tokens):
            self.y.error(node, f"phrase {text!r} is only wildcards (it would match anything)")
        return Phrase(text, tokens, scope)

    def expr(self, node: yaml.Node, scope: Scope) -> Expr:
        if isinstance(node, yaml.ScalarNode):
            return self.phrase(node, scope)
        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                self.y.error(node, "an empty list matches nothing")
            return AnyOf(tuple(self.expr(x, scope) for x in node.value))
        keys = self.y.mapping(node, "an expression", _EXPR_KEYS)
        if keys is None:
            return AnyOf(())
        ops = [k for k in _OPERATORS if k in keys]
        if len(ops) != 1:
            self.y.error(node, "an expression needs exactly one of " + ", ".join(_OPERATORS)
                         + (f" (it has {', '.join(ops)})" if ops else ""))
            return AnyOf(())
        op, inner = ops[0], self.scope(keys, scope)
        for k in ("within", "ordered"):
            if k in keys and op != "near":
                self.y.error(keys[k], f"`{k}` belongs to a `near` expression")
        value = keys[op]
        if op == "phrase":
            return self.phrase(value, inner)
        if op == "not":
            return Not(self.expr(value, inner))
        if op in ("any", "all"):
            items = self.y.sequence(value, f"`{op}`")
            if not items:
                self.y.error(value, f"`{op}` needs at least one item")
            parts = tuple(self.expr(x, inner) for x in items)
            return AnyOf(parts) if op == "any" else AllOf(parts)
        pair = self.y.sequence(value, "`near`")
        if len(pair) != 2:
            self.y.error(value, "`near` takes two expressions: near: [A, B]")
            return AnyOf(())
        if "within" not in keys:
            self.y.error(node, "`near` needs `within: N` (words between A and B)")
        within = int(self.y.number(keys["within"], "within", 0, 1000)) if "within" in keys else 0
        ordered = self.y.flag(keys["ordered"], "ordered") if "ordered" in keys else False
        return Near(self.expr(pair[0], inner), self.expr(pair[1], inner), within, ordered, inner)

    def rule(self, node: yaml.Node, categories: dict[str, str] | None) -> Rule | None:
        keys = self.y.mapping(node, "a rule", _RULE_KEYS, ("name",))
        if keys is None or "name" not in keys:
            return None
        name = self.y.text(keys["name"], "name")
        category = self.y.text(keys["category"], "category") if "category" in keys else ""
        if categories is not None and category and category not in categories:
            self.y.error(keys["category"], f"category {category!r} is not among the file's categories "
                         f"({', '.join(categories) or 'none'})")
        scope = self.scope(keys, Scope())
        if ("phrases" in keys) == ("match" in keys):
            self.y.error(node, f"rule {name!r} needs exactly one of `phrases` (a list) or `match` (an expression)")
            return None
        if "phrases" in keys:
            items = self.y.sequence(keys["phrases"], "`phrases`")
            if not items:
                self.y.error(keys["phrases"], "`phrases` needs at least one phrase")
            expr: Expr = AnyOf(tuple(self.phrase(x, scope) for x in items))
        else:
            expr = self.expr(keys["match"], scope)
        desc = self.y.text(keys["description"], "description") if "description" in keys else ""
        return Rule(name, category, expr, scope, desc, node.start_mark.line + 1)


def parse_rules(text: str, file: str = "<rules>") -> RuleSet:
    """A RuleSet from YAML text; every problem at once in one RulesError (``file:line: message`` each)."""
    y = YamlFile(text, file)
    if y.root is None:
        raise RulesError([f"{file}:1: the file is empty (expected `rules:`)"])
    top = y.mapping(y.root, "the file", ("version", "categories", "rules"), ("rules",))
    y.check()
    assert top is not None
    categories: dict[str, str] | None = None
    if "categories" in top:
        node = top["categories"]
        if isinstance(node, yaml.SequenceNode):
            categories = {y.text(x, "a category"): "" for x in node.value}
        elif isinstance(node, yaml.MappingNode):
            categories = {y.text(k, "a category"): y.text(v, "a category's description") for k, v in node.value}
        else:
            y.error(node, "`categories` must be a list of names or a mapping name: description")
    p = _Parser(y)
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for item in y.sequence(top["rules"], "`rules`"):
        rule = p.rule(item, categories)
        if rule is None:
            continue
        if not rule.name:
            continue
        if rule.name in seen:
            y.error(item, f"duplicate rule name {rule.name!r} (first on line {seen[rule.name]})")
        seen[rule.name] = rule.line
        rules.append(rule)
    y.check()
    cats = categories if categories is not None else {r.category: "" for r in rules if r.category}
    return RuleSet(tuple(rules), cats, file)


def load_rules(path: Path | str) -> RuleSet:
    """Read a rules file (see the module docstring); raises RulesError with ``file:line: message`` lines."""
    return parse_rules(YamlFile.read_text(Path(path)), str(path))

"""QA scorecards: weighted items scored automatically from keyword-rule hits and call measures.

A scorecards file (YAML, see docs/analytics.md and config/scorecards.yaml) lists scorecards, each with items:

* ``rule: NAME`` scores 1 when the rule has a hit (optionally ``first_s`` / ``last_s``: a hit starting in the
  first N s / ending in the last N s of the call), else 0: "greeting in the first 15 s", "disclosure said";
* ``absent: NAME`` scores 1 when the rule has no hit (in the window), else 0: "forbidden words absent";
* ``measure: NAME`` with ``min`` and/or ``max`` scores 1 inside the bounds, else 0 (see :data:`MEASURES`);
* ``manual: true``: a reviewer fills it in (no automatic score).

Measures come from utterance times (each channel transcribed on its own, so both can speak at once):
talk time is the union of a speaker's utterances; silence is call time when nobody speaks; overtalk is call
time when both speak. Ratios are of the call's duration, except the talk ratios (of the two speakers' talk).

``total(items, overrides)`` is the weighted mean of the items' scores, a reviewer's override taking the place of
the automatic score; items with neither (a manual item not yet reviewed) do not count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import yaml

from asr.rules import Hit, RulesError, RuleSet, YamlFile
from asr.transcript import Transcript

Kind = Literal["rule", "absent", "measure", "manual"]
MEASURES: dict[str, str] = {
    "agent_talk_ratio": "agent talk / (agent + customer talk)",
    "customer_talk_ratio": "customer talk / (agent + customer talk)",
    "silence_ratio": "time nobody speaks / call duration",
    "overtalk_ratio": "time both speak / call duration",
    "silence_s": "seconds nobody speaks",
    "overtalk_s": "seconds both speak",
    "longest_silence_s": "the longest stretch nobody speaks, in seconds",
}
_RATIOS = {"agent_talk_ratio", "customer_talk_ratio", "silence_ratio", "overtalk_ratio"}


class ScorecardError(RulesError):
    """A scorecards file has problems (``problems``: ``file:line: message`` each)."""


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    kind: Kind
    weight: float = 1.0
    target: str = ""                    # the rule's or the measure's name
    low: float | None = None            # measure bounds (inclusive)
    high: float | None = None
    first_s: float | None = None        # rule/absent: only hits in this window count
    last_s: float | None = None
    description: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Scorecard:
    name: str
    items: tuple[Item, ...]
    description: str = ""
    pass_mark: float | None = None      # 0..1: a total below it fails (reports count those)


@dataclass(frozen=True, slots=True)
class ItemScore:
    scorecard: str
    item: str
    weight: float
    auto_score: float | None            # 0..1 from rules and measures; None for a manual item
    evidence: str                       # why it scored so
    score: float | None = None          # a reviewer's override 0..1
    reviewer: str = ""
    comment: str = ""

    @property
    def effective(self) -> float | None:
        return self.score if self.score is not None else self.auto_score


@dataclass(frozen=True, slots=True)
class Measures:
    duration_s: float
    agent_talk_s: float
    customer_talk_s: float
    silence_s: float
    overtalk_s: float
    longest_silence_s: float

    def value(self, name: str) -> float | None:
        d, talk = self.duration_s, self.agent_talk_s + self.customer_talk_s
        values = {
            "agent_talk_ratio": self.agent_talk_s / talk if talk else None,
            "customer_talk_ratio": self.customer_talk_s / talk if talk else None,
            "silence_ratio": self.silence_s / d if d else None,
            "overtalk_ratio": self.overtalk_s / d if d else None,
            "silence_s": self.silence_s if d else None,
            "overtalk_s": self.overtalk_s if d else None,
            "longest_silence_s": self.longest_silence_s if d else None,
        }
        return values[name]


Intervals = list[tuple[float, float]]


def _union(spans: Sequence[tuple[float, float]]) -> Intervals:
    out: Intervals = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    out: Intervals = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _length(spans: Intervals) -> float:
    return sum(e - s for s, e in spans)


def measure(transcript: Transcript) -> Measures:
    """Talk, silence and overtalk from the utterance times (clipped to the call's duration)."""
    d = transcript.duration_s or max((u.end for u in transcript.utterances), default=0.0)

    def spans(speaker: str) -> Intervals:
        return _union([(max(0.0, u.start), min(d, u.end)) for u in transcript.utterances if u.speaker == speaker])

    cust, agent = spans("customer"), spans("agent")
    talk = _union(cust + agent)
    gaps, t = [], 0.0
    for s, e in talk:
        gaps.append(s - t)
        t = e
    gaps.append(d - t)
    return Measures(d, _length(agent), _length(cust), max(0.0, d - _length(talk)), _length(_intersect(cust, agent)),
                    max(gaps) if d else 0.0)


def _clock(t: float) -> str:
    m, s = divmod(max(0.0, t), 60)
    return f"{int(m)}:{s:04.1f}"


def _window(item: Item, duration: float) -> str:
    parts = []
    if item.first_s is not None:
        parts.append(f"in the first {item.first_s:g} s")
    if item.last_s is not None:
        parts.append(f"in the last {item.last_s:g} s")
    return f" ({' and '.join(parts)})" if parts else ""


def _in_window(h: Hit, item: Item, duration: float) -> bool:
    if item.first_s is not None and not h.start < item.first_s:
        return False
    return item.last_s is None or h.end > duration - item.last_s


def _fmt(name: str, v: float) -> str:
    return f"{100 * v:.0f}%" if name in _RATIOS else f"{v:.1f} s"


def _score_item(card: Scorecard, item: Item, hits: Sequence[Hit], m: Measures) -> ItemScore:
    def out(auto: float | None, evidence: str) -> ItemScore:
        return ItemScore(card.name, item.name, item.weight, auto, evidence)

    if item.kind == "manual":
        return out(None, "scored by a reviewer")
    if item.kind == "measure":
        v = m.value(item.target)
        if v is None:
            return out(None, f"{item.target}: not measurable (no speech or no duration)")
        if item.low is not None and item.high is not None:
            bounds = f"{_fmt(item.target, item.low)} to {_fmt(item.target, item.high)}"
        elif item.low is not None:
            bounds = f"at least {_fmt(item.target, item.low)}"
        else:
            bounds = f"at most {_fmt(item.target, item.high or 0.0)}"
        ok = (item.low is None or v >= item.low) and (item.high is None or v <= item.high)
        return out(1.0 if ok else 0.0, f"{item.target} {_fmt(item.target, v)} "
                                       f"({'within' if ok else 'outside'} {bounds})")
    found = [h for h in hits if h.rule == item.target and _in_window(h, item, m.duration_s)]
    where = _window(item, m.duration_s)
    if found:
        h = found[0]
        said = f': "{h.phrase}"' if h.phrase else ""
        by = f" by the {h.speaker}" if h.speaker else ""
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        text = f"{item.target!r} at {_clock(h.start)}{by}{said}{more}{where}"
    else:
        text = f"no {item.target!r} hit{where}"
    if item.kind == "rule":
        return out(1.0 if found else 0.0, text)
    return out(0.0 if found else 1.0, text)


def score(transcript: Transcript, hits: Sequence[Hit], scorecards: Sequence[Scorecard]) -> list[ItemScore]:
    """Every item of every scorecard, scored from ``hits`` (RuleSet.evaluate) and the transcript's measures."""
    m = measure(transcript)
    return [_score_item(card, item, hits, m) for card in scorecards for item in card.items]


def _check(value: float | None, what: str) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be from 0 to 1, not {value}")


def total(items: Sequence[ItemScore], overrides: Mapping[str, float | None] | None = None) -> float | None:
    """The weighted mean 0..1 of one scorecard's items: ``overrides[item]`` (a reviewer's score) first, then the
    item's own ``score``, then its ``auto_score``; items with none do not count; None when nothing counts."""
    cards = {i.scorecard for i in items}
    if len(cards) > 1:
        raise ValueError(f"total() takes the items of one scorecard, not of {len(cards)} (use totals())")
    known = {i.item for i in items}
    for name, value in (overrides or {}).items():
        if name not in known:
            raise ValueError(f"override for {name!r}, which is not an item of the scorecard")
        _check(value, f"the override for {name!r}")
    num = den = 0.0
    for i in items:
        o = (overrides or {}).get(i.item)
        v = o if o is not None else i.effective
        if v is None:
            continue
        _check(v, f"the score of {i.item!r}")
        num += i.weight * v
        den += i.weight
    return num / den if den else None


def totals(items: Sequence[ItemScore]) -> dict[str, float | None]:
    """total() of each scorecard among ``items`` (with the items' own overrides)."""
    by: dict[str, list[ItemScore]] = {}
    for i in items:
        by.setdefault(i.scorecard, []).append(i)
    return {card: total(group) for card, group in by.items()}


def override(items: Sequence[ItemScore], item: str, value: float | None, *, reviewer: str = "",
             comment: str = "") -> list[ItemScore]:
    """The items with a reviewer's score (None clears it) and comment on ``item``."""
    _check(value, f"the override for {item!r}")
    if item not in {i.item for i in items}:
        raise ValueError(f"no item {item!r}")
    return [replace(i, score=value, reviewer=reviewer, comment=comment) if i.item == item else i for i in items]


# -- loading ----------------------------------------------------------------------------------------

_ITEM_KEYS = ("name", "description", "weight", "rule", "absent", "measure", "manual", "min", "max",
              "first_s", "last_s")
_KINDS: tuple[Kind, ...] = ("rule", "absent", "measure", "manual")


def _item(y: YamlFile, node: yaml.Node, rules: RuleSet | None) -> Item | None:
    keys = y.mapping(node, "a scorecard item", _ITEM_KEYS, ("name",))
    if keys is None or "name" not in keys:
        return None
    name = y.text(keys["name"], "name")
    kinds = [k for k in _KINDS if k in keys]
    if len(kinds) != 1:
        y.error(node, f"item {name!r} needs exactly one of rule, absent, measure, manual"
                + (f" (it has {', '.join(kinds)})" if kinds else ""))
        return None
    kind = kinds[0]
    weight = y.number(keys["weight"], "weight", 0.0, 1e6) if "weight" in keys else 1.0
    if "weight" in keys and weight <= 0:
        y.error(keys["weight"], "weight must be above 0")
    target = ""
    if kind == "manual":
        if not y.flag(keys["manual"], "manual"):
            y.error(keys["manual"], "write `manual: true` (or give the item a rule, absent or measure)")
    else:
        target = y.text(keys[kind], kind)
    if kind in ("rule", "absent") and rules is not None and target not in rules:
        y.error(keys[kind], f"no rule named {target!r} in {rules.source or 'the rules'}")
    if kind == "measure" and target not in MEASURES:
        y.error(keys[kind], f"unknown measure {target!r} (one of: {', '.join(MEASURES)})")
    bounds = {}
    for b in ("min", "max"):
        if b in keys:
            if kind != "measure":
                y.error(keys[b], f"`{b}` belongs to a measure item")
            bounds[b] = y.number(keys[b], b, 0.0, 1.0 if target in _RATIOS else 1e9)
    if kind == "measure" and not bounds:
        y.error(node, f"measure item {name!r} needs `min` and/or `max`")
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        y.error(keys["min"], "min is above max")
    window = {}
    for w in ("first_s", "last_s"):
        if w in keys:
            if kind not in ("rule", "absent"):
                y.error(keys[w], f"`{w}` belongs to a rule or absent item")
            window[w] = y.number(keys[w], w)
    desc = y.text(keys["description"], "description") if "description" in keys else ""
    return Item(name, kind, weight, target, bounds.get("min"), bounds.get("max"), window.get("first_s"),
                window.get("last_s"), desc, node.start_mark.line + 1)


def parse_scorecards(text: str, file: str = "<scorecards>", rules: RuleSet | None = None) -> list[Scorecard]:
    """Scorecards from YAML text; with ``rules``, item rule names are checked against them."""
    try:
        y = YamlFile(text, file)
    except RulesError as exc:
        raise ScorecardError(exc.problems) from None
    if y.root is None:
        raise ScorecardError([f"{file}:1: the file is empty (expected `scorecards:`)"])
    top = y.mapping(y.root, "the file", ("version", "scorecards"), ("scorecards",))
    if y.problems or top is None:
        raise ScorecardError(y.problems)
    cards: list[Scorecard] = []
    names: set[str] = set()
    for node in y.sequence(top["scorecards"], "`scorecards`"):
        keys = y.mapping(node, "a scorecard", ("name", "description", "pass_mark", "items"), ("name", "items"))
        if keys is None or "name" not in keys or "items" not in keys:
            continue
        name = y.text(keys["name"], "name")
        if name in names:
            y.error(keys["name"], f"duplicate scorecard name {name!r}")
        names.add(name)
        items: list[Item] = []
        for n in y.sequence(keys["items"], "`items`"):
            item = _item(y, n, rules)
            if item is None:
                continue
            if any(i.name == item.name for i in items):
                y.error(n, f"duplicate item name {item.name!r} in scorecard {name!r}")
            items.append(item)
        if not items and not y.problems:
            y.error(keys["items"], f"scorecard {name!r} has no items")
        pass_mark = y.number(keys["pass_mark"], "pass_mark", 0.0, 1.0) if "pass_mark" in keys else None
        desc = y.text(keys["description"], "description") if "description" in keys else ""
        cards.append(Scorecard(name, tuple(items), desc, pass_mark))
    if y.problems:
        raise ScorecardError(y.problems)
    return cards


def load_scorecards(path: Path | str, rules: RuleSet | None = None) -> list[Scorecard]:
    """Read a scorecards file; raises ScorecardError with ``file:line: message`` lines."""
    try:
        text = YamlFile.read_text(Path(path))
    except RulesError as exc:
        raise ScorecardError(exc.problems) from None
    return parse_scorecards(text, str(path), rules)

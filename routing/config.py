"""Agent and queue configurations as plain dicts (JSON, the API, the CLI) <-> routing.model specs.

``agent_from_dict`` and ``queue_from_dict`` check every field and raise
:class:`routing.exceptions.ConfigInvalid` listing *all* the problems, each naming its field
("strategy: unknown strategy 'longest_idle' (did you mean 'longest-idle'?)"); nothing is
half-applied. ``agent_to_dict`` / ``queue_to_dict`` give back JSON-ready dicts of every field, and
``X_from_dict(X_to_dict(spec)) == spec``.

Accepted shapes beyond the obvious:

* skills: a mapping ``{skill: proficiency 1..5}``, a list of skill names (proficiency 1), or the
  CLI's text ``"support:3,english"`` (see :func:`parse_skills`);
* ``overflow``: ``""`` (back to the flow), ``"queue:NAME"``, ``"voicemail:MAILBOX"``, ``"callback"``;
* ``escalation``: a list of ``{after_s, skills, add_queues}`` (``add_queues`` a list or "a,b"),
  sorted by ``after_s``.

Pure standard library, like the rest of routing/.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from .exceptions import ConfigInvalid
from .model import MAX_PROFICIENCY, MIN_PROFICIENCY, STRATEGIES, AgentSpec, EscalationStep, QueueSpec

AGENT_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")      # queue names, skills, mailboxes, reason codes
MAX_TIME_S = 7 * 24 * 3600.0                                        # no configured time is longer than a week
MAX_RING_TIMEOUT_S = 600.0
RESERVED_QUEUE_NAMES = frozenset({"stats"})                         # GET /api/queues/stats is the metrics route
AGENT_FIELDS = tuple(f.name for f in fields(AgentSpec))
QUEUE_FIELDS = tuple(f.name for f in fields(QueueSpec))
_MISSING = object()


def did_you_mean(word: str, options: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ""."""
    got = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not got:
        got = difflib.get_close_matches(word.replace("_", "-").lower(), options, n=1, cutoff=0.6)
    return f" (did you mean {got[0]!r}?)" if got else ""


class _Checker:
    """Reads fields of one dict, collecting "field: message" problems instead of stopping at the first."""

    def __init__(self, d: Mapping[str, Any], known: tuple[str, ...], prefix: str = "") -> None:
        self.d = d
        self.prefix = prefix
        self.problems: list[str] = []
        if not isinstance(d, Mapping):
            self.d = {}
            self.fail("", f"expected a mapping of fields, got {type(d).__name__}")
            return
        for key in d:
            if key not in known:
                self.fail(str(key), "unknown field" + did_you_mean(str(key), known))

    def fail(self, name: str, message: str) -> None:
        where = f"{self.prefix}{name}" if name else self.prefix.rstrip(".")
        self.problems.append(f"{where}: {message}" if where else message)

    def get(self, name: str, default: Any) -> Any:
        return self.d.get(name, default)

    def text(self, name: str, default: str = "", *, max_len: int = 200, pattern: re.Pattern[str] | None = None,
             required: bool = False, what: str = "", chars: str = "letters, digits, '_', '.', '-'") -> str:
        v = self.d.get(name, _MISSING)
        if v is _MISSING or (required and v == ""):
            if required:
                self.fail(name, "required")
            return default
        if not isinstance(v, str):
            self.fail(name, f"expected text, got {_kind(v)}")
            return default
        if len(v) > max_len:
            self.fail(name, f"longer than {max_len} characters")
            return default
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            self.fail(name, "contains control characters")
            return default
        if pattern is not None and v and not pattern.match(v):
            self.fail(name, f"{v!r} is not a valid {what or name} ({chars}; at most 64)")
            return default
        return v

    def number(self, name: str, default: float, *, positive: bool = False, maximum: float = MAX_TIME_S) -> float:
        v = self.d.get(name, _MISSING)
        if v is _MISSING:
            return default
        return _number(v, positive, maximum, lambda m: self.fail(name, m), default)

    def optional_number(self, name: str, default: float | None) -> float | None:
        v = self.d.get(name, _MISSING)
        if v is _MISSING or v is None:
            return None if v is None else default
        return _number(v, False, MAX_TIME_S, lambda m: self.fail(name, m), default)

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        v = self.d.get(name, _MISSING)
        if v is _MISSING:
            return default
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(name, f"expected a whole number, got {_kind(v)}")
            return default
        if minimum is not None and v < minimum:
            self.fail(name, f"{v} is below the minimum {minimum}")
            return default
        if maximum is not None and v > maximum:
            self.fail(name, f"{v} is above the maximum {maximum}")
            return default
        return v

    def boolean(self, name: str, default: bool) -> bool:
        v = self.d.get(name, _MISSING)
        if v is _MISSING:
            return default
        if not isinstance(v, bool):
            self.fail(name, f"expected true or false, got {_kind(v)}")
            return default
        return v

    def skills(self, name: str) -> dict[str, int]:
        v = self.d.get(name, _MISSING)
        if v is _MISSING:
            return {}
        got, problems = _skills(v)
        for p in problems:
            self.fail(name, p)
        return got


def _kind(v: Any) -> str:
    return "nothing (null)" if v is None else f"{type(v).__name__} {v!r}"[:80]


def _number(v: Any, positive: bool, maximum: float, fail: Callable[[str], None], default: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        fail(f"expected a number of seconds, got {_kind(v)}")
        return default
    if not math.isfinite(v):
        fail(f"{v} is not a finite number")
        return default
    if v < 0:
        fail(f"{v} is negative (times are seconds, 0 or more)")
        return default
    if positive and v == 0:
        fail("must be more than 0")
        return default
    if v > maximum:
        fail(f"{v} is more than {maximum:g} seconds")
        return default
    return float(v)


def _skills(v: Any) -> tuple[dict[str, int], list[str]]:
    """(skills, problems) of a mapping, a list of names or the text "a:3,b"."""
    if isinstance(v, str):
        try:
            return parse_skills(v), []
        except ConfigInvalid as exc:
            return {}, [p.partition(": ")[2] for p in exc.problems]
    if isinstance(v, list | tuple):
        v = {s: MIN_PROFICIENCY for s in v} if all(isinstance(s, str) for s in v) else v
    if not isinstance(v, Mapping):
        return {}, [f"expected {{skill: proficiency}}, a list of skill names or 'skill:level,...', got {_kind(v)}"]
    out: dict[str, int] = {}
    problems: list[str] = []
    for skill, level in v.items():
        if not isinstance(skill, str) or not NAME_RE.match(skill):
            problems.append(f"{skill!r} is not a valid skill name (letters, digits, '_', '.', '-'; at most 64)")
            continue
        if isinstance(level, float) and level.is_integer():
            level = int(level)
        if isinstance(level, bool) or not isinstance(level, int):
            problems.append(f"{skill}: proficiency must be a whole number {MIN_PROFICIENCY}..{MAX_PROFICIENCY}, "
                            f"got {_kind(level)}")
        elif not MIN_PROFICIENCY <= level <= MAX_PROFICIENCY:
            problems.append(f"{skill}: proficiency {level} is outside {MIN_PROFICIENCY}..{MAX_PROFICIENCY}")
        else:
            out[skill] = level
    return out, problems


def parse_skills(text: str) -> dict[str, int]:
    """``"support:3,english:1,billing"`` -> ``{"support": 3, "english": 1, "billing": 1}``; ConfigInvalid if bad."""
    out: dict[str, int] = {}
    problems: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        skill, sep, level_text = (s.strip() for s in part.partition(":"))
        level = MIN_PROFICIENCY
        if sep:
            try:
                level = int(level_text)
            except ValueError:
                problems.append(f"skills: {part!r}: the proficiency after ':' must be a whole number "
                                f"{MIN_PROFICIENCY}..{MAX_PROFICIENCY}")
                continue
        got, bad = _skills({skill: level})
        problems += [f"skills: {b}" for b in bad]
        out.update(got)
    if problems:
        raise ConfigInvalid("skills", problems)
    return out


def format_skills(skills: Mapping[str, int]) -> str:
    """The inverse of :func:`parse_skills`: ``"english:1,support:3"`` (sorted)."""
    return ",".join(f"{k}:{v}" for k, v in sorted(skills.items()))


# -- agents --------------------------------------------------------------------------------------------

def agent_from_dict(d: Mapping[str, Any]) -> AgentSpec:
    """An AgentSpec from ``d`` (``id`` required; other fields default as in AgentSpec); ConfigInvalid if bad."""
    c = _Checker(d, AGENT_FIELDS)
    agent_id = c.text("id", required=True, max_len=64, pattern=AGENT_ID_RE, what="agent id",
                      chars="letters, digits, '_', '.', '@', '-'")
    uri = c.text("uri", max_len=500)
    if uri and uri != "desk" and (not re.match(r"^sips?:[^\s]+$", uri, re.IGNORECASE)
                                  or uri.lower() in ("sip:", "sips:")):
        c.fail("uri", f"{uri!r} is not a SIP URI (e.g. sip:alice@10.0.0.5:5060) or \"desk\" (the browser desk)")
    spec = AgentSpec(
        id=agent_id,
        name=c.text("name"),
        team=c.text("team", max_len=100),
        uri=uri,
        skills=c.skills("skills"),
        wrap_up_s=c.number("wrap_up_s", 10.0),
        max_offers=c.integer("max_offers", 1, minimum=1, maximum=100),
        weight=c.integer("weight", 1, minimum=1, maximum=1_000_000),
        order=c.integer("order", 0, minimum=-1_000_000, maximum=1_000_000),
        user=c.text("user", max_len=100),
    )
    if c.problems:
        raise ConfigInvalid(f"agent {agent_id or d.get('id', '?')!s}", c.problems)
    return spec


def agent_to_dict(spec: AgentSpec) -> dict[str, Any]:
    """Every field of ``spec`` as JSON-ready values."""
    return {"id": spec.id, "name": spec.name, "team": spec.team, "uri": spec.uri, "skills": dict(spec.skills),
            "wrap_up_s": spec.wrap_up_s, "max_offers": spec.max_offers, "weight": spec.weight,
            "order": spec.order, "user": spec.user}


# -- queues --------------------------------------------------------------------------------------------

def _overflow(c: _Checker, own: str) -> str:
    v = c.text("overflow", max_len=200)
    if v in ("", "callback"):
        return v
    kind, sep, target = v.partition(":")
    if not sep or kind not in ("queue", "voicemail"):
        c.fail("overflow", f"{v!r} is not an overflow target: use \"\" (back to the flow), \"queue:NAME\", "
                           "\"voicemail:MAILBOX\" or \"callback\"" + did_you_mean(kind, ["queue", "voicemail",
                                                                                         "callback"]))
        return ""
    if not NAME_RE.match(target):
        c.fail("overflow", f"{v!r}: {target!r} is not a valid {'queue name' if kind == 'queue' else 'mailbox'}")
        return ""
    if kind == "queue" and target == own:
        c.fail("overflow", f"queue {own!r} cannot overflow into itself")
        return ""
    return v


def _escalation(c: _Checker) -> tuple[EscalationStep, ...]:
    v = c.get("escalation", ())
    if v is None:
        return ()
    if not isinstance(v, list | tuple):
        c.fail("escalation", f"expected a list of {{after_s, skills, add_queues}}, got {_kind(v)}")
        return ()
    steps: list[EscalationStep] = []
    for i, raw in enumerate(v):
        s = _Checker(raw, ("after_s", "skills", "add_queues"), prefix=f"escalation[{i}].")
        if isinstance(raw, Mapping) and "after_s" not in raw:
            s.fail("after_s", "required (seconds of waiting before this step applies)")
        after = s.number("after_s", 0.0, positive=True)
        skills: dict[str, int] | None = None
        if isinstance(raw, Mapping) and raw.get("skills") is not None:
            skills = s.skills("skills")
        queues_raw = s.get("add_queues", ())
        if isinstance(queues_raw, str):
            queues_raw = [q.strip() for q in queues_raw.split(",") if q.strip()]
        queues: list[str] = []
        if not isinstance(queues_raw, list | tuple):
            s.fail("add_queues", f"expected a list of queue names, got {_kind(queues_raw)}")
        else:
            for q in queues_raw:
                if not isinstance(q, str) or not NAME_RE.match(q):
                    s.fail("add_queues", f"{q!r} is not a valid queue name")
                elif q not in queues:
                    queues.append(q)
        if isinstance(raw, Mapping) and skills is None and not queues and not s.problems:
            s.fail("", "changes nothing: give skills, add_queues or both")
        c.problems += s.problems
        steps.append(EscalationStep(after_s=after, skills=skills, add_queues=tuple(queues)))
    return tuple(sorted(steps, key=lambda st: st.after_s))


def queue_from_dict(d: Mapping[str, Any]) -> QueueSpec:
    """A QueueSpec from ``d`` (``name`` required; other fields default as in QueueSpec); ConfigInvalid if bad."""
    c = _Checker(d, QUEUE_FIELDS)
    name = c.text("name", required=True, max_len=64, pattern=NAME_RE, what="queue name")
    if name in RESERVED_QUEUE_NAMES:
        c.fail("name", f"{name!r} is reserved (the API's /api/queues/{name}); choose another name")
    strategy = c.get("strategy", "longest-idle")
    if strategy not in STRATEGIES:
        c.fail("strategy", f"unknown strategy {strategy!r}" + did_you_mean(str(strategy), STRATEGIES)
               + f"; one of: {', '.join(STRATEGIES)}")
        strategy = "longest-idle"
    spec = QueueSpec(
        name=name,
        skills=c.skills("skills"),
        strategy=strategy,
        priority=c.integer("priority", 0, minimum=-1000, maximum=1000),
        service_level_s=c.number("service_level_s", 20.0, positive=True),
        max_wait_s=c.number("max_wait_s", 0.0),
        max_length=c.integer("max_length", 0, minimum=0, maximum=1_000_000),
        ring_timeout_s=c.number("ring_timeout_s", 15.0, positive=True, maximum=MAX_RING_TIMEOUT_S),
        max_no_answer=c.integer("max_no_answer", 3, minimum=0, maximum=1000),
        no_answer_reason=c.text("no_answer_reason", "no-answer", max_len=64, pattern=NAME_RE, what="reason code")
        or "no-answer",
        wrap_up_s=c.optional_number("wrap_up_s", None),
        hold_music=c.text("hold_music", max_len=4096),
        announce_every_s=c.number("announce_every_s", 30.0),
        announce_position=c.boolean("announce_position", True),
        announce_wait=c.boolean("announce_wait", True),
        callback=c.boolean("callback", True),
        overflow=_overflow(c, name),
        escalation=_escalation(c),
        aging_per_min=c.number("aging_per_min", 1.0, maximum=1000.0),
        vip_boost=c.integer("vip_boost", 10, minimum=0, maximum=1000),
        preferred_agent_s=c.number("preferred_agent_s", 0.0),
        short_abandon_s=c.number("short_abandon_s", 5.0),
    )
    if c.problems:
        raise ConfigInvalid(f"queue {name or d.get('name', '?')!s}", c.problems)
    return spec


def queue_to_dict(spec: QueueSpec) -> dict[str, Any]:
    """Every field of ``spec`` as JSON-ready values (escalation steps as dicts, tuples as lists)."""
    out: dict[str, Any] = {}
    for name in QUEUE_FIELDS:
        out[name] = getattr(spec, name)
    out["skills"] = dict(spec.skills)
    out["escalation"] = [{"after_s": s.after_s, "skills": None if s.skills is None else dict(s.skills),
                          "add_queues": list(s.add_queues)} for s in spec.escalation]
    return out

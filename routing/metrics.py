"""Queue and agent metrics over a time range, computed from event-table rows (pure: no I/O, no clock).

The definitions are written down in docs/metrics.md; this module is their implementation, and the
two must agree. In short, for the range [start, end):

* counts (offered, answered, abandoned, overflowed, called back...) are events whose ``at`` falls
  in the range, by the event's own time;
* the service level is taken over the contacts *offered* in the range (their ENTERQUEUE in it),
  each judged with what is known at the horizon (``min(end, now)``); contacts still waiting then
  that have not yet waited ``T`` are left out (their fate is unknown), those that have are misses;
* agent times come from AGENTSTATE intervals clipped to [start, horizon).

Input: :class:`EventRow` s (``at`` in epoch seconds; see ``callcenter/storage/metrics_repo.py`` for
how they are read). For the agent times to be right the rows must also hold, per agent, the last
AGENTSTATE before ``start`` (the state at ``start``) and the first at or after ``end`` (which ends
a wrap-up that runs past ``end``, for AHT); rows outside the range are used for nothing else.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

DEFAULT_SERVICE_LEVEL_S = 20.0   # routing.model.QueueSpec.service_level_s
DEFAULT_SHORT_ABANDON_S = 5.0    # routing.model.QueueSpec.short_abandon_s
MAX_BUCKETS = 10_000
TOLERANCE_S = 1.0                # a COMPLETE and the agent's state change may be logged a moment apart

OVERFLOW_EVENTS = {"EXITWITHTIMEOUT": "timeout", "EXITFULL": "full", "EXITEMPTY": "empty"}
QUEUE_EVENTS = frozenset({"ENTERQUEUE", "CONNECT", "ABANDON", "CALLBACKREQ", "CALLBACKANSWER", "CALLBACKFAIL",
                          "COMPLETECALLER", "COMPLETEAGENT", "OFFER", "RINGNOANSWER", *OVERFLOW_EVENTS})
EVENTS = frozenset({*QUEUE_EVENTS, "AGENTSTATE"})   # every event this module reads
TIMED_STATES = ("available", "reserved", "on_call", "wrap_up", "break")
# How a contact leaves the line (a CONNECT of a callback does not: the customer left at CALLBACKREQ).
LEAVING = frozenset({"CONNECT", "ABANDON", "CALLBACKREQ", *OVERFLOW_EVENTS})
AGENT_COUNTS = {"OFFER": "offers", "RINGNOANSWER": "no_answer", "CONNECT": "answered",
                "COMPLETECALLER": "completed", "COMPLETEAGENT": "completed"}


@dataclass(frozen=True, slots=True)
class EventRow:
    """One row of the events table, its time as epoch seconds (``id`` orders rows of the same ``at``)."""

    at: float
    event: str
    call_id: str = ""
    queue: str = ""
    agent: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """One queue's figures over [start, end) (``queue`` "" : all queues together)."""

    queue: str
    start: float
    end: float
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    overflowed: int = 0
    overflowed_by: dict[str, int] = field(default_factory=dict)   # timeout | full | empty -> count
    callback_requests: int = 0
    called_back: int = 0
    callback_failed: int = 0
    completed: int = 0
    service_level_s: float | None = None    # T (None in the all-queues row: each contact uses its queue's)
    sl_met: int = 0                         # contacts offered in range, answered within T
    sl_base: int = 0                        # contacts offered in range, minus short abandons and undecided ones
    service_level: float | None = None      # sl_met / sl_base (None when sl_base is 0)
    asa_s: float | None = None
    aht_s: float | None = None
    avg_talk_s: float | None = None
    avg_wrap_up_s: float | None = None
    abandon_rate: float | None = None       # abandoned / offered
    longest_wait_s: float = 0.0
    waiting_at_end: int = 0                 # contacts offered in range, still waiting at the horizon


@dataclass(frozen=True, slots=True)
class AgentMetrics:
    agent: str
    offers: int = 0
    no_answer: int = 0
    answered: int = 0                       # CONNECT rows (callbacks included)
    completed: int = 0
    available_s: float = 0.0
    reserved_s: float = 0.0
    on_call_s: float = 0.0                  # talk time
    wrap_up_s: float = 0.0
    break_s: float = 0.0
    break_by_reason: dict[str, float] = field(default_factory=dict)
    logged_in_s: float = 0.0
    occupancy: float | None = None          # (on_call + wrap_up) / (available + reserved + on_call + wrap_up)
    state_at_end: str = "logged_out"


@dataclass(frozen=True, slots=True)
class Report:
    start: float
    end: float
    horizon: float                          # min(end, now): open intervals and waits end here
    queues: dict[str, QueueMetrics]
    total: QueueMetrics
    agents: dict[str, AgentMetrics]
    bucket_s: float | None
    buckets: dict[str, list[QueueMetrics]]  # queue -> one per interval, in order (empty without bucket_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- times ----------------------------------------------------------------------------------------------

def parse_at(text: str) -> float:
    """An events-table ``at`` (ISO 8601; without an offset: UTC) as epoch seconds; ValueError if it is not one."""
    d = datetime.fromisoformat(text)
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def iso(t: float) -> str:
    """Epoch seconds as the events table writes them ("2026-12-01T13:05:08.123+00:00")."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def parse_time(text: str, *, end: bool = False) -> float:
    """A --from/--to value: an ISO date ("2026-12-01") or datetime ("2026-12-01T13:00", offset optional,
    default UTC) as epoch seconds. A date alone is its midnight UTC, or with ``end`` the next midnight
    (so ``--from D --to D`` is the whole day). ValueError with a one-line message otherwise."""
    s = text.strip()
    try:
        if len(s) == 10:
            day = date.fromisoformat(s)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC).timestamp()
        return parse_at(s.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or datetime (e.g. 2026-12-01 or 2026-12-01T13:00)") from None


def today_utc(now: float) -> tuple[float, float]:
    """[today's midnight UTC, tomorrow's) for ``now``."""
    day = datetime.fromtimestamp(now, UTC).date()
    return parse_time(day.isoformat()), parse_time(day.isoformat(), end=True)


def bucket_edges(start: float, end: float, bucket_s: float) -> list[float]:
    """Interval edges: ``start``, every multiple of ``bucket_s`` since the epoch inside, ``end``."""
    if not bucket_s > 0 or math.isinf(bucket_s):
        raise ValueError(f"the interval must be a positive number of seconds (got {bucket_s})")
    first = math.floor(start / bucket_s) * bucket_s + bucket_s
    n = max(0, math.ceil((end - first) / bucket_s))
    if n + 1 > MAX_BUCKETS:
        raise ValueError(f"{n + 1} intervals of {bucket_s:g} s: at most {MAX_BUCKETS} (use a longer interval)")
    return [start, *(first + i * bucket_s for i in range(n) if first + i * bucket_s < end), end]


# -- accumulation -------------------------------------------------------------------------------------

def _num(data: Mapping[str, Any], key: str) -> float | None:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


class _Acc:
    """Running counts of one queue over one interval (or of all queues: ``queue`` "")."""

    def __init__(self, queue: str, start: float, end: float, sl_s: float | None) -> None:
        self.queue, self.start, self.end, self.sl_s = queue, start, end, sl_s
        self.counts: dict[str, int] = dict.fromkeys(
            ("offered", "answered", "abandoned", "short_abandoned", "overflowed", "callback_requests", "called_back",
             "callback_failed", "completed", "sl_met", "sl_base", "waiting_at_end"), 0)
        self.overflowed_by: dict[str, int] = {}
        self.holds: list[float] = []
        self.talks: list[float] = []
        self.wraps: list[float] = []
        self.longest = 0.0

    def wait(self, w: float | None) -> None:
        if w is not None and w > self.longest:
            self.longest = w

    def result(self) -> QueueMetrics:
        c = self.counts
        return QueueMetrics(
            queue=self.queue, start=self.start, end=self.end, overflowed_by=dict(sorted(self.overflowed_by.items())),
            service_level_s=self.sl_s, service_level=c["sl_met"] / c["sl_base"] if c["sl_base"] else None,
            asa_s=_mean(self.holds),
            aht_s=_mean([t + w for t, w in zip(self.talks, self.wraps, strict=True)]),
            avg_talk_s=_mean(self.talks), avg_wrap_up_s=_mean(self.wraps),
            abandon_rate=c["abandoned"] / c["offered"] if c["offered"] else None,
            longest_wait_s=self.longest, **c)


@dataclass(slots=True)
class _Contact:
    queue: str
    entered: float
    outcome: str = ""          # met | missed | short (left out); "": still waiting
    wait: float | None = None  # how long it waited, once it left the line


@dataclass(slots=True)
class _Interval:
    state: str
    reason: str
    start: float
    end: float | None           # None: no later AGENTSTATE in the rows


def _intervals(rows: list[EventRow]) -> dict[str, list[_Interval]]:
    out: dict[str, list[_Interval]] = {}
    for r in rows:
        if r.event != "AGENTSTATE" or not r.agent:
            continue
        ivs = out.setdefault(r.agent, [])
        if ivs:
            ivs[-1].end = r.at
        state = str(r.data.get("state", ""))
        ivs.append(_Interval(state, str(r.data.get("reason", "") or ""), r.at, None))
    return out


def _wrap_after(ivs: list[_Interval], starts: list[float], t: float, open_end: float) -> float:
    """The wrap-up that followed the agent's call completed at ``t``: the interval right after the
    agent's on_call interval begun by ``t``, if it is wrap_up; its whole length (an interval with no
    later AGENTSTATE ends at ``open_end``)."""
    i = bisect_right(starts, t + TOLERANCE_S) - 1
    while i >= 0 and not (ivs[i].state == "on_call" and ivs[i].start <= t):
        if ivs[i].start < t - TOLERANCE_S:   # (a state logged a moment around the COMPLETE may still be ours)
            return 0.0
        i -= 1
    if i < 0 or i + 1 >= len(ivs) or ivs[i + 1].state != "wrap_up":
        return 0.0
    w = ivs[i + 1]
    return max(0.0, (w.end if w.end is not None else max(open_end, w.start)) - w.start)


# -- the computation ----------------------------------------------------------------------------------

def compute(rows: Iterable[EventRow], start: float, end: float, *,
            service_level_s: Mapping[str, float] | None = None, short_abandon_s: Mapping[str, float] | None = None,
            default_service_level_s: float = DEFAULT_SERVICE_LEVEL_S,
            default_short_abandon_s: float = DEFAULT_SHORT_ABANDON_S,
            queues: Iterable[str] = (), only_queue: str | None = None, bucket_s: float | None = 3600.0,
            now: float | None = None) -> Report:
    """Every figure of docs/metrics.md for [start, end). ``service_level_s`` / ``short_abandon_s`` map a
    queue to its T and short-abandon threshold (others get the defaults); ``queues`` are listed even
    without events; ``only_queue`` keeps that queue (and the agents who worked in it); ``now`` ends
    open intervals and waits earlier than ``end`` when the range reaches into the future."""
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"the range's ends must be times (got {start!r}, {end!r})")
    if end <= start:
        raise ValueError(f"the range must end after it starts (from {iso(start)} to {iso(end)})")
    horizon = end if now is None else max(start, min(end, now))
    sl_of = service_level_s or {}
    short_of = short_abandon_s or {}
    edges = bucket_edges(start, end, bucket_s) if bucket_s is not None else [start, end]
    data = sorted(rows, key=lambda r: (r.at, r.id))

    def sl_t(q: str) -> float:
        return float(sl_of.get(q, default_service_level_s))

    def wanted(q: str) -> bool:
        return bool(q) and (only_queue is None or q == only_queue)

    whole: dict[str, _Acc] = {}
    by_bucket: dict[str, list[_Acc]] = {}

    def accs(q: str, t: float) -> tuple[_Acc, _Acc | None]:
        if q not in whole:
            whole[q] = _Acc(q, start, end, sl_t(q))
            by_bucket[q] = [_Acc(q, a, b, sl_t(q)) for a, b in zip(edges, edges[1:], strict=False)]
        i = bisect_right(edges, t) - 1
        return whole[q], (by_bucket[q][i] if bucket_s is not None and 0 <= i < len(by_bucket[q]) else None)

    for q in queues:
        if wanted(q):
            accs(q, start)
    if only_queue:
        accs(only_queue, start)

    intervals = _intervals(data)
    starts = {a: [iv.start for iv in ivs] for a, ivs in intervals.items()}
    cohort: list[_Contact] = []                    # contacts offered in range (the service level's base)
    waiting: dict[tuple[str, str], _Contact] = {}  # ...of which those still on the line
    agent_counts: dict[str, dict[str, int]] = {}
    agents_in_queue: set[str] = set()

    for r in data:
        if not start <= r.at < horizon or r.event not in QUEUE_EVENTS:   # (after now: not yet)
            continue
        if r.agent and (only_queue is None or r.queue == only_queue):
            name = AGENT_COUNTS.get(r.event)
            if name is not None:
                ac = agent_counts.setdefault(r.agent, dict.fromkeys(AGENT_COUNTS.values(), 0))
                ac[name] += 1
                agents_in_queue.add(r.agent)
        if not wanted(r.queue):
            continue
        q, d, key = r.queue, r.data, (r.queue, r.call_id)
        live = not d.get("callback")
        contact = waiting.pop(key, None) if r.event in LEAVING and (live or r.event != "CONNECT") else None
        wait = _num(d, "holdtime" if r.event == "CONNECT" else "waittime")
        if wait is None and contact is not None:
            wait = r.at - contact.entered
        short = r.event == "ABANDON" and wait is not None and wait < float(short_of.get(q, default_short_abandon_s))
        if contact is not None:
            contact.wait = wait
            if short:
                contact.outcome = "short"
            elif r.event == "CONNECT" and wait is not None and wait <= sl_t(q):
                contact.outcome = "met"
            else:
                contact.outcome = "missed"
        if r.event == "ENTERQUEUE" and live:
            waiting[key] = _Contact(q, r.at)
            cohort.append(waiting[key])
        for acc in accs(q, r.at):
            if acc is None:
                continue
            n = acc.counts
            if r.event == "ENTERQUEUE" and live:
                n["offered"] += 1
            elif r.event == "CONNECT" and live:
                n["answered"] += 1
                if wait is not None:
                    acc.holds.append(wait)
                acc.wait(wait)
            elif r.event == "ABANDON":
                n["abandoned"] += 1
                n["short_abandoned"] += short
                acc.wait(wait)
            elif r.event in OVERFLOW_EVENTS:
                n["overflowed"] += 1
                kind = OVERFLOW_EVENTS[r.event]
                acc.overflowed_by[kind] = acc.overflowed_by.get(kind, 0) + 1
                acc.wait(wait)
            elif r.event == "CALLBACKREQ":
                n["callback_requests"] += 1
                acc.wait(wait)
            elif r.event == "CALLBACKANSWER":
                n["called_back"] += 1
            elif r.event == "CALLBACKFAIL" and d.get("final"):
                n["callback_failed"] += 1
            elif r.event in ("COMPLETECALLER", "COMPLETEAGENT"):
                n["completed"] += 1
                talk = _num(d, "calltime")
                if talk is not None:
                    acc.talks.append(talk)
                    ivs = intervals.get(r.agent, [])
                    acc.wraps.append(_wrap_after(ivs, starts[r.agent], r.at, horizon) if ivs else 0.0)

    for c in cohort:
        waited = horizon - c.entered
        for acc in accs(c.queue, c.entered):
            if acc is None:
                continue
            if not c.outcome:
                acc.counts["waiting_at_end"] += 1
                acc.wait(waited)
                if waited > sl_t(c.queue):
                    acc.counts["sl_base"] += 1    # it can no longer be answered within T: a miss already
            elif c.outcome != "short":
                acc.counts["sl_base"] += 1
                acc.counts["sl_met"] += c.outcome == "met"

    queue_out = {q: whole[q].result() for q in sorted(whole)}
    agents = _agents(intervals, agent_counts, start, horizon, agents_in_queue if only_queue is not None else None)
    return Report(start=start, end=end, horizon=horizon, queues=queue_out, total=_total(queue_out.values(), whole,
                  start, end), agents=agents, bucket_s=bucket_s,
                  buckets={q: [a.result() for a in by_bucket[q]] for q in sorted(whole)} if bucket_s else {})


def _total(results: Iterable[QueueMetrics], whole: dict[str, _Acc], start: float, end: float) -> QueueMetrics:
    t = _Acc("", start, end, None)
    for m in results:
        for k in t.counts:
            t.counts[k] += getattr(m, k)
        for k, v in m.overflowed_by.items():
            t.overflowed_by[k] = t.overflowed_by.get(k, 0) + v
        t.wait(m.longest_wait_s)
    for acc in whole.values():
        t.holds += acc.holds
        t.talks += acc.talks
        t.wraps += acc.wraps
    return t.result()


def _agents(intervals: dict[str, list[_Interval]], counts: dict[str, dict[str, int]], start: float,
            horizon: float, only: set[str] | None) -> dict[str, AgentMetrics]:
    out: dict[str, AgentMetrics] = {}
    for agent in sorted(set(intervals) | set(counts)):
        if only is not None and agent not in only:
            continue
        times = dict.fromkeys(TIMED_STATES, 0.0)
        reasons: dict[str, float] = {}
        state_at_end = "logged_out"
        for iv in intervals.get(agent, []):
            if iv.start < horizon:     # (the last state begun before the horizon is the state at its end)
                state_at_end = iv.state
            a = max(iv.start, start)
            b = min(iv.end if iv.end is not None else horizon, horizon)
            if b <= a or iv.state not in times:
                continue
            times[iv.state] += b - a
            if iv.state == "break":
                reasons[iv.reason] = reasons.get(iv.reason, 0.0) + b - a
        worked = times["available"] + times["reserved"] + times["on_call"] + times["wrap_up"]
        n = counts.get(agent, {})
        if only is None and not n and not any(times.values()):
            continue                   # logged out through the whole range, and no calls in it
        out[agent] = AgentMetrics(
            agent=agent, offers=n.get("offers", 0), no_answer=n.get("no_answer", 0), answered=n.get("answered", 0),
            completed=n.get("completed", 0), available_s=times["available"], reserved_s=times["reserved"],
            on_call_s=times["on_call"], wrap_up_s=times["wrap_up"], break_s=times["break"],
            break_by_reason=dict(sorted(reasons.items())), logged_in_s=sum(times.values()),
            occupancy=(times["on_call"] + times["wrap_up"]) / worked if worked > 0 else None,
            state_at_end=state_at_end)
    return out

"""After a run of bench/capacity_acd.py: what the server's database says about the bridged calls.

From the ``calls`` rows and the ``events`` table (queue_log style) of the calls placed in the run:
every call entered the queue once, was offered, connected (CONNECT), completed (COMPLETECALLER
or COMPLETEAGENT) and never rang out (RINGNOANSWER) or abandoned (ABANDON); both legs have a
recording whose file is on disk with the size and SHA-256 the row says and a sensible length;
the post-call ``recordings`` rows (caller, agent, stereo); no agent on two calls at once. Also
the figures the events give: peak concurrent bridged calls (a sweep over CONNECT .. COMPLETE*),
and the ACD's times ENTERQUEUE -> OFFER (the routing decision), OFFER -> CONNECT (ring and
answer) and ENTERQUEUE -> CONNECT (decision to bridge).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from capacity import median, pctl
from capacity_checks import audible, wav_seconds

EVENTS = ("ENTERQUEUE", "OFFER", "CONNECT", "RINGNOANSWER", "RINGCANCELED", "ABANDON", "COMPLETECALLER",
          "COMPLETEAGENT", "EXITWITHTIMEOUT", "EXITFULL", "EXITEMPTY", "CALLEND")


def epoch(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def open_db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / 'callcenter.db'}?mode=ro", uri=True, timeout=10)


def last_call_rowid(data_dir: Path) -> int:
    with contextlib.closing(open_db(data_dir)) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM calls").fetchone()[0])


def bridged_now(conn: sqlite3.Connection) -> int:
    """Calls connected and not completed yet, as the events table has them so far (batched writes)."""
    row = conn.execute("SELECT SUM(event = 'CONNECT'), SUM(event IN ('COMPLETECALLER', 'COMPLETEAGENT')) "
                       "FROM events WHERE event IN ('CONNECT', 'COMPLETECALLER', 'COMPLETEAGENT')").fetchone()
    return int(row[0] or 0) - int(row[1] or 0)


@dataclass
class AcdCheck:
    calls: int = 0                                   # call rows of the run
    events: dict[str, int] = field(default_factory=dict)
    dispositions: dict[str, int] = field(default_factory=dict)
    connected: int = 0                               # calls with exactly one CONNECT and a COMPLETE*
    completed_by: dict[str, int] = field(default_factory=dict)
    both_legs_ok: int = 0                            # both recordings present, checksums and lengths right
    recordings_rows: dict[str, int] = field(default_factory=dict)
    caller_rec_s: float | None = None                # median seconds
    agent_rec_s: float | None = None
    bridged_s: float | None = None                   # median CONNECT -> COMPLETE*
    peak_bridged: int = 0
    agents_used: int = 0
    max_calls_per_agent: int = 0
    agent_overlaps: int = 0                          # an agent on two bridged calls at once (must be 0)
    enter_to_offer_ms: tuple[float | None, float | None] = (None, None)     # median, p95
    offer_to_connect_ms: tuple[float | None, float | None] = (None, None)
    enter_to_connect_ms: tuple[float | None, float | None] = (None, None)
    audible_caller: str = ""                         # spot check: "k of n" recordings carry sound
    audible_agent: str = ""
    agent_files_on_disk: int = 0                     # <call id>.agent.wav files of the run's calls, registered or not
    agent_files_s: float | None = None               # their median length (s)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _wait_rows(conn: sqlite3.Connection, since: int, expected: int, timeout: float) -> list[tuple]:
    """The run's call rows once they are all closed (the server commits in batches, a little later)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = conn.execute(
            "SELECT id, disposition, hangup_cause, queue, agent, recording_path, recording_sha256, recording_bytes, "
            "recording_seconds, agent_recording_path, agent_recording_sha256, agent_recording_bytes, "
            "agent_recording_seconds FROM calls WHERE rowid > ? ORDER BY rowid", (since,)).fetchall()
        if (len(rows) >= expected and all(r[1] for r in rows)) or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def _file_ok(data_dir: Path, path: str | None, sha: str | None, nbytes: int | None) -> str:
    """'' if the recording is on disk with the size and SHA-256 of its row, else what is wrong."""
    if not path or not sha:
        return f"no recording in the row (path {path!r}, sha256 {sha!r})"
    file = data_dir / path
    try:
        data = file.read_bytes()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if nbytes is not None and len(data) != nbytes:
        return f"{path}: {len(data)} bytes on disk, {nbytes} in the row"
    if hashlib.sha256(data).hexdigest() != sha:
        return f"{path}: SHA-256 on disk differs from the row"
    return ""


def check_run(data_dir: Path, since_rowid: int, expected: int, hold_s: float, *, wait_s: float = 30.0) -> AcdCheck:
    """Check the calls after row ``since_rowid`` (``expected`` of them, each held ``hold_s`` after the answer)."""
    res = AcdCheck()
    with contextlib.closing(open_db(data_dir)) as conn:
        rows = _wait_rows(conn, since_rowid, expected, wait_s)
        ids = [r[0] for r in rows]
        trail: dict[str, dict[str, list[tuple[float, str, dict]]]] = {i: {} for i in ids}
        if ids:
            first = conn.execute("SELECT MIN(id) FROM events WHERE call_id = ?", (ids[0],)).fetchone()[0] or 0
            marks = ",".join("?" * len(EVENTS))
            for call_id, event, at, agent, data in conn.execute(
                    f"SELECT call_id, event, at, agent, data FROM events WHERE id >= ? AND event IN ({marks}) "
                    "ORDER BY id", (first, *EVENTS)):
                if call_id in trail:
                    trail[call_id].setdefault(event, []).append((epoch(at), agent or "", json.loads(data or "{}")))
        deadline = time.monotonic() + wait_s  # post-call work (legs + stereo mix) finishes after the call
        while True:
            legs = conn.execute(f"SELECT call_id, leg FROM recordings WHERE call_id IN ({','.join('?' * len(ids))})",
                                ids).fetchall() if ids else []
            if len(legs) >= 3 * len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    res.calls = len(rows)
    if len(rows) != expected:
        res.problems.append(f"{len(rows)} call rows in the database for {expected} calls placed")
    res.recordings_rows = dict(Counter(leg for _, leg in legs))
    for leg in ("caller", "agent", "stereo"):
        if res.recordings_rows.get(leg, 0) != len(rows):
            res.problems.append(f"{res.recordings_rows.get(leg, 0)} '{leg}' rows in the recordings table "
                                f"for {len(rows)} calls")
    counts: Counter[str] = Counter()
    for t in trail.values():
        for event, items in t.items():
            counts[event] += len(items)
    res.events = {e: counts.get(e, 0) for e in EVENTS}
    for bad in ("RINGNOANSWER", "ABANDON", "EXITWITHTIMEOUT", "EXITFULL", "EXITEMPTY"):
        if counts.get(bad):
            res.problems.append(f"{counts[bad]} {bad} events")
    res.dispositions = dict(Counter(r[1] or "(open)" for r in rows))
    spans: list[tuple[float, float, str]] = []
    enter_offer, offer_connect, enter_connect, caller_s, agent_s, bridged = [], [], [], [], [], []
    by: Counter[str] = Counter()
    bad_calls: list[str] = []
    for (call_id, disposition, cause, _queue, agent, path, sha, nbytes, seconds,
         apath, asha, abytes, aseconds) in rows:
        t = trail[call_id]
        wrong: list[str] = []
        enter, offer, connect = t.get("ENTERQUEUE", []), t.get("OFFER", []), t.get("CONNECT", [])
        done = t.get("COMPLETECALLER", []) + t.get("COMPLETEAGENT", [])
        if len(enter) != 1 or len(connect) != 1 or len(done) != 1:
            wrong.append(f"ENTERQUEUE x{len(enter)}, OFFER x{len(offer)}, CONNECT x{len(connect)}, "
                         f"COMPLETE* x{len(done)}")
        else:
            res.connected += 1
            t_enter, t_connect, t_done = enter[0][0], connect[0][0], done[0][0]
            enter_connect.append(1000 * (t_connect - t_enter))
            if offer:
                enter_offer.append(1000 * (offer[0][0] - t_enter))
                offer_connect.append(1000 * (t_connect - offer[-1][0]))
            spans.append((t_connect, t_done, connect[0][1] or agent))
            bridged.append(t_done - t_connect)
            by["caller" if t.get("COMPLETECALLER") else "agent"] += 1
        if disposition != "caller_hangup":
            wrong.append(f"disposition {disposition} ({cause})")
        for leg, p, s, b in (("caller", path, sha, nbytes), ("agent", apath, asha, abytes)):
            why = _file_ok(data_dir, p, s, b)
            if why:
                wrong.append(f"{leg} leg: {why}")
        # The caller's leg is recorded from the answer, the agent's from the agent's answer: about the
        # bridged time (the hold less the ring), never longer than the caller's.
        min_caller, min_agent = 0.9 * hold_s, 0.8 * hold_s - 2.0
        if (seconds or 0) < min_caller:
            wrong.append(f"caller recording {seconds} s (< {min_caller:.1f} s)")
        if (aseconds or 0) < min_agent or (aseconds or 0) > (seconds or 0) + 1.0:
            wrong.append(f"agent recording {aseconds} s (caller's {seconds} s; expected {min_agent:.1f} s .. "
                         f"the caller's)")
        if seconds:
            caller_s.append(float(seconds))
        if aseconds:
            agent_s.append(float(aseconds))
        if wrong:
            bad_calls.append(f"call {call_id} (agent {agent or '-'}): " + "; ".join(wrong))
        else:
            res.both_legs_ok += 1
    if bad_calls:
        res.problems.append(f"{len(bad_calls)} of {len(rows)} calls not right; first: " + " | ".join(bad_calls[:4]))
    res.completed_by = dict(by)
    res.caller_rec_s, res.agent_rec_s, res.bridged_s = median(caller_s), median(agent_s), median(bridged)
    res.enter_to_offer_ms = (median(enter_offer), pctl(enter_offer, 0.95))
    res.offer_to_connect_ms = (median(offer_connect), pctl(offer_connect, 0.95))
    res.enter_to_connect_ms = (median(enter_connect), pctl(enter_connect, 0.95))
    res.peak_bridged = peak(spans)
    per_agent: dict[str, list[tuple[float, float]]] = {}
    for a, b, agent in spans:
        per_agent.setdefault(agent, []).append((a, b))
    res.agents_used = len(per_agent)
    res.max_calls_per_agent = max((len(v) for v in per_agent.values()), default=0)
    res.agent_overlaps = sum(peak([(a, b, "") for a, b in v]) > 1 for v in per_agent.values())
    if res.agent_overlaps:
        res.problems.append(f"{res.agent_overlaps} agents were on two bridged calls at once")
    on_disk = {p.name.split(".")[0]: p for p in (data_dir / "recordings").rglob("*.agent.wav")}
    found = [on_disk[i] for i in ids if i in on_disk]
    res.agent_files_on_disk = len(found)
    res.agent_files_s = median([wav_seconds(p) for p in found])
    if res.recordings_rows.get("agent", 0) < len(found):
        res.problems.append(f"{len(found)} agent-leg WAVs on disk, {res.recordings_rows.get('agent', 0)} registered "
                            f"(median {res.agent_files_s or 0:.1f} s): the agent leg was recorded, its end not "
                            "passed to the call row")
    callers = [data_dir / r[5] for r in rows if r[5] and (data_dir / r[5]).exists()]
    some_callers, some_agents = random.sample(callers, min(6, len(callers))), random.sample(found, min(6, len(found)))
    res.audible_caller = f"{sum(audible(p) for p in some_callers)} of {len(some_callers)}"
    res.audible_agent = f"{sum(audible(p) for p in some_agents)} of {len(some_agents)}"
    return res


def peak(spans: list[tuple[float, float, str]]) -> int:
    """The most intervals (start, end) open at once; an end at the same instant as a start closes first."""
    points = sorted([(a, 1) for a, _, _ in spans] + [(b, -1) for _, b, _ in spans], key=lambda p: (p[0], p[1]))
    level = top = 0
    for _, step in points:
        level += step
        top = max(top, level)
    return top


"""After a crash (kill -9, power loss): close the calls the previous run left open, and say what they are owed.

At start, before the SIP port opens, every call row without an end is closed as it would have been:

- its legs are found: the caller's (the row's ``recording_path``, or by its file name when the run died before
  storing it) and the agent's, if the call had been bridged to one (``<call id>.agent.wav`` in the day folder of
  the moment the agent answered, recordings/files.py: the row never names it before the call ends);
- each leg (cut off mid-write, with header sizes of 0) is repaired to its real length (recordings/repair.py) and
  checksummed, into ``recording_*`` and ``agent_recording_*`` as at a normal call's end;
- the row gets the last moment the call is known to have been alive (its recordings' last writes, or its last
  event), disposition ``interrupted``, a cause that says so, and a CALLEND event.

What the post-call step needs and only this moment knows is kept in a ``RECOVERED`` event, written first (for a
call with at least one usable leg):
``{"ended_at": ..., "legs": {"caller": {"path", "offset_s", "pauses"}, "agent": {...}}}``. A leg's start is its
last write minus its length (the engine records in real time, pauses as zeros), read before the repair touches
the file; so the agent leg's offset in the call is the difference of the two starts. The caller leg's pauses are
rebuilt from the RECPAUSE / RECRESUME events the run had committed (a pause still open at the crash ends with the
recording). Once the server has its ``PostCall``, ``PostCall.resume_recovered`` runs the normal post-call work
(leg rows, stereo mix, transcription job) for every ``owed_post_call`` and marks each with a ``POSTCALL`` event,
so a later start finds nothing to do. Every step checks what an earlier, interrupted start already wrote, so
recovery itself can be killed and run again: no event is written twice, no offset is recomputed from a file the
repair already touched. Nothing on disk is deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recordings import files as recfiles
from recordings.exceptions import RecordingDamaged
from recordings.repair import RepairResult, repair_wav

from .storage.db import Database
from .storage.repos import CallRepo, EventRepo

log = logging.getLogger("callcenter.recovery")

CAUSE = "interrupted: the server stopped without ending the call (killed or crashed)"
RECOVERED = "RECOVERED"   # event: what recovery found of an interrupted call (its legs, when it ended)
POSTCALL = "POSTCALL"     # event: the post-call work of a recovered call has been done (callcenter/post_call.py)
LEGS = ("caller", "agent")
AGENT_DAYS = 31           # day folders searched for the agent's leg, from the call's start on


@dataclass(frozen=True, slots=True)
class RecoveredLeg:
    path: str                                     # relative to the data directory
    offset_s: float = 0.0                         # where the leg starts in the call
    pauses: tuple[tuple[float, float], ...] = ()  # seconds from the leg's start, recorded as silence


@dataclass(frozen=True, slots=True)
class OwedCall:
    """A call closed by recovery whose post-call work has not been done yet."""

    call_id: str
    queue: str
    legs: dict[str, RecoveredLeg]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _epoch(iso: str) -> float | None:
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _started(row: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(row["started_at"])
    except (TypeError, ValueError):
        return None


def _find_recording(data_dir: Path, row: dict[str, Any]) -> Path | None:
    if row["recording_path"]:
        return data_dir / row["recording_path"]
    started = _started(row)
    if started is None:
        return None
    candidate = recfiles.leg_location(data_dir / "recordings", row["id"], "caller", started)
    return candidate if candidate.is_file() else None


def _find_agent_recording(data_dir: Path, row: dict[str, Any]) -> Path | None:
    """The agent leg's file: named after the call, in the folder of the day the agent answered (not stored)."""
    started = _started(row)
    if started is None:
        return None
    days = min(max(0, (datetime.now(UTC).date() - started.astimezone(UTC).date()).days), AGENT_DAYS)
    for i in range(days + 1):
        candidate = recfiles.leg_location(data_dir / "recordings", row["id"], "agent", started + timedelta(days=i))
        if candidate.is_file():
            return candidate
    return None


def _repair(path: Path) -> tuple[RepairResult | None, str]:
    try:
        return repair_wav(path), ""
    except FileNotFoundError:
        return None, "missing"
    except (RecordingDamaged, OSError) as exc:
        return None, str(exc)


def _pauses(history: list[dict[str, Any]], t0: float, length: float) -> tuple[tuple[float, float], ...]:
    """The caller leg's pauses from the call's committed RECPAUSE / RECRESUME events, in seconds from ``t0``."""
    spans: list[tuple[float, float]] = []
    opened: float | None = None
    for e in history:
        at = _epoch(e["at"])
        if at is None:
            continue
        if e["event"] == "RECPAUSE" and opened is None:
            opened = at
        elif e["event"] == "RECRESUME" and opened is not None:
            spans.append((opened, at))
            opened = None
    if opened is not None:            # still paused when the server died: silent to the end of the recording
        spans.append((opened, t0 + length))
    out = []
    for a, b in spans:
        lo, hi = round(min(max(0.0, a - t0), length), 3), round(min(max(0.0, b - t0), length), 3)
        if hi > lo:
            out.append((lo, hi))
    return tuple(out)


def _leg_json(leg: RecoveredLeg) -> dict[str, Any]:
    return {"path": leg.path, "offset_s": leg.offset_s, "pauses": [list(p) for p in leg.pauses]}


def _legs_from(data: Any) -> dict[str, RecoveredLeg]:
    """The legs of a RECOVERED event's data; ValueError if it is not what ``recover`` writes."""
    try:
        return {leg: RecoveredLeg(str(v["path"]), float(v.get("offset_s", 0.0)),
                                  tuple((float(a), float(b)) for a, b in v.get("pauses", ())))
                for leg, v in data["legs"].items() if leg in LEGS}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed {RECOVERED} event: {exc!r}") from None


async def _recover_one(calls: CallRepo, events: EventRepo, data_dir: Path, row: dict[str, Any]) -> None:
    cid = row["id"]
    ctx = {"call_id": cid}
    history = await events.for_call(cid)
    seen = {e["event"] for e in history}
    prior: dict[str, Any] | None = next((e["data"] for e in history if e["event"] == RECOVERED), None)
    fields: dict[str, Any] = {"disposition": "interrupted", "hangup_cause": CAUSE}
    legs: dict[str, RecoveredLeg] = {}
    if prior is not None:  # an earlier start began this call's recovery and died: go on from what it wrote
        try:
            legs = _legs_from(prior)
        except ValueError as exc:
            log.error("recovery: ignoring what an earlier start wrote", extra={**ctx, "problem": str(exc)})
        paths = {leg: data_dir / v.path for leg, v in legs.items()}
    else:
        paths = {leg: p for leg, p in (("caller", _find_recording(data_dir, row)),
                                       ("agent", _find_agent_recording(data_dir, row))) if p is not None}
    last = [row["started_at"], row["last_event_at"] or row["started_at"]]
    starts: dict[str, float] = {}
    lengths: dict[str, float] = {}
    for leg, path in paths.items():
        written = _mtime(path)  # the recorder's last write (before the repair touches the file)
        result, problem = await asyncio.to_thread(_repair, path)
        if result is None:
            log.error("recording of an interrupted call is unusable", extra={**ctx, "leg": leg, "problem": problem})
            legs.pop(leg, None)
            continue
        prefix = "" if leg == "caller" else "agent_"
        fields.update({f"{prefix}recording_path": str(path.relative_to(data_dir)),
                       f"{prefix}recording_sha256": result.sha256, f"{prefix}recording_bytes": result.bytes,
                       f"{prefix}recording_seconds": round(result.seconds, 3)})
        if result.repaired:
            log.warning("repaired a recording cut off by a crash", extra={**ctx, "leg": leg, "note": result.note})
        if written is not None:
            last.append(_iso(written))
            starts[leg] = written - result.seconds
        lengths[leg] = result.seconds
    if prior is None:
        t0 = starts.get("caller")
        for leg in paths:
            if leg not in lengths:
                continue
            rel = str(paths[leg].relative_to(data_dir))
            if leg == "caller":
                pauses = _pauses(history, t0, lengths[leg]) if t0 is not None else ()
                legs[leg] = RecoveredLeg(rel, 0.0, pauses)
            else:
                offset = starts[leg] - t0 if t0 is not None and leg in starts else 0.0
                legs[leg] = RecoveredLeg(rel, round(max(0.0, offset), 3))
        fields["ended_at"] = max(last)
        if legs:  # (with no usable leg nothing depends on a file's time: a second run computes the same)
            await events.append(RECOVERED, cid, ended_at=fields["ended_at"],
                                legs={leg: _leg_json(v) for leg, v in legs.items()})
    else:
        fields["ended_at"] = str(prior.get("ended_at") or max(last))
    if "CALLEND" not in seen:
        await events.append("CALLEND", cid, at=fields["ended_at"], disposition="interrupted", cause=CAUSE)
    await calls.update(cid, **fields)
    log.warning("closed a call left open by the previous run",
                extra={**ctx, "ended_at": fields["ended_at"], "legs": ",".join(legs) or "-"})


async def recover(calls: CallRepo, events: EventRepo, data_dir: Path) -> int:
    """Close every open call row (see the module doc); returns how many."""
    rows = await calls.open_calls()
    for row in rows:
        await _recover_one(calls, events, data_dir, row)
    return len(rows)


async def owed_post_call(db: Database) -> list[OwedCall]:
    """Calls closed by ``recover`` with a caller leg and no POSTCALL event yet, oldest first.

    (A call without a usable caller recording gets no post-call work, as at a normal call's end.)
    """
    await db.flush()
    async with db.conn.execute(
        "SELECT e.call_id, e.data, COALESCE(c.queue, '') AS queue FROM events e LEFT JOIN calls c ON c.id = e.call_id "
        "WHERE e.event = ? AND CASE WHEN json_valid(e.data) THEN json_extract(e.data, '$.legs.caller') END IS NOT NULL "
        "AND NOT EXISTS "
        "(SELECT 1 FROM events d WHERE d.call_id = e.call_id AND d.event = ?) ORDER BY e.id",
        (RECOVERED, POSTCALL),
    ) as cur:
        rows = await cur.fetchall()
    out: list[OwedCall] = []
    for r in rows:
        try:
            legs = _legs_from(json.loads(r["data"]))
        except ValueError as exc:
            log.error("recovery: a recovered call's legs cannot be read", extra={"call_id": r["call_id"],
                                                                                   "problem": str(exc)})
            continue
        out.append(OwedCall(r["call_id"], r["queue"], legs))
    return out

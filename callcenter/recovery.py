"""After a crash (kill -9, power loss): close the calls the previous run left open.

At start, before the SIP port opens, every call row without an end is closed as it would have
been: its recording (cut off mid-write, with header sizes of 0) is repaired to its real length
(recordings/repair.py) and checksummed; the row gets the last moment the call is known to have
been alive (its recording's last write, or its last event), disposition ``interrupted``, a cause
that says so, and a CALLEND event. A recording the crash left but the row does not name yet (the
run died between the two) is found by its file name and linked. Nothing on disk is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recordings import files as recfiles
from recordings.exceptions import RecordingDamaged
from recordings.repair import RepairResult, repair_wav

from .storage.repos import CallRepo, EventRepo

log = logging.getLogger("callcenter.recovery")

CAUSE = "interrupted: the server stopped without ending the call (killed or crashed)"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _find_recording(data_dir: Path, row: dict[str, Any]) -> Path | None:
    if row["recording_path"]:
        return data_dir / row["recording_path"]
    try:
        started = datetime.fromisoformat(row["started_at"])
    except ValueError:
        return None
    candidate = recfiles.leg_location(data_dir / "recordings", row["id"], "caller", started)
    return candidate if candidate.is_file() else None


def _repair(path: Path) -> tuple[RepairResult | None, str]:
    try:
        return repair_wav(path), ""
    except FileNotFoundError:
        return None, "missing"
    except (RecordingDamaged, OSError) as exc:
        return None, str(exc)


async def recover(calls: CallRepo, events: EventRepo, data_dir: Path) -> int:
    """Close every open call row; returns how many."""
    rows = await calls.open_calls()
    for row in rows:
        ctx = {"call_id": row["id"]}
        fields: dict[str, Any] = {"disposition": "interrupted", "hangup_cause": CAUSE}
        last = [row["started_at"], row["last_event_at"] or row["started_at"]]
        path = _find_recording(data_dir, row)
        if path is not None:
            written = _mtime(path)  # the recorder's last write (before the repair touches the file)
            result, problem = await asyncio.to_thread(_repair, path)
            if result is not None:
                if written is not None:
                    last.append(_iso(written))
                fields.update(recording_path=str(path.relative_to(data_dir)), recording_sha256=result.sha256,
                              recording_bytes=result.bytes, recording_seconds=round(result.seconds, 3))
                if result.repaired:
                    log.warning("repaired a recording cut off by a crash", extra={**ctx, "note": result.note})
            else:
                log.error("recording of an interrupted call is unusable", extra={**ctx, "problem": problem})
        fields["ended_at"] = max(last)
        await calls.update(row["id"], **fields)
        await events.append("CALLEND", row["id"], at=fields["ended_at"], disposition="interrupted", cause=CAUSE)
        log.warning("closed a call left open by the previous run", extra={**ctx, "ended_at": fields["ended_at"]})
    return len(rows)


"""After a step of bench/capacity.py (and capacity_ivr.py, capacity_short.py): did every call
complete as it should, with a good recording?

The server's call rows in its database and their recordings, the floor's recordings, and a spot
check that recordings carry the echoed prompt (caller audio). For calls the caller hangs up, also
the IVR path of each call (its IVR_* rows in the events table): the key pressed must be there,
heard by RFC 4733. A few bad recordings are kept as evidence; the rest are deleted to keep the
disk free.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sqlite3
import sys
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from voice.audio import read_wav  # noqa: E402


def audible(path: Path) -> bool:
    """True if a recording carries sound (the echoed prompt), not just silence."""
    try:
        audio = read_wav(path)
    except Exception:
        return False
    x = audio.samples.astype(np.float64)
    frame = max(1, audio.rate // 50)
    n = len(x) // frame
    if n == 0:
        return False
    rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
    return bool((rms > 300).mean() > 0.2)


def wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / w.getframerate() if w.getframerate() else 0.0
    except (OSError, wave.Error, EOFError):
        return 0.0


def keep_files(files: list[Path], evidence: Path | None, n: int = 5) -> None:
    if evidence is None or not files:
        return
    (evidence / "recordings").mkdir(parents=True, exist_ok=True)
    for path in files[:n]:
        shutil.copyfile(path, evidence / "recordings" / path.name)


def spot_check(paths: list[Path], n: int = 8) -> list[str]:
    """A few recordings must carry the echoed prompt (caller audio), not silence."""
    sample = random.sample(paths, min(n, len(paths)))
    return [f"recording {p.name} is silent: no caller audio" for p in sample if not audible(p)]


def check_server_calls(data_dir: Path, since_rowid: int, expected: int, prompt_s: float,
                       evidence: Path | None = None) -> tuple[int, list[str], int]:
    """The server's calls after row `since_rowid` of its database: (calls completed with a good
    recording, what went wrong, the last row read). Deletes the recordings afterwards."""
    db = data_dir / "callcenter.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT rowid, id, disposition, hangup_cause, codec, recording_path, recording_bytes, "
            "recording_seconds FROM calls WHERE rowid > ? ORDER BY rowid", (since_rowid,)).fetchall()
    last_rowid = rows[-1][0] if rows else since_rowid
    good, problems, paths, bad = 0, [], [], []
    for _, call_id, disposition, cause, codec, path, nbytes, seconds in rows:
        if disposition == "completed" and path and (seconds or 0) >= 0.8 * prompt_s:
            good += 1
            paths.append(data_dir / path)
            continue
        now = ""
        if path:
            file = data_dir / path
            bad.append(file)
            size = file.stat().st_size if file.exists() else None
            now = f"; on disk now: {size} bytes, {wav_seconds(file):.2f} s"
        problems.append(f"call {call_id}: disposition={disposition} cause={cause!r} codec={codec} "
                        f"recording_bytes={nbytes} recording_seconds={seconds}{now}")
    if len(rows) != expected:
        problems.insert(0, f"{len(rows)} call rows in the database for {expected} calls placed")
    if bad:
        problems.insert(0, f"{len(bad)} of {len(rows)} calls have a recording shorter than "
                           f"{0.8 * prompt_s:.1f} s in the database")
    problems += spot_check(paths)
    keep_files(bad, evidence)
    shutil.rmtree(data_dir / "recordings", ignore_errors=True)  # keep the disk free
    return good, problems, last_rowid


def check_ivr_calls(data_dir: Path, since_rowid: int, expected: int, min_seconds: float, key: str | None,
                    evidence: Path | None = None, key_required: bool = True
                    ) -> tuple[int, list[str], int, dict[str, int], int]:
    """The server's calls after row `since_rowid`, each hung up by the caller: (calls that are
    good, what went wrong, the last row read, how many calls took each IVR path, calls whose key
    was not heard). A good call is closed as ``caller_hangup`` with a recording of at least
    `min_seconds` and, if `key` is given and `key_required`, an IVR_KEY event for it with source
    ``rfc4733``. A path is the call's IVR nodes, in order."""
    db = data_dir / "callcenter.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        deadline = time.monotonic() + 5  # the server commits its writes in batches, a little later
        while True:
            rows = conn.execute(
                "SELECT rowid, id, disposition, hangup_cause, recording_path, recording_seconds FROM calls "
                "WHERE rowid > ? ORDER BY rowid", (since_rowid,)).fetchall()
            if (len(rows) >= expected and all(r[2] for r in rows)) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        ids = [r[1] for r in rows]
        trail: dict[str, list[tuple[str, dict[str, object]]]] = {i: [] for i in ids}
        if ids:
            first = conn.execute("SELECT MIN(id) FROM events WHERE call_id = ?", (ids[0],)).fetchone()[0] or 0
            for call_id, event, data in conn.execute(
                    "SELECT call_id, event, data FROM events WHERE id >= ? AND event IN ('IVR_NODE', 'IVR_KEY') "
                    "ORDER BY id", (first,)):
                if call_id in trail:
                    trail[call_id].append((event, json.loads(data)))
    last_rowid = rows[-1][0] if rows else since_rowid
    good, problems, paths, bad = 0, [], [], []
    notes: list[str] = []  # calls whose key was not heard, when that is not a failure
    tally: dict[str, int] = {}
    missed = 0
    for _, call_id, disposition, cause, path, seconds in rows:
        steps = trail[call_id]
        route = " > ".join(str(d.get("node")) for e, d in steps if e == "IVR_NODE")
        keys = [(d.get("digit"), d.get("source")) for e, d in steps if e == "IVR_KEY"]
        tally[route] = tally.get(route, 0) + 1
        wrong = []
        if disposition != "caller_hangup":
            wrong.append(f"disposition={disposition} cause={cause!r}")
        if not path or (seconds or 0) < min_seconds:
            wrong.append(f"recording {path} of {seconds} s (< {min_seconds:.1f} s)")
            if path:
                bad.append(data_dir / path)
        no_key = key is not None and (key, "rfc4733") not in keys
        if no_key:
            missed += 1
            (wrong if key_required else notes).append(
                f"call {call_id}: no IVR_KEY {key} by rfc4733 (keys: {keys}; path: {route})")
        if wrong:
            problems.append(f"call {call_id}: " + "; ".join(w.removeprefix(f"call {call_id}: ") for w in wrong))
        if (wrong or no_key) and len(problems) + len(notes) <= 6:
            (problems if wrong else notes).append(f"  its events: {event_trail(db, call_id)}")
        if not wrong:
            good += 1
            paths.append(data_dir / path)
    if len(rows) != expected:
        problems.insert(0, f"{len(rows)} call rows in the database for {expected} calls placed")
    problems += spot_check(paths)
    keep_files(bad, evidence)
    if notes and evidence is not None:
        evidence.mkdir(parents=True, exist_ok=True)
        (evidence / "keys-not-heard.txt").write_text("\n".join(notes) + "\n")
    shutil.rmtree(data_dir / "recordings", ignore_errors=True)  # keep the disk free
    return good, problems, last_rowid, tally, missed


def event_trail(db: Path, call_id: str) -> str:
    """A call's events with their times, for the evidence of a bad call."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute("SELECT at, event, data FROM events WHERE call_id = ? ORDER BY id", (call_id,)).fetchall()
    return " | ".join(f"{at[11:23]} {event} {data}" for at, event, data in rows)


def check_floor_recordings(rec_dir: Path, expected: int, prompt_s: float, evidence: Path | None = None,
                           min_share: float = 0.8) -> tuple[int, list[str]]:
    """The floor's recordings in `rec_dir`: (calls with a recording of at least `min_share` of
    `prompt_s`, what went wrong). Deletes the recordings afterwards."""
    files = sorted(rec_dir.glob("*.wav"))
    good, problems, paths, bad = 0, [], [], []
    for path in files:
        seconds = wav_seconds(path)
        if seconds >= min_share * prompt_s:
            good += 1
            paths.append(path)
        else:
            bad.append(path)
            problems.append(f"recording {path.name}: {path.stat().st_size} bytes, {seconds:.2f} s")
    if len(files) != expected:
        problems.insert(0, f"{len(files)} recordings for {expected} calls placed")
    if bad:
        problems.insert(0, f"{len(bad)} of {len(files)} recordings are shorter than {min_share * prompt_s:.1f} s")
    problems += spot_check(paths)
    keep_files(bad, evidence)
    for path in files:
        path.unlink()
    return good, problems

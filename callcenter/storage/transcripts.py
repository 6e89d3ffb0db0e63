"""Recordings, transcription jobs and transcripts: the SQL over migration 005's tables.

* ``RecordingRepo``: one row per file of a call (caller / agent leg, stereo mix, redacted copy), upserted
  by (call, leg); the retention purge reads and deletes them (``recordings.retention.RetentionStore``).
* ``JobRepo``: post-call work as rows. ``enqueue`` is idempotent by call; ``lease`` atomically takes the oldest
  queued job or a running one whose lease ran out (its holder crashed); ``done`` is terminal; a job that keeps
  failing (or keeps killing its worker) ends ``failed`` after ``max_attempts`` leases.
* ``TranscriptRepo.store`` writes a transcript and its analysis, replacing whatever an earlier attempt stored
  for the call, in one transaction: a retried job never duplicates utterances, hits, scores or emotion rows,
  and a QA reviewer's override of a score survives a re-run.

Multi-statement writes run as one transaction on aiosqlite's thread (``transaction``): the same private
``Connection._execute`` hop the group-commit writer uses (callcenter/storage/db.py), after a flush, so they
are ordered after every write queued before them and nothing else runs between their statements.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from asr.transcript import Transcript
from recordings.retention import Expirable

from ..exceptions import CallCenterError
from .db import Database, Params, utcnow

LEGS = ("caller", "agent", "stereo", "redacted")
JOB_STATES = ("queued", "running", "done", "failed")
Statement = tuple[str, Params]


class JobStateError(CallCenterError):
    """A job cannot be changed so (no such job; retrying one that is not failed)."""


# -- one transaction on aiosqlite's thread ------------------------------------------------------------
def _atomic(conn: aiosqlite.Connection, stmts: Sequence[Statement]) -> list[tuple[int, list[sqlite3.Row]]]:
    c = conn._conn
    c.execute("SAVEPOINT cc_tx")
    try:
        out = []
        for sql, params in stmts:
            cur = c.execute(sql, params)
            rows = cur.fetchall()
            out.append((cur.rowcount, rows))
        c.execute("RELEASE cc_tx")
        if c.in_transaction:
            c.commit()
        return out
    except BaseException:
        if c.in_transaction:
            try:
                c.execute("ROLLBACK TO cc_tx")
                c.execute("RELEASE cc_tx")
            except sqlite3.Error:
                c.rollback()
        raise


async def transaction(db: Database, stmts: Sequence[Statement]) -> list[tuple[int, list[sqlite3.Row]]]:
    """Run ``stmts`` in one transaction (all or nothing); per statement: (rowcount, rows it returned)."""
    await db.flush()
    result: list[tuple[int, list[sqlite3.Row]]] = await db.conn._execute(_atomic, db.conn, list(stmts))
    return result


# -- recordings -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecordingRow:
    id: int
    call_id: str
    leg: str
    path: str               # relative to the data directory
    sha256: str
    bytes: int
    seconds: float
    offset_s: float
    pauses: tuple[tuple[float, float], ...]
    created_at: str


def _recording(r: Any) -> RecordingRow:
    return RecordingRow(r["id"], r["call_id"], r["leg"], r["path"], r["sha256"], r["bytes"], r["seconds"],
                        r["offset_s"], tuple((float(a), float(b)) for a, b in json.loads(r["pauses"])),
                        r["created_at"])


class RecordingRepo:
    """The files of each call; also the ``RetentionStore`` the purge works through."""

    _COLS = "id, call_id, leg, path, sha256, bytes, seconds, offset_s, pauses, created_at"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, call_id: str, leg: str, path: str, sha256: str, size: int, seconds: float, *,
                  offset_s: float = 0.0, pauses: Iterable[tuple[float, float]] = ()) -> None:
        """Register (or re-register: same call and leg) one file; ``created_at`` stays that of the first time."""
        if leg not in LEGS:
            raise ValueError(f"recording leg must be one of {', '.join(LEGS)}, not {leg!r}")
        spans = json.dumps([[round(float(a), 3), round(float(b), 3)] for a, b in pauses])
        await self.db.write(
            "INSERT INTO recordings (call_id, leg, path, sha256, bytes, seconds, offset_s, pauses, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, leg) DO UPDATE SET path = excluded.path, "
            "sha256 = excluded.sha256, bytes = excluded.bytes, seconds = excluded.seconds, "
            "offset_s = excluded.offset_s, pauses = excluded.pauses",
            (call_id, leg, path, sha256, size, round(seconds, 3), round(offset_s, 3), spans, utcnow()))

    async def for_call(self, call_id: str) -> dict[str, RecordingRow]:
        """The call's files by leg."""
        await self.db.flush()
        async with self.db.conn.execute(f"SELECT {self._COLS} FROM recordings WHERE call_id = ?", (call_id,)) as cur:
            return {r["leg"]: _recording(r) for r in await cur.fetchall()}

    # RetentionStore
    async def recordings_before(self, cutoff: str, after_id: int, limit: int) -> list[Expirable]:
        """Rows created before ``cutoff`` (ISO 8601 UTC) with id > ``after_id``, with their call's queue."""
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT r.id, r.call_id, r.leg, r.path, r.bytes, r.created_at, COALESCE(c.queue, '') AS queue "
            "FROM recordings r LEFT JOIN calls c ON c.id = r.call_id "
            "WHERE r.created_at < ? AND r.id > ? ORDER BY r.id LIMIT ?", (cutoff, after_id, limit)
        ) as cur:
            return [Expirable(r["id"], r["call_id"], r["leg"], r["path"], r["bytes"], r["created_at"], r["queue"])
                    for r in await cur.fetchall()]

    async def delete_recordings(self, rows: Sequence[Expirable]) -> None:
        """Delete the rows in one transaction; the call row forgets a deleted leg's path too."""
        stmts: list[Statement] = []
        for r in rows:
            stmts.append(("DELETE FROM recordings WHERE id = ?", (r.id,)))
            if r.leg in ("caller", "agent"):
                col = "recording" if r.leg == "caller" else "agent_recording"
                stmts.append((f"UPDATE calls SET {col}_path = NULL WHERE id = ? AND {col}_path = ?",
                              (r.call_id, r.path)))
        if stmts:
            await transaction(self.db, stmts)

    async def transcripts_before(self, cutoff: str, after_id: int, limit: int) -> list[Expirable]:
        """Transcripts created before ``cutoff`` (leg "transcript": the JSON path, the WebVTT as ``extra``)."""
        await self.db.flush()
        async with self.db.conn.execute(
            "SELECT t.rowid AS id, t.call_id, t.json_path, t.vtt_path, t.created_at, COALESCE(c.queue, '') AS queue "
            "FROM transcripts t LEFT JOIN calls c ON c.id = t.call_id "
            "WHERE t.created_at < ? AND t.rowid > ? ORDER BY t.rowid LIMIT ?", (cutoff, after_id, limit)
        ) as cur:
            rows = await cur.fetchall()
        out = []
        for r in rows:
            size = sum(_size(self.db, p) for p in (r["json_path"], r["vtt_path"]))
            out.append(Expirable(r["id"], r["call_id"], "transcript", r["json_path"], size, r["created_at"], r["queue"],
                                 (r["vtt_path"],)))
        return out

    async def delete_transcripts(self, rows: Sequence[Expirable]) -> None:
        """Delete the transcripts and their utterances in one transaction (hits, scores and emotion stay)."""
        stmts: list[Statement] = []
        for r in rows:
            stmts += [("DELETE FROM utterances WHERE call_id = ?", (r.call_id,)),
                      ("DELETE FROM transcripts WHERE call_id = ?", (r.call_id,))]
        if stmts:
            await transaction(self.db, stmts)


def _size(db: Database, rel: str) -> int:
    try:
        return (db.path.parent / rel).stat().st_size
    except OSError:
        return 0


# -- jobs ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Job:
    id: int
    call_id: str
    state: str
    attempts: int
    worker: str
    lease_until: float
    error: str
    created_at: str
    updated_at: str


def _job(r: Any) -> Job:
    return Job(r["id"], r["call_id"], r["state"], r["attempts"], r["worker"], r["lease_until"], r["error"],
               r["created_at"], r["updated_at"])


class JobRepo:
    _COLS = "id, call_id, state, attempts, worker, lease_until, error, created_at, updated_at"

    def __init__(self, db: Database, *, max_attempts: int = 3) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {max_attempts!r}")
        self.db = db
        self.max_attempts = max_attempts

    async def enqueue(self, call_id: str) -> bool:
        """Queue the call's transcription; False if it has a job already (whatever its state)."""
        now = utcnow()
        [(count, _)] = await transaction(self.db, [(
            "INSERT INTO transcription_jobs (call_id, created_at, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (call_id) DO NOTHING", (call_id, now, now))])
        return count == 1

    async def lease(self, worker: str, lease_s: float, now: float) -> Job | None:
        """Take the oldest queued job, or a running one whose lease expired before ``now`` (epoch s), for
        ``lease_s`` seconds; counts an attempt. An expired job that has had all its attempts ends failed."""
        stamp = utcnow()
        _, (_, rows) = await transaction(self.db, [
            ("UPDATE transcription_jobs SET state = 'failed', worker = '', updated_at = ?, "
             "error = 'its worker died (lease expired) on each of ' || attempts || ' attempts' "
             "WHERE state = 'running' AND lease_until < ? AND attempts >= ?", (stamp, now, self.max_attempts)),
            (f"UPDATE transcription_jobs SET state = 'running', worker = ?, lease_until = ?, attempts = attempts + 1, "
             f"updated_at = ? WHERE id = (SELECT id FROM transcription_jobs WHERE state = 'queued' "
             f"OR (state = 'running' AND lease_until < ?) ORDER BY id LIMIT 1) RETURNING {self._COLS}",
             (worker, now + lease_s, stamp, now)),
        ])
        return _job(rows[0]) if rows else None

    async def _update(self, sql: str, params: Params) -> bool:
        [(count, _)] = await transaction(self.db, [(sql, params)])
        return count == 1

    async def renew(self, job_id: int, worker: str, lease_until: float) -> bool:
        """Extend a running job's lease; False if it is no longer this worker's."""
        return await self._update(
            "UPDATE transcription_jobs SET lease_until = ?, updated_at = ? "
            "WHERE id = ? AND worker = ? AND state = 'running'", (lease_until, utcnow(), job_id, worker))

    async def complete(self, job_id: int, worker: str) -> bool:
        """Mark done (terminal); False if the job is no longer this worker's."""
        return await self._update(
            "UPDATE transcription_jobs SET state = 'done', error = '', lease_until = 0, updated_at = ? "
            "WHERE id = ? AND worker = ? AND state = 'running'", (utcnow(), job_id, worker))

    async def fail(self, job_id: int, worker: str, error: str, *, retry: bool = True) -> str | None:
        """Record a failed attempt: back to queued while attempts remain (and ``retry``), else failed.
        Returns the new state (None if the job is no longer this worker's)."""
        [(_, rows)] = await transaction(self.db, [(
            "UPDATE transcription_jobs SET state = CASE WHEN ? AND attempts < ? THEN 'queued' ELSE 'failed' END, "
            "error = ?, worker = '', lease_until = 0, updated_at = ? WHERE id = ? AND worker = ? AND state = 'running' "
            "RETURNING state", (int(retry), self.max_attempts, error[:2000], utcnow(), job_id, worker))])
        return str(rows[0]["state"]) if rows else None

    async def release(self, job_id: int, worker: str) -> bool:
        """Give a running job back unfinished (the server is stopping): queued, the attempt not counted."""
        return await self._update(
            "UPDATE transcription_jobs SET state = 'queued', worker = '', lease_until = 0, "
            "attempts = MAX(0, attempts - 1), updated_at = ? WHERE id = ? AND worker = ? AND state = 'running'",
            (utcnow(), job_id, worker))

    async def expire_worker(self, worker: str) -> int:
        """At start: this worker id's running jobs are from a run that died; let them be leased again now."""
        [(count, _)] = await transaction(self.db, [(
            "UPDATE transcription_jobs SET lease_until = 0, updated_at = ? WHERE worker = ? AND state = 'running'",
            (utcnow(), worker))])
        return count

    async def retry(self, job_id: int) -> Job:
        """Queue a failed job again with fresh attempts (JobStateError for any other state: done is terminal)."""
        job = await self.get(job_id)
        if job is None:
            raise JobStateError(f"no transcription job {job_id}")
        if job.state != "failed":
            raise JobStateError(f"job {job_id} is {job.state}: only a failed job can be retried")
        if not await self._update(
                "UPDATE transcription_jobs SET state = 'queued', attempts = 0, error = '', updated_at = ? "
                "WHERE id = ? AND state = 'failed'", (utcnow(), job_id)):
            raise JobStateError(f"job {job_id} changed meanwhile: look again")
        again = await self.get(job_id)
        assert again is not None
        return again

    async def get(self, job_id: int) -> Job | None:
        await self.db.flush()
        async with self.db.conn.execute(f"SELECT {self._COLS} FROM transcription_jobs WHERE id = ?",
                                        (job_id,)) as cur:
            row = await cur.fetchone()
        return _job(row) if row else None

    async def for_call(self, call_id: str) -> Job | None:
        await self.db.flush()
        async with self.db.conn.execute(f"SELECT {self._COLS} FROM transcription_jobs WHERE call_id = ?",
                                        (call_id,)) as cur:
            row = await cur.fetchone()
        return _job(row) if row else None

    async def list(self, state: str | None = None, limit: int = 50) -> list[Job]:
        """Newest first (optionally of one state)."""
        if state is not None and state not in JOB_STATES:
            raise ValueError(f"job state must be one of {', '.join(JOB_STATES)}, not {state!r}")
        await self.db.flush()
        where, params = ("WHERE state = ?", (state, limit)) if state else ("", (limit,))
        async with self.db.conn.execute(
                f"SELECT {self._COLS} FROM transcription_jobs {where} ORDER BY id DESC LIMIT ?", params) as cur:
            return [_job(r) for r in await cur.fetchall()]

    async def counts(self) -> dict[str, int]:
        await self.db.flush()
        async with self.db.conn.execute("SELECT state, COUNT(*) FROM transcription_jobs GROUP BY state") as cur:
            got = {r[0]: r[1] for r in await cur.fetchall()}
        return {s: got.get(s, 0) for s in JOB_STATES}


# -- transcripts and analysis ---------------------------------------------------------------------------------
def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of an analysis item given as a dataclass/object or as a plain dict (what the workers return)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _transcript(value: Any) -> Transcript | None:
    if value is None or isinstance(value, Transcript):
        return value
    return Transcript.from_dict(dict(value))


class TranscriptRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store(self, call_id: str, transcript: Transcript, analysis: Any, json_path: str, vtt_path: str) -> None:
        """Store the call's transcript and analysis in one transaction, replacing any earlier ones of the call.

        ``analysis``: an ``asr.analysis.Analysis`` or its plain-dict form (hits, scores, emotion, ends_angry,
        redacted), or None (no rules configured). The utterance rows hold the redacted text when there is one.
        A reviewer's score, reviewer and comment on an item are kept; items the scorecards no longer produce
        go, unless a reviewer scored them.
        """
        redacted = _transcript(_get(analysis, "redacted")) if analysis is not None else None
        shown = redacted or transcript
        now = utcnow()
        words = sum(len(u.words) for u in shown.utterances)
        stmts: list[Statement] = [
            ("DELETE FROM utterances WHERE call_id = ?", (call_id,)),
            ("DELETE FROM keyword_hits WHERE call_id = ?", (call_id,)),
            ("DELETE FROM call_emotion WHERE call_id = ?", (call_id,)),
            ("INSERT OR REPLACE INTO transcripts (call_id, engine, model, language, duration_s, json_path, vtt_path, "
             "words, redacted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             (call_id, transcript.engine, transcript.model, transcript.language, round(transcript.duration_s, 3),
              json_path, vtt_path, words, int(redacted is not None and redacted != transcript), now)),
        ]
        stmts += [("INSERT INTO utterances (call_id, speaker, start_s, end_s, text, confidence) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (call_id, u.speaker, round(u.start, 3), round(u.end, 3), u.text, round(u.confidence, 4)))
                  for u in shown.utterances]
        if analysis is not None:
            stmts += self._analysis(call_id, analysis, now)
        await transaction(self.db, stmts)

    @staticmethod
    def _analysis(call_id: str, analysis: Any, now: str) -> list[Statement]:
        stmts: list[Statement] = [
            ("INSERT INTO keyword_hits (call_id, rule, category, speaker, start_s, end_s, phrase, source, created_at) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
             (call_id, _get(h, "rule"), _get(h, "category", "") or "", _get(h, "speaker", "") or "",
              round(float(_get(h, "start", 0.0)), 3), round(float(_get(h, "end", 0.0)), 3),
              _get(h, "phrase", "") or "", _get(h, "source", "transcript") or "transcript", now))
            for h in _get(analysis, "hits", ()) or ()]
        keep = []
        for s in _get(analysis, "scores", ()) or ():
            auto = _get(s, "auto_score")
            keep.append((str(_get(s, "scorecard")), str(_get(s, "item"))))
            stmts.append((
                "INSERT INTO qa_scores (call_id, scorecard, item, weight, auto_score, evidence, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, scorecard, item) DO UPDATE SET "
                "weight = excluded.weight, auto_score = excluded.auto_score, evidence = excluded.evidence, "
                "updated_at = excluded.updated_at",
                (call_id, keep[-1][0], keep[-1][1], float(_get(s, "weight", 1.0)),
                 None if auto is None else float(auto), str(_get(s, "evidence", "") or ""), now)))
        stmts.append((
            "DELETE FROM qa_scores WHERE call_id = ? AND score IS NULL AND (scorecard, item) NOT IN "
            "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
            (call_id, json.dumps(keep))))
        stmts += [("INSERT INTO call_emotion (call_id, speaker, quarter, lexicon, pitch_hz, energy_db, rate_wps, "
                   "score) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (call_id, _get(e, "speaker"), int(_get(e, "quarter")), float(_get(e, "lexicon", 0.0)),
                    float(_get(e, "pitch_hz", 0.0) or 0.0), float(_get(e, "energy_db", 0.0) or 0.0),
                    float(_get(e, "rate_wps", 0.0) or 0.0), float(_get(e, "score", 0.0))))
                  for e in _get(analysis, "emotion", ()) or ()]
        angry = int(bool(_get(analysis, "ends_angry")))
        stmts.append(("UPDATE calls SET ends_angry = ? WHERE id = ?", (angry, call_id)))
        return stmts

    async def get(self, call_id: str) -> dict[str, Any] | None:
        await self.db.flush()
        async with self.db.conn.execute("SELECT * FROM transcripts WHERE call_id = ?", (call_id,)) as cur:
            row = await cur.fetchone()
        return dict(row) if row else None

    async def counts(self, call_id: str) -> dict[str, int]:
        """Rows the call has in each transcript table (for tests and `jobs list`)."""
        await self.db.flush()
        out = {}
        for table in ("transcripts", "utterances", "keyword_hits", "qa_scores", "call_emotion"):
            async with self.db.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE call_id = ?", (call_id,)) as cur:
                row = await cur.fetchone()
            out[table] = int(row[0]) if row else 0
        return out

"""The transcription job runner: leases job rows, runs them in worker processes, stores what they return.

The asyncio side (this module) owns the database and the files; the CPU-bound side (transcription_worker.py)
runs in worker processes, one per core by default. Each worker slot is its own single-process pool
(``ProcessPoolExecutor(max_workers=1)``, spawn context: the server has threads, so never fork): a worker
killed mid-job (``BrokenProcessPool``) takes down only its own job, which is thus known for certain; the slot's
pool is rebuilt and the job retried (an attempt counted, so a job that kills its worker every time ends
``failed`` after ``max_attempts``). The pool initializer loads the model once per process.

Resumable and idempotent:

* a job is a row (callcenter/storage/transcripts.py): leased for ``lease_s`` seconds and renewed while it runs;
  a server killed mid-job leaves it ``running`` with a lease that runs out, and a later run leases it again (a
  run with the same worker id takes back its own jobs at once);
* the parent writes ``<data_dir>/transcripts/YYYY/MM/DD/<call id>.json`` and ``.vtt`` (atomically; the day is
  the job's) and the rows with ``TranscriptRepo.store``, which replaces whatever an earlier attempt stored,
  then marks the job ``done``. ``done`` is terminal: a call is never transcribed twice once done.

``run()`` works until cancelled or ``stop()``; ``stop()`` gives unfinished jobs back (not counted as attempts),
ends the worker processes and joins the pools, leaving no task, thread or process behind. Progress is logged
per job (call id, attempt, audio seconds, speed) with the queue's counts.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asr.exceptions import AsrError
from asr.transcript import Transcript
from recordings.exceptions import RecordingError

from .storage.db import Database
from .storage.transcripts import Job, JobRepo, RecordingRepo, RecordingRow, TranscriptRepo
from .transcription_worker import (
    Analyzer,
    JobInput,
    Transcriber,
    WorkerConfig,
    default_analyzer,
    default_transcriber,
    default_warm,
    init_worker,
    run_job,
)

log = logging.getLogger("callcenter.transcription")
PERMANENT = (AsrError, RecordingError, FileNotFoundError)  # retrying cannot help: the job fails at once


@dataclass(slots=True)
class RunnerStats:
    done: int = 0
    failed: int = 0
    retried: int = 0
    pool_restarts: int = 0         # worker processes lost mid-job
    audio_s: float = 0.0           # audio transcribed
    work_s: float = 0.0            # worker wall time spent on it
    cpu_s: float = 0.0             # worker CPU time spent on it
    pids: set[int] = field(default_factory=set)   # worker processes that ran jobs


@dataclass(slots=True)
class _Slot:
    index: int
    pool: ProcessPoolExecutor | None = None
    job: Job | None = None
    future: asyncio.Future[dict[str, Any]] | None = None
    started: float = 0.0


class JobRunner:
    def __init__(self, db: Database, data_dir: Path, *, workers: int | None = None, engine: str = "pocketsphinx",
                 vosk_model: Path | None = None, language: str = "en", rules_path: Path | None = None,
                 scorecards_path: Path | None = None, transcriber: Transcriber = default_transcriber,
                 analyzer: Analyzer | None = default_analyzer, warm: Any = default_warm, lease_s: float = 120.0,
                 max_attempts: int = 3, poll_s: float = 2.0, worker_id: str | None = None,
                 mp_context: str = "spawn") -> None:
        if mp_context == "fork":
            raise ValueError("the job runner's pool must not fork a threaded server: use 'spawn' or 'forkserver'")
        if lease_s <= 0 or poll_s <= 0:
            raise ValueError(f"lease_s and poll_s must be > 0 (got {lease_s}, {poll_s})")
        self.db = db
        self.data_dir = data_dir
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.language = language
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.worker_id = worker_id or socket.gethostname()
        self.jobs = JobRepo(db, max_attempts=max_attempts)
        self.recordings = RecordingRepo(db)
        self.transcripts = TranscriptRepo(db)
        self.config = WorkerConfig(engine=engine, vosk_model=str(vosk_model) if vosk_model else None,
                                   language=language,
                                   rules_path=str(rules_path) if rules_path else None,
                                   scorecards_path=str(scorecards_path) if scorecards_path else None,
                                   transcriber=transcriber, analyzer=analyzer, warm=warm)
        self._ctx = multiprocessing.get_context(mp_context)
        self._slots = [_Slot(i) for i in range(self.workers)]
        self._wake: asyncio.Future[None] | None = None
        self._stopping = False
        self._running = False
        self._stopped = asyncio.Event()
        self._next_renew = 0.0
        self.stats = RunnerStats()

    # -- control --------------------------------------------------------------------------------------------
    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def stop(self) -> None:
        """Stop ``run()``: unfinished jobs are given back, worker processes ended, pools joined."""
        self._stopping = True
        self.wake()
        if self._running:
            await self._stopped.wait()
        else:
            await self._shutdown()

    async def run(self, *, until_idle: bool = False) -> None:
        """Lease and run jobs until cancelled or stopped (``until_idle``: until no job is queued or running)."""
        if self._running:
            raise RuntimeError("JobRunner.run() is already running")
        self._running, self._stopping = True, False
        self._stopped.clear()
        loop = asyncio.get_running_loop()
        try:
            taken = await self.jobs.expire_worker(self.worker_id)
            if taken:
                log.warning("transcription: taking back jobs a previous run left running",
                            extra={"jobs": taken, "worker": self.worker_id})
            log.info("transcription: runner started", extra={"workers": self.workers, "worker": self.worker_id,
                                                            "engine": self.config.engine})
            self._next_renew = loop.time() + self.lease_s / 3
            errors = 0
            while not self._stopping:
                try:
                    busy = await self._step(until_idle)
                    errors = 0
                except Exception:          # the database went away, a disk filled up: log, back off, go on
                    errors += 1
                    log.exception("transcription: runner step failed; retrying", extra={"errors": errors})
                    self._wake = loop.create_future()     # (stop() still wakes it)
                    await asyncio.wait({self._wake}, timeout=min(30.0, self.poll_s * 2 ** min(errors, 10)))
                    self._wake = None
                    continue
                if busy is None:
                    return
        finally:
            self._wake = None
            await self._shutdown()
            self._running = False
            self._stopped.set()
            log.info("transcription: runner stopped", extra={"done": self.stats.done, "failed": self.stats.failed})

    async def _step(self, until_idle: bool) -> int | None:
        """Fill the idle slots, wait for a result, a wake-up or the poll interval; store what finished.
        Returns how many jobs were running (None: idle, and ``until_idle`` asked to return then)."""
        loop = asyncio.get_running_loop()
        await self._fill()
        busy = [s for s in self._slots if s.future is not None]
        if until_idle and not busy:
            return None
        self._wake = loop.create_future()
        timeout = max(0.0, min(self.poll_s, self._next_renew - loop.time()))
        waiting: set[asyncio.Future[Any]] = {self._wake, *(s.future for s in busy if s.future)}
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        self._wake = None
        for slot in busy:
            if slot.future is not None and slot.future.done():
                await self._finish(slot)
        if loop.time() >= self._next_renew:
            await self._renew()
            self._next_renew = loop.time() + self.lease_s / 3
        return len(busy)

    # -- leasing and submitting ----------------------------------------------------------------------------
    async def _fill(self) -> None:
        for slot in self._slots:
            while slot.future is None and not self._stopping:   # (a job that cannot start frees the slot again)
                job = await self.jobs.lease(self.worker_id, self.lease_s, time.time())
                if job is None:
                    return
                await self._start(slot, job)

    async def _start(self, slot: _Slot, job: Job) -> None:
        rows = await self.recordings.for_call(job.call_id)
        inp = self._input(job, rows)
        if inp is None:
            await self._failed(job, "the call has no caller or agent recording", retry=False)
            return
        log.info("transcription: job started", extra={"call_id": job.call_id, "job": job.id,
                                                       "attempt": job.attempts, "slot": slot.index})
        slot.job, slot.started = job, time.perf_counter()
        problem = "the worker pool broke twice"
        for _ in range(2):
            try:
                if slot.pool is None:
                    slot.pool = ProcessPoolExecutor(max_workers=1, mp_context=self._ctx, initializer=init_worker,
                                                    initargs=(self.config,))
                cf: Future[dict[str, Any]] = slot.pool.submit(run_job, inp)
            except BrokenProcessPool:      # it broke while idle: a new one
                await self._discard_pool(slot)
                continue
            except Exception as exc:       # no process could be started (out of memory, too many processes)
                problem = f"{type(exc).__name__}: {exc}"
                break
            slot.future = asyncio.wrap_future(cf)
            return
        slot.job = None
        await self._failed(job, f"could not start a worker process: {problem}", retry=True)

    def _path(self, row: RecordingRow | None) -> str | None:
        if row is None:
            return None
        p = Path(row.path)
        return str(p if p.is_absolute() else self.data_dir / p)

    def _input(self, job: Job, rows: dict[str, RecordingRow]) -> JobInput | None:
        caller, agent, stereo = rows.get("caller"), rows.get("agent"), rows.get("stereo")
        if caller is None and agent is None:
            return None
        redacted_out = None
        if stereo is not None:
            s = Path(self._path(stereo) or "")
            redacted_out = str(s.with_name(f"{job.call_id}.redacted.wav"))
        base = caller.offset_s if caller else 0.0
        return JobInput(job.id, job.call_id, self._path(caller), self._path(agent),
                        max(0.0, agent.offset_s - base) if agent else 0.0, self._path(stereo), redacted_out,
                        self.language)

    # -- results ----------------------------------------------------------------------------------------------
    async def _finish(self, slot: _Slot) -> None:
        job, fut = slot.job, slot.future
        slot.job, slot.future = None, None
        assert job is not None and fut is not None
        ctx = {"call_id": job.call_id, "job": job.id, "attempt": job.attempts}
        try:
            result = fut.result()
        except BrokenProcessPool:
            self.stats.pool_restarts += 1
            log.error("transcription: the worker process died mid-job; its pool is rebuilt", extra=ctx)
            await self._discard_pool(slot)
            await self._failed(job, "the worker process died mid-job", retry=True)
            return
        except PERMANENT as exc:
            await self._failed(job, f"{type(exc).__name__}: {exc}", retry=False)
            return
        except Exception as exc:
            await self._failed(job, f"{type(exc).__name__}: {exc}", retry=True)
            return
        try:
            await self._store(job, result)
        except Exception as exc:
            log.exception("transcription: could not store the result", extra=ctx)
            await self._failed(job, f"storing the result: {type(exc).__name__}: {exc}", retry=True)
            return
        if not await self.jobs.complete(job.id, self.worker_id):
            log.warning("transcription: the job's lease was lost meanwhile (stored anyway)", extra=ctx)
        self.stats.done += 1
        self.stats.audio_s += float(result["audio_s"])
        self.stats.work_s += float(result["wall_s"])
        self.stats.cpu_s += float(result["cpu_s"])
        self.stats.pids.add(int(result["pid"]))
        counts = await self.jobs.counts()
        speed = result["audio_s"] / result["wall_s"] if result["wall_s"] > 0 else 0.0
        log.info("transcription: job done", extra={**ctx, "audio_s": round(result["audio_s"], 2),
                                                   "wall_s": round(result["wall_s"], 2), "speed_x": round(speed, 2),
                                                   "queued": counts["queued"], "running": counts["running"],
                                                   "total_done": counts["done"]})

    async def _failed(self, job: Job, error: str, *, retry: bool) -> None:
        state = await self.jobs.fail(job.id, self.worker_id, error, retry=retry)
        if state == "queued":
            self.stats.retried += 1
        elif state == "failed":
            self.stats.failed += 1
        log.error("transcription: job failed" + ("; it will be retried" if state == "queued" else ""),
                  extra={"call_id": job.call_id, "job": job.id, "attempt": job.attempts, "error": error,
                         "state": state or "lost"})

    async def _store(self, job: Job, result: dict[str, Any]) -> None:
        rows = await self.recordings.for_call(job.call_id)
        raw = dict(result["transcript"])
        raw["channels"] = {speaker: rows[leg].path for speaker, leg in (("customer", "caller"), ("agent", "agent"))
                           if leg in rows}
        transcript = Transcript.from_dict(raw)
        analysis = result["analysis"]
        shown = transcript
        if analysis and analysis.get("redacted"):
            shown = Transcript.from_dict({**analysis["redacted"], "channels": raw["channels"]})
        day = datetime.fromisoformat(job.created_at).astimezone(UTC)
        rel = Path("transcripts") / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / job.call_id
        json_rel, vtt_rel = rel.with_suffix(".json"), rel.with_suffix(".vtt")
        await asyncio.to_thread(_write_files, self.data_dir, {json_rel: shown.to_json(), vtt_rel: shown.to_vtt()})
        red = result.get("redacted")
        if red:
            stereo = rows.get("stereo")
            path = Path(red["path"])
            stored = str(path.relative_to(self.data_dir)) if path.is_relative_to(self.data_dir) else str(path)
            await self.recordings.add(job.call_id, "redacted", stored, red["sha256"], int(red["bytes"]),
                                      float(red["seconds"]), offset_s=stereo.offset_s if stereo else 0.0,
                                      pauses=stereo.pauses if stereo else ())
        await self.transcripts.store(job.call_id, transcript, analysis, str(json_rel), str(vtt_rel))

    async def _renew(self) -> None:
        until = time.time() + self.lease_s
        for slot in self._slots:
            if slot.job is not None and not await self.jobs.renew(slot.job.id, self.worker_id, until):
                log.warning("transcription: lease could not be renewed (taken by another runner?)",
                            extra={"call_id": slot.job.call_id, "job": slot.job.id})

    # -- pools ------------------------------------------------------------------------------------------------
    async def _discard_pool(self, slot: _Slot) -> None:
        pool, slot.pool = slot.pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def _shutdown(self) -> None:
        """Give back unfinished jobs, end the worker processes, join the pools (shielded from cancellation)."""
        async def go() -> None:
            for slot in self._slots:
                if slot.job is not None:
                    try:
                        await self.jobs.release(slot.job.id, self.worker_id)
                        log.info("transcription: unfinished job given back",
                                 extra={"call_id": slot.job.call_id, "job": slot.job.id})
                    except Exception as exc:  # the database is gone: the lease will run out instead
                        log.error("transcription: could not give a job back",
                                  extra={"call_id": slot.job.call_id, "error": repr(exc)})
                    slot.job = None
                if slot.pool is not None:
                    _terminate(slot.pool)
                    await self._discard_pool(slot)
                if slot.future is not None:
                    slot.future.cancel()
                    try:
                        await slot.future
                    except BaseException:  # its outcome no longer matters
                        pass
                    slot.future = None
        task = asyncio.ensure_future(go())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task       # cancelled during shutdown: finish it anyway, then go on being cancelled
            raise


def _terminate(pool: ProcessPoolExecutor) -> None:
    """End a pool's worker processes now (Python 3.14 has ``terminate_workers``; before, its process table)."""
    terminate = getattr(pool, "terminate_workers", None)
    if callable(terminate):
        terminate()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()


def _write_files(data_dir: Path, files: dict[Path, str]) -> None:
    for rel, text in files.items():
        path = data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

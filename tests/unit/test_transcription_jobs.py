"""The transcription job pipeline: job rows, a pool of spawned worker processes, resumable and idempotent.

The ASR engine is stood in for by ``energy_transcriber`` below: a real (if simple-minded) recognizer that finds
each channel's speech segments from the audio's per-frame energy, so the pipeline is tested on real audio
without the cost of decoding. ``energy_analyzer`` stands in for asr.analysis in the same way. Both run in the
worker processes (they are imported there by name). One test at the end runs the real engine (pocketsphinx)
and the real analysis end to end.

Control from the test to the workers goes through files in ``$CC_JOB_TEST_DIR``: ``hang-<call>`` makes the
next attempt at that call hang (after writing ``started-<call>`` with its pid), ``calls.log`` gets one line per
transcription attempt and ``warm.log`` one per model load.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asr.transcript import Speaker, Transcript, Utterance, Word
from callcenter.post_call import LegInfo, PostCall
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo
from callcenter.storage.transcripts import Job, JobRepo, JobStateError, RecordingRepo, TranscriptRepo
from callcenter.transcription_jobs import JobRunner
from callcenter.transcription_worker import WorkerConfig

ROOT = Path(__file__).resolve().parents[2]
CTL = "CC_JOB_TEST_DIR"


# -- stand-ins that run in the worker processes ---------------------------------------------------------------
def _read(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64), w.getframerate()


def energy_segments(x: np.ndarray, rate: int, threshold: float = 500.0) -> list[tuple[float, float]]:
    """Speech = 20 ms frames whose RMS exceeds ``threshold``; gaps under 0.3 s are bridged."""
    n = rate // 50
    frames = x[: len(x) - len(x) % n].reshape(-1, n)
    loud = np.sqrt((frames ** 2).mean(axis=1)) > threshold
    out: list[tuple[float, float]] = []
    for i in np.flatnonzero(loud):
        start, end = i * 0.02, (i + 1) * 0.02
        if out and start - out[-1][1] < 0.3:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return [(round(a, 3), round(b, 3)) for a, b in out]


def _control(call_id: str) -> None:
    ctl = os.environ.get(CTL)
    if not ctl:
        return
    with open(Path(ctl) / "calls.log", "a") as f:
        f.write(f"{call_id} {os.getpid()}\n")
    hang = Path(ctl) / f"hang-{call_id}"
    if hang.exists():
        hang.unlink()
        (Path(ctl) / f"started-{call_id}").write_text(str(os.getpid()))
        time.sleep(120)


def energy_transcriber(channels: Mapping[Speaker, Path], *, engine: str, vosk_model: Path | None, call_id: str,
                       language: str) -> Transcript:
    """Stands in for the ASR engine: one utterance per energy segment, one word "voice" per quarter second."""
    _control(call_id)
    utts, duration = [], 0.0
    for speaker, path in channels.items():
        x, rate = _read(path)
        duration = max(duration, len(x) / rate)
        for a, b in energy_segments(x, rate):
            n = max(1, int((b - a) / 0.25))
            words = tuple(Word("voice", a + i * (b - a) / n, a + (i + 1) * (b - a) / n, 0.9) for i in range(n))
            utts.append(Utterance(speaker, a, b, " ".join(w.word for w in words), 0.9, words))
    utts.sort(key=lambda u: u.start)
    return Transcript(call_id, round(duration, 3), "energy", "rms", language, tuple(utts),
                      {s: str(p) for s, p in channels.items()})


def failing_transcriber(channels: Mapping[Speaker, Path], **kw: Any) -> Transcript:
    if str(kw["call_id"]).startswith("bad"):
        raise RuntimeError("engine exploded")
    return energy_transcriber(channels, **kw)


def energy_analyzer(transcript: Transcript, channels: Mapping[Speaker, Path], *, rules: Any,
                    scorecards: Any) -> dict[str, Any]:
    """Stands in for asr.analysis: a hit per customer utterance, one score, energy per quarter, a redaction."""
    customer = [u for u in transcript.utterances if u.speaker == "customer"]
    agent = [u for u in transcript.utterances if u.speaker == "agent"]
    emotion = []
    for speaker, path in channels.items():
        x, rate = _read(path)
        for q, part in enumerate(np.array_split(x, 4), 1):
            db = 20 * np.log10(max(1.0, float(np.sqrt((part ** 2).mean())) if len(part) else 1.0))
            emotion.append({"speaker": speaker, "quarter": q, "lexicon": 0.0, "energy_db": db, "score": 0.0})
    first = customer[0] if customer else None
    redacted = transcript
    if first is not None:
        redacted = Transcript(transcript.call_id, transcript.duration_s, transcript.engine, transcript.model,
                              transcript.language, tuple(Utterance(u.speaker, u.start, u.end, "[redacted]", 0.9, ())
                                                         if u is first else u for u in transcript.utterances))
    return {"hits": [{"rule": "customer_spoke", "category": "activity", "speaker": "customer", "start": u.start,
                      "end": u.end, "phrase": "voice", "source": "transcript"} for u in customer],
            "scores": [{"scorecard": "basic", "item": "agent_spoke", "weight": 2.0,
                        "auto_score": 1.0 if agent else 0.0, "evidence": f"{len(agent)} agent utterances"}],
            "emotion": emotion, "ends_angry": False, "redacted": redacted,
            "redact_intervals": {"customer": [(first.start, first.end)]} if first else {}}


def counting_warm(config: WorkerConfig) -> None:
    ctl = os.environ.get(CTL)
    if ctl:
        with open(Path(ctl) / "warm.log", "a") as f:
            f.write(f"{os.getpid()}\n")


# -- fixtures -----------------------------------------------------------------------------------------------
def burst(seconds: float, spans: list[tuple[float, float]], hz: float = 300.0, rate: int = 8000) -> np.ndarray:
    x = np.zeros(int(seconds * rate), dtype=np.int16)
    for a, b in spans:
        t = np.arange(int(a * rate), int(b * rate))
        x[t] = (8000 * np.sin(2 * np.pi * hz * t / rate)).astype(np.int16)
    return x


def write(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


@pytest.fixture
def ctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "ctl"
    d.mkdir()
    monkeypatch.setenv(CTL, str(d))
    return d


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    yield database
    await database.close()


async def add_call(db: Database, data_dir: Path, call_id: str, *, agent: bool = True) -> None:
    """A finished call as the server leaves it: caller speaks at 0.5-1.5 and 3-4 s, the agent (joined at
    2.5 s) at 1-2 s of its own leg, i.e. 3.5-4.5 s of the call."""
    await CallRepo(db).create(call_id, f"sip-{call_id}", "+15550100", "100", "127.0.0.1", "demo")
    day = data_dir / "recordings" / "2024" / "03" / "04"
    legs = {"caller": LegInfo(write(day / f"{call_id}.caller.wav", burst(6.0, [(0.5, 1.5), (3.0, 4.0)])))}
    if agent:
        legs["agent"] = LegInfo(write(day / f"{call_id}.agent.wav", burst(3.0, [(1.0, 2.0)], hz=500)), 2.5)
    assert await PostCall(db, data_dir).call_finished(call_id, legs, "sales")


def runner(db: Database, data_dir: Path, **kw: Any) -> JobRunner:
    opts: dict[str, Any] = {"workers": 1, "transcriber": energy_transcriber, "analyzer": energy_analyzer,
                            "warm": counting_warm, "poll_s": 0.05, "lease_s": 30.0}
    return JobRunner(db, data_dir, **{**opts, **kw})


def log_lines(ctl: Path, name: str) -> list[str]:
    p = ctl / name
    return p.read_text().split() if p.exists() else []


async def wait_for(path: Path, within_s: float = 60.0) -> str:
    deadline = time.monotonic() + within_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.05)
    for _ in range(100):                  # written, but maybe not flushed yet
        text = path.read_text()
        if text:
            return text
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} stayed empty")


async def utterances(db: Database, call_id: str) -> list[tuple[str, float, float, str]]:
    async with db.conn.execute("SELECT speaker, start_s, end_s, text FROM utterances WHERE call_id = ? "
                               "ORDER BY start_s", (call_id,)) as cur:
        return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]


async def scalar(db: Database, sql: str) -> object:
    async with db.conn.execute(sql) as cur:
        row = await cur.fetchone()
    assert row is not None
    return row[0]


# -- the pipeline -------------------------------------------------------------------------------------------
async def test_jobs_run_in_worker_processes_and_store_everything(db: Database, tmp_path: Path, ctl: Path) -> None:
    for i in range(3):
        await add_call(db, tmp_path, f"c{i}", agent=i != 2)
    r = runner(db, tmp_path, workers=2)
    await r.run(until_idle=True)
    assert r.stats.done == 3 and r.stats.failed == 0
    assert {j.state for j in await JobRepo(db).list()} == {"done"}
    warm = log_lines(ctl, "warm.log")
    assert 1 <= len(warm) <= 2 and len(set(warm)) == len(warm)      # the model loaded once per process
    assert r.stats.pids <= {int(p) for p in warm} and os.getpid() not in r.stats.pids

    got = await utterances(db, "c0")
    assert [u[0] for u in got] == ["customer", "customer", "agent"]
    assert got[1][1:3] == pytest.approx((3.0, 4.0), abs=0.03)
    assert got[2][1:3] == pytest.approx((3.5, 4.5), abs=0.03)       # the agent on the call's timeline
    assert got[0][3] == "[redacted]" and got[1][3] == "voice voice voice voice"   # stored text is redacted
    assert [u[0] for u in await utterances(db, "c2")] == ["customer", "customer"]

    row = await TranscriptRepo(db).get("c0")
    assert row is not None and row["engine"] == "energy" and row["redacted"] == 1
    assert row["json_path"] == "transcripts/" + row["json_path"].split("/", 1)[1]
    saved = Transcript.from_json((tmp_path / row["json_path"]).read_text())
    assert saved.utterances[0].text == "[redacted]"
    assert saved.channels == {"customer": "recordings/2024/03/04/c0.caller.wav",
                              "agent": "recordings/2024/03/04/c0.agent.wav"}
    vtt = (tmp_path / row["vtt_path"]).read_text()
    assert vtt.startswith("WEBVTT") and "<v agent>voice" in vtt and "00:00:03.500 --> 00:00:04.500" in vtt
    counts = await TranscriptRepo(db).counts("c0")
    assert counts == {"transcripts": 1, "utterances": 3, "keyword_hits": 2, "qa_scores": 1, "call_emotion": 8}

    rec = (await RecordingRepo(db).for_call("c0"))["redacted"]      # the stereo file silenced over the number
    with wave.open(str(tmp_path / rec.path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert not data[4000:12000, 0].any() and data[24000:32000, 0].any()
    assert data[28000:36000, 1].any()


async def test_a_worker_killed_mid_job_is_replaced_and_its_rows_written_once(db: Database, tmp_path: Path,
                                                                             ctl: Path) -> None:
    await add_call(db, tmp_path, "c1")
    await add_call(db, tmp_path, "c2")
    (ctl / "hang-c1").touch()
    r = runner(db, tmp_path)
    task = asyncio.create_task(r.run(until_idle=True))
    pid = int(await wait_for(ctl / "started-c1"))
    os.kill(pid, signal.SIGKILL)                           # the worker process this test's runner started
    await asyncio.wait_for(task, 60)
    jobs = {j.call_id: j for j in await JobRepo(db).list()}
    assert (jobs["c1"].state, jobs["c1"].attempts) == ("done", 2)
    assert (jobs["c2"].state, jobs["c2"].attempts) == ("done", 1)
    assert r.stats.pool_restarts == 1 and pid not in r.stats.pids
    assert len(log_lines(ctl, "warm.log")) == 2            # the rebuilt pool loaded the model again, once
    assert len(await utterances(db, "c1")) == 3            # exactly once
    assert (await TranscriptRepo(db).counts("c1"))["keyword_hits"] == 2

    # done is terminal: queued again, run again, nothing is transcribed twice
    attempts = log_lines(ctl, "calls.log")
    assert not await JobRepo(db).enqueue("c1")
    await runner(db, tmp_path).run(until_idle=True)
    assert log_lines(ctl, "calls.log") == attempts
    with pytest.raises(JobStateError, match="only a failed job"):
        await JobRepo(db).retry(jobs["c1"].id)


SERVER = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from callcenter.storage.db import Database
from callcenter.transcription_jobs import JobRunner
from tests.unit.test_transcription_jobs import counting_warm, energy_analyzer, energy_transcriber

async def main():
    db = await Database.open(Path(sys.argv[1]))
    await JobRunner(db, Path(sys.argv[1]), workers=1, transcriber=energy_transcriber, analyzer=energy_analyzer,
                    warm=counting_warm, worker_id="server-a", lease_s=600, poll_s=0.05).run()

asyncio.run(main())
"""


async def test_a_server_killed_mid_job_resumes_it_on_restart(db: Database, tmp_path: Path, ctl: Path) -> None:
    await add_call(db, tmp_path, "c1")
    (ctl / "hang-c1").touch()
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER.format(root=str(ROOT)), str(tmp_path),
                                                  start_new_session=True)
    try:
        await wait_for(ctl / "started-c1")
    finally:
        os.killpg(server.pid, signal.SIGKILL)              # the server and its worker: this test's processes
        await asyncio.wait_for(server.wait(), 10)
    job = await JobRepo(db).for_call("c1")
    assert job is not None and (job.state, job.worker, job.attempts) == ("running", "server-a", 1)
    assert job.lease_until > time.time() + 500             # its lease has not run out...
    r = runner(db, tmp_path, worker_id="server-a")
    await asyncio.wait_for(r.run(until_idle=True), 60)     # ...but the same server takes back its own job
    job = await JobRepo(db).for_call("c1")
    assert job is not None and (job.state, job.attempts) == ("done", 2)
    assert len(await utterances(db, "c1")) == 3


async def test_a_job_stored_but_not_yet_marked_done_is_redone_without_duplicates(db: Database, tmp_path: Path,
                                                                                ctl: Path) -> None:
    await add_call(db, tmp_path, "c1")
    r = runner(db, tmp_path, worker_id="server-a")

    async def crash(job_id: int, worker: str) -> bool:      # the server dies between storing and "done"
        raise SystemExit("killed")
    r.jobs.complete = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        await r.run(until_idle=True)
    job = await JobRepo(db).for_call("c1")
    assert job is not None and job.state == "running"
    assert (await TranscriptRepo(db).counts("c1"))["utterances"] == 3
    await runner(db, tmp_path, worker_id="server-a").run(until_idle=True)
    job = await JobRepo(db).for_call("c1")
    assert job is not None and (job.state, job.attempts) == ("done", 2)
    assert await TranscriptRepo(db).counts("c1") == {"transcripts": 1, "utterances": 3, "keyword_hits": 2,
                                                     "qa_scores": 1, "call_emotion": 8}
    assert len(log_lines(ctl, "calls.log")) == 4           # (two lines per attempt: the call id and the pid)


async def test_the_runner_outlives_a_database_error(db: Database, tmp_path: Path, ctl: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    await add_call(db, tmp_path, "c1", agent=False)
    r = runner(db, tmp_path, poll_s=0.01)
    lease = r.jobs.lease
    failures: list[int] = []

    async def flaky(worker: str, lease_s: float, now: float) -> Job | None:
        if len(failures) < 2:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        return await lease(worker, lease_s, now)
    r.jobs.lease = flaky  # type: ignore[method-assign]
    await asyncio.wait_for(r.run(until_idle=True), 60)
    assert r.stats.done == 1 and len(failures) == 2
    assert sum("runner step failed" in rec.message for rec in caplog.records) == 2


async def test_another_runner_takes_a_job_once_its_lease_expired(db: Database, tmp_path: Path, ctl: Path) -> None:
    await add_call(db, tmp_path, "c1")
    jobs = JobRepo(db)
    assert (await jobs.lease("ghost", 0.2, time.time())) is not None    # a runner that then died
    r = runner(db, tmp_path, worker_id="b")
    await r.run(until_idle=True)
    assert r.stats.done == 0                              # not yet: the lease still holds
    await asyncio.sleep(0.3)
    await r.run(until_idle=True)
    job = await jobs.for_call("c1")
    assert job is not None and (job.state, job.attempts, job.worker) == ("done", 2, "b")


async def test_stop_gives_running_jobs_back_and_ends_the_workers(db: Database, tmp_path: Path, ctl: Path) -> None:
    await add_call(db, tmp_path, "c1")
    (ctl / "hang-c1").touch()
    r = runner(db, tmp_path)
    task = asyncio.create_task(r.run())
    pid = int(await wait_for(ctl / "started-c1"))
    await asyncio.wait_for(r.stop(), 30)
    await asyncio.wait_for(task, 5)
    job = await JobRepo(db).for_call("c1")
    assert job is not None and (job.state, job.attempts, job.worker) == ("queued", 0, "")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                                   # ended and reaped


async def test_cancelling_run_cleans_up_the_same_way(db: Database, tmp_path: Path, ctl: Path) -> None:
    await add_call(db, tmp_path, "c1")
    (ctl / "hang-c1").touch()
    r = runner(db, tmp_path)
    task = asyncio.create_task(r.run())
    pid = int(await wait_for(ctl / "started-c1"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    job = await JobRepo(db).for_call("c1")
    assert job is not None and job.state == "queued"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_failing_jobs_are_retried_then_failed_and_can_be_retried_by_hand(db: Database, tmp_path: Path,
                                                                               ctl: Path) -> None:
    await add_call(db, tmp_path, "bad1", agent=False)
    await add_call(db, tmp_path, "gone", agent=False)
    (tmp_path / "recordings/2024/03/04/gone.caller.wav").unlink()
    (tmp_path / "recordings/2024/03/04/gone.stereo.wav").unlink()
    r = runner(db, tmp_path, transcriber=failing_transcriber, max_attempts=2)
    await r.run(until_idle=True)
    jobs = {j.call_id: j for j in await JobRepo(db).list()}
    assert (jobs["bad1"].state, jobs["bad1"].attempts) == ("failed", 2)
    assert jobs["bad1"].error == "RuntimeError: engine exploded"
    assert (jobs["gone"].state, jobs["gone"].attempts) == ("failed", 1)     # a missing file: no retry
    assert jobs["gone"].error.startswith("FileNotFoundError")
    assert (r.stats.retried, r.stats.failed) == (1, 2)
    assert await TranscriptRepo(db).get("bad1") is None
    again = await JobRepo(db).retry(jobs["bad1"].id)
    assert (again.state, again.attempts, again.error) == ("queued", 0, "")


async def test_a_job_that_keeps_killing_its_worker_ends_failed(db: Database, tmp_path: Path) -> None:
    await add_call(db, tmp_path, "c1", agent=False)
    jobs = JobRepo(db, max_attempts=2)
    for _ in range(2):                                     # two runners died holding it
        job = await jobs.lease("ghost", 0.01, time.time())
        assert job is not None
        await asyncio.sleep(0.02)
    assert await jobs.lease("next", 30, time.time()) is None
    job = await jobs.for_call("c1")
    assert job is not None and job.state == "failed" and "lease expired" in job.error


# -- the repositories ---------------------------------------------------------------------------------------
async def test_job_rows_lease_oldest_first_and_enqueue_is_idempotent(db: Database) -> None:
    jobs = JobRepo(db)
    assert await jobs.enqueue("a") and await jobs.enqueue("b") and not await jobs.enqueue("a")
    first = await jobs.lease("w", 30, time.time())
    second = await jobs.lease("w", 30, time.time())
    assert first is not None and second is not None and (first.call_id, second.call_id) == ("a", "b")
    assert await jobs.lease("w", 30, time.time()) is None
    assert not await jobs.complete(first.id, "someone-else")           # not theirs
    assert await jobs.complete(first.id, "w") and not await jobs.complete(first.id, "w")
    assert await jobs.fail(second.id, "w", "boom") == "queued"
    assert await jobs.counts() == {"queued": 1, "running": 0, "done": 1, "failed": 0}
    with pytest.raises(JobStateError, match="no transcription job 99"):
        await jobs.retry(99)


def _transcript(call_id: str, texts: list[str]) -> Transcript:
    return Transcript(call_id, 10.0, "pocketsphinx", utterances=tuple(
        Utterance("customer", i, i + 0.5, t, 0.8, tuple(Word(w, i, i + 0.5, 0.8) for w in t.split()))
        for i, t in enumerate(texts)))


async def test_store_replaces_earlier_rows_and_keeps_a_reviewer_s_override(db: Database) -> None:
    await CallRepo(db).create("c1", "s", "a", "b", "", "f")
    repo = TranscriptRepo(db)
    analysis = {"hits": [{"rule": "refund", "category": "refund", "speaker": "customer", "start": 0, "end": 0.5,
                          "phrase": "refund", "source": "spotting"}],
                "scores": [{"scorecard": "std", "item": "greeting", "weight": 1, "auto_score": 0.0, "evidence": "-"},
                           {"scorecard": "std", "item": "closing", "weight": 1, "auto_score": 1.0, "evidence": "-"}],
                "emotion": [{"speaker": "customer", "quarter": 4, "lexicon": -0.5, "score": -0.7}],
                "ends_angry": True}
    t = _transcript("c1", ["i want a refund", "card four one one one"])
    for _ in range(2):
        await repo.store("c1", t, analysis, "t/c1.json", "t/c1.vtt")
    assert await repo.counts("c1") == {"transcripts": 1, "utterances": 2, "keyword_hits": 1, "qa_scores": 2,
                                       "call_emotion": 1}
    assert await scalar(db, "SELECT COUNT(*) FROM utterances_fts WHERE utterances_fts MATCH 'refund'") == 1
    await db.write("UPDATE qa_scores SET score = 1.0, reviewer = 'qa1', comment = 'heard it' "
                   "WHERE call_id = 'c1' AND item = 'greeting'")
    rescored = {**analysis, "scores": [{"scorecard": "std", "item": "greeting", "weight": 2, "auto_score": 0.0}]}
    redacted = _transcript("c1", ["i want a refund", "card **** **** **** ****"])
    await repo.store("c1", t, {**rescored, "redacted": redacted.to_dict()}, "t/c1.json", "t/c1.vtt")
    async with db.conn.execute("SELECT item, weight, auto_score, score, reviewer, comment FROM qa_scores "
                               "WHERE call_id = 'c1'") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [("greeting", 2.0, 0.0, 1.0, "qa1", "heard it")]
    async with db.conn.execute("SELECT text FROM utterances WHERE call_id = 'c1' ORDER BY start_s") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["i want a refund", "card **** **** **** ****"]
    # the number is not searchable either
    assert await scalar(db, "SELECT COUNT(*) FROM utterances_fts WHERE utterances_fts MATCH 'four'") == 0
    assert (await repo.get("c1") or {})["redacted"] == 1
    assert await scalar(db, "SELECT ends_angry FROM calls WHERE id = 'c1'") == 1


async def test_a_failed_store_leaves_the_earlier_rows_whole(db: Database) -> None:
    repo = TranscriptRepo(db)
    await repo.store("c1", _transcript("c1", ["hello there"]), None, "t/c1.json", "t/c1.vtt")
    bad = {"emotion": [{"speaker": "customer", "quarter": 9, "lexicon": 0, "score": 0}]}   # quarter must be 1..4
    with pytest.raises(Exception, match="CHECK constraint"):
        await repo.store("c1", _transcript("c1", ["a", "b", "c"]), bad, "t/c1.json", "t/c1.vtt")
    assert (await repo.counts("c1"))["utterances"] == 1    # all or nothing


# -- end to end with the real engine --------------------------------------------------------------------------
PROMPT = Path("/usr/share/asterisk/sounds/en/agent-pass.wav")


async def test_pocketsphinx_end_to_end_through_the_pipeline(db: Database, tmp_path: Path) -> None:
    day = tmp_path / "recordings" / "2024" / "03" / "04"
    caller = day / "e2e.caller.wav"
    caller.parent.mkdir(parents=True)
    caller.write_bytes(PROMPT.read_bytes())                           # "agent password" (a human voice)
    agent = day / "e2e.agent.wav"
    said = "thank you for calling, how can i help you"
    for argv in (["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(agent), said],
                 ["sox", str(agent), "-r", "8000", "-c", "1", "-b", "16", str(day / "a8.wav")]):
        proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert await proc.wait() == 0, argv
    (day / "a8.wav").replace(agent)
    await CallRepo(db).create("e2e", "sip", "+1555", "100", "", "demo")
    legs = {"caller": LegInfo(caller), "agent": LegInfo(agent, 4.0)}
    assert await PostCall(db, tmp_path).call_finished("e2e", legs)
    r = JobRunner(db, tmp_path, workers=1, rules_path=ROOT / "config" / "keywords.yaml",
                  scorecards_path=ROOT / "config" / "scorecards.yaml", poll_s=0.05)
    await asyncio.wait_for(r.run(until_idle=True), 180)
    job = await JobRepo(db).for_call("e2e")
    assert job is not None and job.state == "done", job
    got = await utterances(db, "e2e")
    customer = " ".join(t for s, _, _, t in got if s == "customer")
    agent_text = " ".join(t for s, _, _, t in got if s == "agent")
    assert "password" in customer.split()
    assert "how can i" in agent_text and all(a >= 4.0 for s, a, _, _ in got if s == "agent")
    row = await TranscriptRepo(db).get("e2e")
    assert row is not None and row["engine"] == "pocketsphinx"
    saved = json.loads((tmp_path / row["json_path"]).read_text())
    assert saved["call_id"] == "e2e" and saved["utterances"][0]["words"][0]["confidence"] > 0
    from asr.rules import load_rules
    async with db.conn.execute("SELECT rule, start_s, end_s FROM keyword_hits WHERE call_id = 'e2e'") as cur:
        hits = list(await cur.fetchall())
    assert hits and {h[0] for h in hits} <= set(load_rules(ROOT / "config" / "keywords.yaml").names())
    assert all(0 <= h[1] <= h[2] <= row["duration_s"] + 0.01 for h in hits)
    async with db.conn.execute("SELECT item FROM qa_scores WHERE call_id = 'e2e'") as cur:
        assert "greeting" in {r[0] for r in await cur.fetchall()}        # the scorecards were filled in
    assert await scalar(db, "SELECT COUNT(DISTINCT speaker) FROM call_emotion WHERE call_id = 'e2e'") == 2

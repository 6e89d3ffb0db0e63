"""callcenter.post_call.PostCall: recording rows with checksums, the stereo mix, the job; failures logged only."""

from __future__ import annotations

import hashlib
import logging
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from callcenter.post_call import LegInfo, PostCall
from callcenter.storage.db import Database
from callcenter.storage.repos import EventRepo
from callcenter.storage.transcripts import JobRepo, RecordingRepo


def tone(seconds: float, hz: float, rate: int = 8000) -> np.ndarray:
    return (9000 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.int16)


def write(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def scalar(db: Database, sql: str) -> object:
    async with db.conn.execute(sql) as cur:
        row = await cur.fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    yield database
    await database.close()


def legs_of(tmp_path: Path, call_id: str) -> tuple[Path, Path]:
    day = tmp_path / "recordings" / "2024" / "05" / "06"
    return (write(day / f"{call_id}.caller.wav", tone(4.0, 440)),
            write(day / f"{call_id}.agent.wav", tone(2.0, 900)))


async def test_a_finished_call_gets_its_rows_its_stereo_file_and_one_job(db: Database, tmp_path: Path) -> None:
    caller, agent = legs_of(tmp_path, "c1")
    woken: list[int] = []
    post = PostCall(db, tmp_path, on_enqueued=lambda: woken.append(1))
    ok = await post.call_finished("c1", {"caller": LegInfo(caller, 0.0, [(0.5, 1.0)]),
                                         "agent": LegInfo(agent, 2.5, [(0.25, 0.5)])}, "sales")
    assert ok and woken == [1]
    rows = await RecordingRepo(db).for_call("c1")
    assert set(rows) == {"caller", "agent", "stereo"}
    stereo = caller.with_name("c1.stereo.wav")
    assert rows["stereo"].path == "recordings/2024/05/06/c1.stereo.wav"
    for leg, path in (("caller", caller), ("agent", agent), ("stereo", stereo)):
        assert rows[leg].sha256 == sha(path) and rows[leg].bytes == path.stat().st_size
    assert rows["agent"].offset_s == 2.5 and rows["agent"].pauses == ((0.25, 0.5),)
    assert rows["stereo"].seconds == pytest.approx(4.5)               # the agent ends 0.5 s after the caller
    assert rows["stereo"].pauses == ((0.5, 1.0), (2.75, 3.0))          # both legs' pauses, on the call's timeline
    with wave.open(str(stereo)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert not data[:20000, 1].any() and data[20000:, 1].any()         # the agent's side starts at 2.5 s
    job = await JobRepo(db).for_call("c1")
    assert job is not None and job.state == "queued"

    # the same call again (a retry of the call's end): rows replaced, still one job
    assert await post.call_finished("c1", {"caller": LegInfo(caller), "agent": LegInfo(agent, 2.5)}, "sales")
    assert await scalar(db, "SELECT COUNT(*) FROM recordings WHERE call_id = 'c1'") == 3
    assert len(await JobRepo(db).list()) == 1


async def test_a_leg_left_with_a_stale_header_is_repaired_first(db: Database, tmp_path: Path) -> None:
    caller, _ = legs_of(tmp_path, "c2")
    with caller.open("r+b") as f:          # what a killed recorder leaves: sizes still 0
        f.seek(4)
        f.write(struct.pack("<I", 0))
        f.seek(40)
        f.write(struct.pack("<I", 0))
    assert await PostCall(db, tmp_path).call_finished("c2", {"caller": LegInfo(caller)})
    rows = await RecordingRepo(db).for_call("c2")
    assert rows["caller"].seconds == pytest.approx(4.0) and rows["stereo"].seconds == pytest.approx(4.0)


async def test_a_missing_agent_leg_is_logged_and_the_rest_still_done(db: Database, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caller, agent = legs_of(tmp_path, "c3")
    agent.unlink()
    with caplog.at_level(logging.ERROR, logger="callcenter.post_call"):
        ok = await PostCall(db, tmp_path).call_finished("c3", {"caller": LegInfo(caller), "agent": LegInfo(agent, 1)})
    assert ok is False
    assert set(await RecordingRepo(db).for_call("c3")) == {"caller", "stereo"}
    assert (await JobRepo(db).for_call("c3")) is not None
    assert any(r.message.endswith("recording file missing") and getattr(r, "call_id", "") == "c3"
               for r in caplog.records)


async def test_damaged_or_absent_audio_never_raises_and_queues_nothing(db: Database, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    junk = tmp_path / "recordings" / "c4.caller.wav"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"not a wav at all" * 8)
    post = PostCall(db, tmp_path)
    with caplog.at_level(logging.ERROR, logger="callcenter.post_call"):
        assert await post.call_finished("c4", {"caller": LegInfo(junk)}) is False
        assert await post.call_finished("c5", {}) is False
        assert await post.call_finished("c6", {"speaker": LegInfo(junk)}) is False
    assert any("could not register" in r.message and getattr(r, "call_id", "") == "c4" for r in caplog.records)
    assert await JobRepo(db).list() == []


async def test_submit_runs_in_the_background_and_a_dead_database_is_only_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = await Database.open(tmp_path)
    caller, agent = legs_of(tmp_path, "c7")
    post = PostCall(db, tmp_path)
    post.submit("c7", {"caller": LegInfo(caller), "agent": LegInfo(agent, 0.5)})
    await post.close()
    assert set(await RecordingRepo(db).for_call("c7")) == {"caller", "agent", "stereo"}
    await db.close()
    with caplog.at_level(logging.ERROR, logger="callcenter.post_call"):
        post.submit("c8", {"caller": LegInfo(caller)})
        await post.close()                       # the writes fail (database closed): logged, not raised
    assert any(getattr(r, "call_id", "") == "c8" for r in caplog.records)


async def test_calls_recovered_after_a_crash_get_the_same_work_once(db: Database, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """``resume_recovered`` works from the RECOVERED events callcenter/recovery.py writes (tests/unit/test_recovery.py
    makes them from real crashed files); here: transcription off, a malformed event, a call already done."""
    caller, agent = legs_of(tmp_path, "r1")
    events = EventRepo(db)
    rel = {leg: str(p.relative_to(tmp_path)) for leg, p in (("caller", caller), ("agent", agent))}
    await events.append("RECOVERED", "r1", ended_at="2024-05-06T10:00:00.000+00:00",
                        legs={"caller": {"path": rel["caller"], "offset_s": 0.0, "pauses": [[0.5, 1.0]]},
                              "agent": {"path": rel["agent"], "offset_s": 1.5, "pauses": []}})
    await events.append("RECOVERED", "r2", ended_at="x", legs={"caller": {"offset_s": 1}})   # no path
    await events.append("RECOVERED", "r3", ended_at="x", legs={"caller": {"path": rel["caller"]}})
    await events.append("POSTCALL", "r3", recovered=True, ok=True, legs=["caller"])          # done before
    woken: list[int] = []
    post = PostCall(db, tmp_path, on_enqueued=lambda: woken.append(1), transcribe=False)
    with caplog.at_level(logging.ERROR, logger="callcenter.recovery"):
        assert await post.resume_recovered() == 1
    await post.close()
    assert any(getattr(r, "call_id", "") == "r2" and "cannot be read" in r.message for r in caplog.records)
    rows = await RecordingRepo(db).for_call("r1")
    assert set(rows) == {"caller", "agent", "stereo"}
    assert rows["caller"].pauses == ((0.5, 1.0),) and rows["agent"].offset_s == 1.5
    assert rows["stereo"].seconds == pytest.approx(4.0) and rows["stereo"].pauses == ((0.5, 1.0),)
    assert await RecordingRepo(db).for_call("r3") == {}
    assert await JobRepo(db).list() == [] and woken == []                 # transcription is off: no job
    done = [e for e in await events.for_call("r1") if e["event"] == "POSTCALL"]
    assert [e["data"] for e in done] == [{"recovered": True, "ok": True, "legs": ["agent", "caller"]}]
    assert await PostCall(db, tmp_path).resume_recovered() == 0          # the next start: nothing owed

"""Recovery after a crash on a real SQLite file and real WAVs cut off as kill -9 leaves them, then the post-call
work it hands to PostCall (real mixing, real rows), and what a second start does (nothing)."""

from __future__ import annotations

import hashlib
import os
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from callcenter.post_call import PostCall
from callcenter.recovery import owed_post_call, recover
from callcenter.storage.db import Database, iso_utc
from callcenter.storage.repos import CallRepo, EventRepo
from callcenter.storage.transcripts import JobRepo, RecordingRepo
from recordings import files as recfiles


def _crashed_wav(path: Path, seconds: float) -> bytes:
    pcm = (np.sin(np.arange(int(8000 * seconds)) * 0.1) * 8000).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"")
    head = bytearray(path.read_bytes()[:44])
    head[4:8] = head[40:44] = (0).to_bytes(4, "little")  # what a killed recorder leaves
    path.write_bytes(bytes(head) + pcm + b"\x01")  # and half a frame at the end
    return pcm


async def test_recover_repairs_links_and_closes(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        calls, events = CallRepo(db), EventRepo(db)
        await calls.create("linked", "s1", "a", "b", "", "demo")
        await calls.create("unlinked", "s2", "a", "b", "", "demo")  # died before its path was stored
        started = datetime.fromisoformat((await calls.get("unlinked"))["started_at"])  # type: ignore[index]
        p1 = recfiles.leg_path(tmp_path / "recordings", "linked", "caller", datetime.now(UTC))
        p2 = recfiles.leg_path(tmp_path / "recordings", "unlinked", "caller", started)
        pcm1, pcm2 = _crashed_wav(p1, 1.5), _crashed_wav(p2, 0.5)
        await calls.update("linked", recording_path=str(p1.relative_to(tmp_path)))
        assert await recover(calls, events, tmp_path) == 2
        for cid, path, pcm in (("linked", p1, pcm1), ("unlinked", p2, pcm2)):
            row = await calls.get(cid)
            assert row is not None and row["disposition"] == "interrupted"
            assert row["recording_path"] == str(path.relative_to(tmp_path))
            with wave.open(str(path), "rb") as w:
                assert w.readframes(w.getnframes()) == pcm  # every whole frame kept
            assert row["recording_seconds"] == round(len(pcm) / 16000, 3)
            assert row["recording_bytes"] == path.stat().st_size == 44 + len(pcm)
            assert row["ended_at"] >= row["started_at"]
            assert [e["event"] for e in await events.for_call(cid)] == ["RECOVERED", "CALLEND"]
    finally:
        await db.close()


def flat(spans: tuple[tuple[float, float], ...]) -> list[float]:
    return [x for span in spans for x in span]


async def _events(db: Database, call_id: str) -> list[str]:
    return [e["event"] for e in await EventRepo(db).for_call(call_id)]


async def _count(db: Database, sql: str) -> int:
    async with db.conn.execute(sql) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_an_interrupted_bridged_call_gets_its_post_call_work_exactly_once(tmp_path: Path) -> None:
    """Caller and agent legs cut off by the kill; pauses from committed events; two restarts."""
    db = await Database.open(tmp_path)
    try:
        calls, events = CallRepo(db), EventRepo(db)
        await calls.create("c1", "s1", "a", "b", "", "demo")
        await calls.update("c1", queue="support", agent="alice")
        started = datetime.fromisoformat((await calls.get("c1"))["started_at"])  # type: ignore[index]
        caller = recfiles.leg_path(tmp_path / "recordings", "c1", "caller", started)
        agent = recfiles.leg_path(tmp_path / "recordings", "c1", "agent", datetime.now(UTC))
        caller_pcm, agent_pcm = _crashed_wav(caller, 3.0), _crashed_wav(agent, 1.25)
        await calls.update("c1", recording_path=str(caller.relative_to(tmp_path)))  # (the agent's: never, mid-call)
        killed = datetime.now(UTC).timestamp()
        for path in (caller, agent):        # both recorders wrote until the kill
            os.utime(path, (killed, killed))
        t0 = killed - 3.0                   # so the caller's recording started 3 s before, the agent's 1.25 s
        await events.append("RECPAUSE", "c1", at=iso_utc(t0 + 0.5))
        await events.append("RECRESUME", "c1", at=iso_utc(t0 + 1.0))
        await events.append("RECPAUSE", "c1", at=iso_utc(t0 + 2.5))  # still paused when the server died

        assert await recover(calls, events, tmp_path) == 1
        row = await calls.get("c1")
        assert row is not None and row["disposition"] == "interrupted" and row["ended_at"] == iso_utc(killed)
        async with db.conn.execute("SELECT agent_recording_path, agent_recording_seconds, agent_recording_sha256 "
                                   "FROM calls WHERE id = 'c1'") as cur:
            full = await cur.fetchone()
        assert full is not None and tuple(full) == (str(agent.relative_to(tmp_path)), round(len(agent_pcm) / 16000, 3),
                                                    hashlib.sha256(agent.read_bytes()).hexdigest())
        [owed] = await owed_post_call(db)
        assert owed.queue == "support" and set(owed.legs) == {"caller", "agent"}
        assert flat(owed.legs["caller"].pauses) == pytest.approx([0.5, 1.0, 2.5, 3.0], abs=0.002)  # (ms in events)
        assert owed.legs["agent"].offset_s == pytest.approx(1.75, abs=0.002)

        woken: list[int] = []
        post = PostCall(db, tmp_path, on_enqueued=lambda: woken.append(1))
        assert await post.resume_recovered() == 1
        await post.close()
        rows = await RecordingRepo(db).for_call("c1")
        assert set(rows) == {"caller", "agent", "stereo"} and woken == [1]
        assert rows["caller"].pauses == owed.legs["caller"].pauses
        assert rows["agent"].offset_s == pytest.approx(1.75, abs=0.002)
        assert rows["stereo"].seconds == pytest.approx(3.0, abs=0.002)  # both legs end at the kill
        stereo = tmp_path / rows["stereo"].path
        with wave.open(str(stereo)) as w:
            mixed = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        assert mixed[:, 0].tobytes() == caller_pcm
        start = int(round(rows["agent"].offset_s * 8000))
        assert not mixed[:start, 1].any() and mixed[start:, 1].tobytes() == agent_pcm
        job = await JobRepo(db).for_call("c1")
        assert job is not None and job.state == "queued"
        assert await _events(db, "c1") == ["RECPAUSE", "RECRESUME", "RECPAUSE", "RECOVERED", "CALLEND", "POSTCALL"]

        # A second restart: nothing is open, nothing is owed, nothing is redone.
        stamp = stereo.stat().st_mtime_ns
        assert await recover(calls, events, tmp_path) == 0
        again = PostCall(db, tmp_path, on_enqueued=lambda: woken.append(1))
        assert await again.resume_recovered() == 0
        await again.close()
        assert stereo.stat().st_mtime_ns == stamp and woken == [1]
        assert await _count(db, "SELECT COUNT(*) FROM recordings") == 3
        assert await _count(db, "SELECT COUNT(*) FROM transcription_jobs") == 1
        assert await _events(db, "c1") == ["RECPAUSE", "RECRESUME", "RECPAUSE", "RECOVERED", "CALLEND", "POSTCALL"]
    finally:
        await db.close()


async def test_recovery_killed_midway_is_finished_by_the_next_start_from_what_it_wrote(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        calls, events = CallRepo(db), EventRepo(db)
        await calls.create("c2", "s2", "a", "b", "", "demo")
        started = datetime.fromisoformat((await calls.get("c2"))["started_at"])  # type: ignore[index]
        caller = recfiles.leg_path(tmp_path / "recordings", "c2", "caller", started)
        agent = recfiles.leg_path(tmp_path / "recordings", "c2", "agent", started)
        _crashed_wav(caller, 2.0)
        _crashed_wav(agent, 0.5)
        killed = datetime.now(UTC).timestamp()
        os.utime(caller, (killed, killed))
        os.utime(agent, (killed - 0.5, killed - 0.5))  # the agent hung up half a second before the kill
        assert await recover(calls, events, tmp_path) == 1
        first = (await owed_post_call(db))[0].legs
        assert first["agent"].offset_s == pytest.approx(1.0, abs=0.002)
        # As if the first start had died after its events, before the row was closed; the repair changed mtimes.
        await calls.update("c2", ended_at=None, disposition=None)
        assert await recover(calls, events, tmp_path) == 1
        row = await calls.get("c2")
        assert row is not None and row["ended_at"] == iso_utc(killed) and row["disposition"] == "interrupted"
        assert (await owed_post_call(db))[0].legs == first          # not recomputed from the repaired files
        assert await _events(db, "c2") == ["RECOVERED", "CALLEND"]  # nothing written twice
    finally:
        await db.close()


async def test_only_calls_with_a_caller_recording_are_owed_post_call_work(tmp_path: Path) -> None:
    """As at a normal call's end: no usable caller leg, no post-call work (the row still gets what there is)."""
    db = await Database.open(tmp_path)
    try:
        calls, events = CallRepo(db), EventRepo(db)
        await calls.create("silent", "s3", "a", "b", "", "demo")        # died before any recording
        await calls.create("broken", "s4", "a", "b", "", "demo")
        junk = tmp_path / "recordings" / "broken.caller.wav"
        junk.parent.mkdir(parents=True, exist_ok=True)
        junk.write_bytes(b"RIFF" + b"\x00" * 60)
        await calls.update("broken", recording_path=str(junk.relative_to(tmp_path)))
        assert await recover(calls, events, tmp_path) == 2
        assert await owed_post_call(db) == []
        post = PostCall(db, tmp_path)
        assert await post.resume_recovered() == 0
        await post.close()
        assert await _count(db, "SELECT COUNT(*) FROM recordings") == 0
        for cid in ("silent", "broken"):
            assert await _events(db, cid) == ["CALLEND"]  # (nothing recovered: nothing to remember)
            row = await calls.get(cid)
            assert row is not None and row["disposition"] == "interrupted"
    finally:
        await db.close()

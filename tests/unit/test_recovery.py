"""Recovery after a crash on a real SQLite file and a real WAV cut off as kill -9 leaves it."""

from __future__ import annotations

import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from callcenter.recovery import recover
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, EventRepo
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
            assert [e["event"] for e in await events.for_call(cid)] == ["CALLEND"]
    finally:
        await db.close()

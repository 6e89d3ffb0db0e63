"""kill -9 with five calls up, then a restart: every row is closed and every recording repaired."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

from tests.support.health import assert_healthy
from tests.support.server import LONG_FLOW, ServerProcess, phone_command


def test_kill_9_during_five_calls_then_restart(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, LONG_FLOW).start()
    phones = [subprocess.Popen(phone_command(srv.uri, "--timeout", "40"), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL) for _ in range(5)]
    try:
        srv.wait_for(lambda: srv.get("/healthz").json()["active_calls"] == 5, 30)
        token = srv.token("admin")
        srv.wait_for(lambda: len([c for c in srv.calls(token) if c["recording_path"]]) == 5, 15)
        time.sleep(2.0)  # a couple of seconds of audio in every recording
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        srv.proc = None
        killed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    finally:
        for p in phones:
            p.kill()
            p.wait()
    db = srv.data_dir / "callcenter.db"
    with sqlite3.connect(db) as conn:
        open_rows = conn.execute("select id, recording_path from calls where ended_at is null").fetchall()
    assert len(open_rows) == 5
    broken = [srv.data_dir / p for _, p in open_rows]
    for path in broken:  # what the crash left: headers that say 0 bytes
        with path.open("rb") as f:
            head = f.read(44)
        assert int.from_bytes(head[40:44], "little") == 0 or path.stat().st_size > 44

    srv.start()
    try:
        token = srv.token("admin")
        calls = srv.calls(token)
        assert len(calls) == 5
        for call in calls:
            assert call["ended_at"] and call["disposition"] == "interrupted", call
            assert "interrupted" in call["hangup_cause"]
            # Closed at the last moment it was known alive (its recording's last write), not at restart.
            assert call["started_at"] < call["ended_at"] <= killed_at, (call, killed_at)
            path = srv.data_dir / call["recording_path"]
            with wave.open(str(path), "rb") as w:  # repaired: Python's wave reads it
                seconds = w.getnframes() / w.getframerate()
            assert seconds > 1.5 and abs(seconds - call["recording_seconds"]) < 0.01
            rec = srv.get(call["recording_url"], token)
            assert rec.status_code == 200 and len(rec.content) == call["recording_bytes"]
        ends = srv.query("select call_id, data from events where event = 'CALLEND'")
        assert sorted(c for c, _ in ends) == sorted(c["id"] for c in calls)
        assert all(json.loads(d)["disposition"] == "interrupted" for _, d in ends)
        assert "closed a call left open by the previous run" in srv.log()
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()

"""SIGINT/SIGTERM with calls in progress: calls hung up, recordings finalized, exit 0 within 5 s."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, phone_command
from voice.audio import read_wav


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_with_calls_in_progress(tmp_path: Path, sig: int) -> None:
    server = ServerProcess(tmp_path).start()
    phones = [
        subprocess.Popen(phone_command(server.uri, "--record", str(tmp_path / f"p{i}.wav"), "--timeout", "30"),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for i in range(3)
    ]
    try:
        server.wait_for(lambda: server.get("/healthz").json()["active_calls"] == 3)
        time.sleep(1.0)  # let the recordings gather audio
        started = time.monotonic()
        rc = server.stop(sig, timeout=10)
        took = time.monotonic() - started
    finally:
        for p in phones:
            p.wait(timeout=30)
    log = server.log()
    assert rc == 0, log[-3000:]
    assert took < 5.0, took
    assert "Traceback" not in log and "abort" not in log.lower(), log[-3000:]

    # Every phone saw the server hang up (BYE), long before its prompt would have ended.
    import json

    for p in phones:
        report = json.loads(p.stdout.read().strip().splitlines()[-1])  # type: ignore[union-attr]
        assert report["connected"] and "timeout" not in report, report
        assert report["ended_at"] - report["answered_at"] < 4.0

    # Every call row is closed and its recording is a valid WAV of the right length.
    token_out = server.cli("calls", "list", "--json")
    rows = json.loads(token_out.stdout)
    assert len(rows) == 3
    for row in rows:
        assert row["ended_at"] and row["disposition"] == "shutdown"
        rec = read_wav(server.data_dir / row["recording_path"])
        assert rec.rate == 8000 and 0.8 < rec.duration < 4.0
        assert abs(rec.duration - row["recording_seconds"]) < 0.01


def test_restart_closes_calls_left_open_by_a_crash(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    phone = subprocess.Popen(phone_command(server.uri, "--timeout", "20"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        server.wait_for(lambda: server.get("/healthz").json()["active_calls"] == 1)
        # (the call's row is written a moment after the call starts, group-committed: kill once it is in)
        server.wait_for(lambda: server.query("SELECT count(*) FROM calls")[0][0] == 1)
        server.stop(signal.SIGKILL)
    finally:
        phone.kill()
        phone.wait()
    server.start()
    try:
        token = server.token("admin")
        [call] = server.calls(token)
        assert call["disposition"] == "interrupted" and call["ended_at"]
    finally:
        assert server.stop() == 0

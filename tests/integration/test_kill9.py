"""kill -9 with five calls up (one bridged to an agent), then a restart: every row is closed, every recording
repaired, and every call gets the post-call work a normal call gets (leg rows, the stereo mix, a transcript)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tests.integration.test_acd_calls import QUEUE_FLOW, AgentPhone, cli_ok
from tests.support.health import assert_healthy
from tests.support.server import ServerProcess, phone_command

SOUNDS = Path("/usr/share/asterisk/sounds/en")  # a human voice, so the agent's channel has words to find


def test_kill_9_during_five_calls_then_restart(tmp_path: Path) -> None:
    agent_wav = tmp_path / "agent.wav"
    subprocess.run(["sox", str(SOUNDS / "dir-welcome.wav"), str(SOUNDS / "queue-thankyou.wav"), str(agent_wav),
                    "pad", "0.5", "1.5"], check=True, capture_output=True)
    srv = ServerProcess(tmp_path, QUEUE_FLOW)  # (transcription on, as by default)
    agent = AgentPhone(tmp_path, "alice", "--answer-after", "0.3", "--hangup-after", "60", "--play", str(agent_wav))
    try:
        cli_ok(srv, "agent", "add", "alice", "--uri", agent.uri, "--skills", "support:1")
        cli_ok(srv, "agent", "login", "alice")
        cli_ok(srv, "queue", "add", "support", "--announce-every", "0")
        srv.start()
        phones = [subprocess.Popen(phone_command(srv.uri, "--timeout", "40"), stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL) for _ in range(5)]
        try:  # one caller talks to alice, four wait in the queue
            srv.wait_for(lambda: srv.get("/healthz").json()["active_calls"] == 5, 30)
            token = srv.token("admin")
            srv.wait_for(lambda: len([c for c in srv.calls(token) if c["recording_path"]]) == 5, 15)
            bridged = srv.wait_for(lambda: srv.query("SELECT id FROM calls WHERE agent = 'alice'"), 15)[0][0]
            agent_leg = srv.wait_for(lambda: list((srv.data_dir / "recordings").glob(f"*/*/*/{bridged}.agent.wav")))[0]
            # A couple of seconds of audio in every recording, and the agent's greeting in theirs.
            srv.wait_for(lambda: agent_leg.stat().st_size > 44 + 16000 * 4.5, 15)
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(10)
            srv.proc = None
            killed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        finally:
            for p in phones:
                p.kill()
                p.wait()
    finally:
        agent.stop()
    db = srv.data_dir / "callcenter.db"
    with sqlite3.connect(db) as conn:
        open_rows = conn.execute("select id, recording_path from calls where ended_at is null").fetchall()
    assert len(open_rows) == 5
    broken = [srv.data_dir / p for _, p in open_rows] + [agent_leg]
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

        # The post-call work a normal call gets: every call transcribed once, after the restart.
        srv.wait_for(lambda: srv.query("SELECT COUNT(*) FROM transcription_jobs WHERE state = 'done'")[0][0] == 5,
                     timeout=120)
        assert srv.query("SELECT COUNT(*), COUNT(DISTINCT call_id) FROM transcription_jobs") == [(5, 5)]
        assert srv.query("SELECT COUNT(*) FROM transcripts")[0][0] == 5
        legs = {(c, leg): (p, s, o) for c, leg, p, s, o in
                srv.query("SELECT call_id, leg, path, seconds, offset_s FROM recordings WHERE leg != 'redacted'")}
        assert {leg for c, leg in legs if c == bridged} == {"caller", "agent", "stereo"}, legs
        assert all((c["id"], "stereo") in legs for c in calls), legs
        assert len(legs) == 11  # five callers, five stereo files, one agent
        agent_row = srv.query(f"SELECT agent_recording_path, agent_recording_seconds FROM calls WHERE id = '{bridged}'")
        assert agent_row[0][0] == str(agent_leg.relative_to(srv.data_dir)) == legs[bridged, "agent"][0]
        caller_s, offset = legs[bridged, "caller"][1], legs[bridged, "agent"][2]
        assert 0.3 < offset < caller_s - 4.0, (offset, caller_s)  # the agent answered after the caller's answer
        with wave.open(str(srv.data_dir / legs[bridged, "stereo"][0])) as w:
            mixed = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
            rate = w.getframerate()
        start = int(round(offset * rate))
        assert not mixed[: start - rate // 50, 1].any() and mixed[start:, 1].any()  # the agent's side, from there
        assert abs(len(mixed) / rate - max(caller_s, offset + legs[bridged, "agent"][1])) < 0.01
        speakers = {s for (s,) in srv.query(f"SELECT speaker FROM utterances WHERE call_id = '{bridged}'")}
        assert "agent" in speakers, speakers  # the agent's greeting, decoded from the repaired agent leg
        assert srv.query("SELECT COUNT(*) FROM events WHERE event = 'POSTCALL'")[0][0] == 5
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()

    # A second restart owes nothing and redoes nothing.
    srv.start()
    try:
        srv.token("admin")
        assert srv.query("SELECT COUNT(*) FROM events WHERE event IN ('POSTCALL', 'RECOVERED', 'CALLEND')") == [(15,)]
        assert srv.query("SELECT COUNT(*) FROM recordings WHERE leg != 'redacted'")[0][0] == 11
        assert srv.query("SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'done') FROM transcription_jobs") == [(5, 5)]
        cli_ok(srv, "agent", "logout", "alice")  # (her phone is gone: the check call hears "Nobody is here")
        assert_healthy(srv, listen_s=5.0)  # ("Nobody is here" is rendered on this first call: time for it)
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()

"""SIPp smoke run: 20 calls, 10 at a time, each hearing the prompt (RTP echoed back), zero failures."""

from __future__ import annotations

from pathlib import Path

from tests.support.server import ServerProcess
from tests.support.sipp_run import run_sipp


def test_sipp_20_calls_10_concurrent(short_server: ServerProcess, tmp_path: Path) -> None:
    stats = run_sipp(short_server, tmp_path, "uac_hear_prompt.xml", 20, 10, 10, "-rtp_echo", timeout=100)
    err = stats["_errors"]
    assert stats["SuccessfulCall(C)"] == "20", (stats, err[-2000:])
    assert stats["FailedCall(C)"] == "0", err[-2000:]
    assert stats["_returncode"] == "0"

    token = short_server.token("supervisor")
    calls = short_server.wait_for(lambda: [c for c in short_server.calls(token) if c["ended_at"]]
                                  if len(short_server.calls(token)) == 20 else None)
    assert len(calls) == 20
    assert {c["disposition"] for c in calls} == {"completed"}
    for c in calls:
        assert c["recording_sha256"] and c["recording_seconds"] > 1.0

"""SIPp smoke run: 20 calls, 10 at a time, each hearing the prompt (RTP echoed back), zero failures."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from tests.support.ports import free_port
from tests.support.server import ROOT, ServerProcess

SCENARIO = ROOT / "tests" / "support" / "sipp" / "uac_hear_prompt.xml"


def run_sipp(server: ServerProcess, workdir: Path, calls: int, concurrent: int, rate: int) -> dict[str, str]:
    stat = workdir / "sipp_stat.csv"
    cmd = [
        "sipp", "-sf", str(SCENARIO), "-s", "ivr", f"127.0.0.1:{server.sip_port}",
        "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()), "-rtp_echo",
        "-m", str(calls), "-l", str(concurrent), "-r", str(rate), "-timeout", "90", "-nostdin",
        "-trace_stat", "-stf", str(stat), "-trace_err", "-error_file", str(workdir / "sipp_err.log"),
    ]
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)
    rows = list(csv.reader(stat.open(), delimiter=";"))
    last = dict(zip(rows[0], rows[-1], strict=False))
    last["_returncode"] = str(out.returncode)
    return last


def test_sipp_20_calls_10_concurrent(short_server: ServerProcess, tmp_path: Path) -> None:
    stats = run_sipp(short_server, tmp_path, calls=20, concurrent=10, rate=10)
    err = (tmp_path / "sipp_err.log").read_text() if (tmp_path / "sipp_err.log").exists() else ""
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

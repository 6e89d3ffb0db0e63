"""Run a SIPp scenario of tests/support/sipp/ against a test server; return its final statistics."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from .ports import free_port
from .server import ROOT, ServerProcess

SIPP = ROOT / "tests" / "support" / "sipp"


def run_sipp(server: ServerProcess, workdir: Path, scenario: str, calls: int, limit: int, rate: int,
             *extra: str, timeout: float = 240) -> dict[str, str]:
    """``calls`` calls at ``rate`` per second, ``limit`` at a time. The result is SIPp's last
    statistics row (``SuccessfulCall(C)``, ``FailedCall(C)``...) plus ``_returncode`` and
    ``_errors`` (the tail of its error log)."""
    stat = workdir / f"{scenario}.csv"
    cmd = ["sipp", "-sf", str(SIPP / scenario), "-s", "ivr", f"127.0.0.1:{server.sip_port}", "-i", "127.0.0.1",
           "-p", str(free_port()), "-mp", str(free_port()), "-m", str(calls), "-l", str(limit), "-r", str(rate),
           "-timeout", str(int(timeout - 10)), "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1",
           "-trace_err", "-error_file", str(workdir / f"{scenario}.err"), *extra]
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    rows = list(csv.reader(stat.open(), delimiter=";"))
    last = dict(zip(rows[0], rows[-1], strict=False))
    last["_returncode"] = str(out.returncode)
    err = workdir / f"{scenario}.err"
    last["_errors"] = err.read_text()[-2000:] if err.exists() else ""
    return last

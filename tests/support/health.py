"""After a hostile test: the server is alive, answers and is heard, and has nothing left over."""

from __future__ import annotations

from voice.audio import read_wav

from .audio import active_seconds
from .server import ServerProcess, run_phone


def assert_healthy(server: ServerProcess, timeout: float = 30.0, listen_s: float = 1.5) -> None:
    """Alive, a real call answered and heard (within ``listen_s``), then no call up and no row open."""
    assert server.proc is not None and server.proc.poll() is None, server.log()[-3000:]
    heard = server.base / "check.wav"
    report = run_phone(server.uri, "--hangup-after", str(listen_s), "--record", str(heard))
    assert report["connected"] and report["media"], report
    assert active_seconds(read_wav(heard)) > 0.5, "the check call heard no prompt"
    token = server.token("admin")
    server.wait_for(lambda: server.get("/healthz").json()["active_calls"] == 0, timeout)
    server.wait_for(lambda: all(c["ended_at"] for c in server.calls(token, 1000)), timeout)

"""Deploying a flow on a running server: live calls keep their version, new calls get the new one."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.support.server import LONG_TEXT, ServerProcess, phone_command, run_phone

V1 = f"""
name: line
start: talk
nodes:
  talk: {{type: play, say: "{LONG_TEXT}", next: bye}}
  bye: {{type: hangup}}
"""

V2 = """
name: line
start: hello
nodes:
  hello: {type: play, say: "This is version two.", next: bye}
  bye: {type: hangup}
"""


def test_deploy_during_a_live_call(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, V2, default_flow=False).start()
    try:
        token_file = tmp_path / "admin.token"
        token_file.write_text(srv.token("admin"))
        v1, v2 = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
        v1.write_text(V1)
        v2.write_text(V2)

        def flow(*args: str) -> subprocess.CompletedProcess[str]:
            return srv.cli("flow", *args, "--server", srv.http, "--token-file", str(token_file))

        out = flow("deploy", str(v1), "--number", "100")
        assert out.returncode == 0, out.stderr
        uri = f"sip:100@127.0.0.1:{srv.sip_port}"
        live = subprocess.Popen(phone_command(uri, "--hangup-after", "8"), stdout=subprocess.PIPE, text=True)
        srv.wait_for(lambda: srv.query("select id from calls where answered_at is not null"))

        out = flow("deploy", str(v2), "--number", "100")
        assert out.returncode == 0, out.stderr
        assert "number 100 -> line@2 (was line@1)" in out.stdout and "via server" in out.stderr, out
        # A new call gets version 2 at once and hears its short prompt to the end.
        fresh = run_phone(uri, "--hangup-after", "15")
        assert fresh["connected"] and fresh.get("local_hangup") is not True, fresh

        stdout, _ = live.communicate(timeout=30)
        first = json.loads(stdout.strip().splitlines()[-1])
        assert first["connected"] and first.get("local_hangup"), first  # v1's long prompt was still going

        rows = srv.wait_for(lambda: [r for r in srv.query(
            "select sip_call_id, flow, flow_version from calls where ended_at is not null order by started_at")]
            if len(srv.query("select 1 from calls where ended_at is not null")) == 2 else None)
        assert [(r[1], r[2]) for r in rows] == [("line", 1), ("line", 2)], rows

        listed = flow("list")
        assert listed.returncode == 0 and "line" in listed.stdout, listed
        rolled = flow("rollback", "100")
        assert rolled.returncode == 0, rolled.stderr
        time.sleep(0.2)
        again = run_phone(uri, "--hangup-after", "3")
        assert again["connected"] and again.get("local_hangup"), again  # v1 again: still talking at 3 s
        last = srv.query("select flow_version from calls order by started_at desc limit 1")
        assert last == [(1,)], last
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log(), srv.log()[-4000:]

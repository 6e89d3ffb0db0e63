"""`callcenter agent|queue|customer ...` in-process: straight into a data directory (no server), and
through a real HTTP server (uvicorn on a free port, in a thread) with token handling.

The server's ACD is ``RecordingAcd`` from test_acd_api.py, a stand-in for the live ACD that records
what the API asks of it (the lead's integration tests run the real one with real calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from callcenter import acd_api, acd_cli
from callcenter.api import ApiContext
from callcenter.cli import _common
from callcenter.storage.acd import AgentRepo, CustomerRepo, QueueRepo
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, UserRepo
from tests.unit.test_acd_api import RecordingAcd, bare_app
from tests.unit.test_flow_cli import Site

HANDLERS = {"agent": acd_cli.AGENT_HANDLERS, "queue": acd_cli.QUEUE_HANDLERS, "customer": acd_cli.CUSTOMER_HANDLERS}


def run(site: Site, *argv: str) -> int:
    """What callcenter/cli.py's main does with these three groups."""
    parser = argparse.ArgumentParser(prog="callcenter")
    acd_cli.add_parsers(parser.add_subparsers(dest="command", required=True), _common)
    args = parser.parse_args(site.args(*argv))
    return HANDLERS[args.command][args.action](args)


class ThreadServer:
    """The API with the ACD routes and a RecordingAcd, under uvicorn on its own loop in a thread."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.acd = RecordingAcd()
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="test-acd-server")

    async def _main(self) -> None:
        db = await Database.open(self.site.data)
        try:
            users = UserRepo(db)
            await users.add("root", "admin", "tok-admin")
            await users.add("alice-u", "agent", "tok-alice")
            ctx = ApiContext(calls=CallRepo(db), users=users, data_dir=self.site.data.resolve(),
                             active_calls=lambda: 0, acd=self.acd)
            app = bare_app(ctx, acd_api.build_router(ctx))
            self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.site.port, log_config=None,
                                                        lifespan="off", access_log=False))
            await self.server.serve()
        finally:
            await db.close()

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not (self.server and self.server.started):
            assert self.thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.delenv("CALLCENTER_TOKEN", raising=False)
    monkeypatch.delenv("CALLCENTER_CONFIG", raising=False)
    return Site(tmp_path)


def out_err(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    got = capsys.readouterr()
    return got.out, got.err


# -- straight into the data directory ---------------------------------------------------------------------

def test_agents_without_a_server(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, "agent", "add", "alice", "--name", "Alice", "--team", "blue", "--uri", "sip:alice@10.0.0.5",
               "--skills", "support:3,english:1", "--wrap-up", "5", "--max-offers", "2", "--user", "alice-u") == 0
    out, err = out_err(capsys)
    assert out == "agent alice added (logged out)\n"
    assert f"no server answers at http://127.0.0.1:{site.port}" in err and "data directory" in err
    assert run(site, "agent", "add", "bob") == 0
    assert run(site, "agent", "add", "bob") == 2
    assert "agent 'bob' exists already" in out_err(capsys)[1]

    assert run(site, "agent", "list") == 0
    out, _ = out_err(capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "TEAM", "REQUESTED", "SKILLS", "URI", "USER"]
    assert lines[1].split() == ["alice", "Alice", "blue", "logged_out", "english:1,support:3", "sip:alice@10.0.0.5",
                                "alice-u"]
    assert run(site, "agent", "show", "alice", "--json") == 0
    shown = json.loads(out_err(capsys)[0])
    assert (shown["skills"], shown["wrap_up_s"], shown["max_offers"], shown["status"]) == \
        ({"support": 3, "english": 1}, 5.0, 2, None)

    # Bad values: every field named, exit 2, nothing stored.
    assert run(site, "agent", "add", "carol", "--skills", "support:7", "--wrap-up", "-1", "--uri", "tel:1") == 2
    _, err = out_err(capsys)
    assert "agent carol: skills: support: proficiency 7 is outside 1..5" in err
    assert "agent carol: wrap_up_s: -1.0 is negative (times are seconds, 0 or more)" in err
    assert "agent carol: uri: 'tel:1' is not a SIP URI" in err and "nothing was changed" in err
    assert site.db_read(lambda db: AgentRepo(db).get("carol")) is None

    # States are only recorded, and the command says so.
    assert run(site, "agent", "login", "alice") == 0
    assert "recorded as available" in (out := out_err(capsys)[0]) and "applies when the server starts" in out
    assert run(site, "agent", "pause", "alice", "--reason", "lunch") == 0
    assert "recorded as break (lunch)" in out_err(capsys)[0]
    rec = site.db_read(lambda db: AgentRepo(db).get("alice"))
    assert (rec.state, rec.reason) == ("break", "lunch")
    assert run(site, "agent", "pause", "alice", "--reason", "two words") == 2
    assert "not a reason code" in out_err(capsys)[1]
    assert run(site, "agent", "login", "nobody") == 2
    assert "no agent 'nobody'" in out_err(capsys)[1]

    assert run(site, "agent", "add", "alice", "--update", "--skills", "billing:2") == 0
    rec = site.db_read(lambda db: AgentRepo(db).get("alice"))
    assert rec.spec.skills == {"billing": 2} and rec.spec.name == "Alice" and rec.state == "break"
    assert run(site, "agent", "add", "nobody", "--update", "--name", "x") == 2
    assert run(site, "agent", "remove", "bob") == 0
    assert site.db_read(lambda db: AgentRepo(db).get("bob")) is None


def test_queues_without_a_server(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, "queue", "add", "support", "--skills", "support:2", "--strategy", "ring-all", "--ring-timeout",
               "20", "--max-wait", "300", "--max-length", "10", "--overflow", "voicemail:support", "--wrap-up",
               "agent", "--service-level", "30", "--hold-music", "/usr/share/asterisk/moh", "--announce-every",
               "45", "--no-callback", "--priority", "3", "--set", "aging_per_min=2",
               "--set", 'escalation=[{"after_s": 60, "skills": {"support": 1}, "add_queues": ["billing"]}]',
               "--set", "no_answer_reason=missed") == 0
    assert out_err(capsys)[0] == "queue support added (ring-all)\n"
    spec = site.db_read(lambda db: QueueRepo(db).get("support")).spec
    assert (spec.skills, spec.strategy, spec.ring_timeout_s, spec.max_wait_s, spec.max_length) == \
        ({"support": 2}, "ring-all", 20.0, 300.0, 10)
    assert (spec.overflow, spec.wrap_up_s, spec.service_level_s, spec.announce_every_s, spec.callback) == \
        ("voicemail:support", None, 30.0, 45.0, False)
    assert (spec.priority, spec.aging_per_min, spec.no_answer_reason) == (3, 2.0, "missed")
    assert spec.escalation[0].after_s == 60.0 and spec.escalation[0].add_queues == ("billing",)

    assert run(site, "queue", "add", "billing", "--strategy", "longest_idle", "--ring-timeout", "-5",
               "--set", "colour=blue") == 2
    _, err = out_err(capsys)
    assert "queue billing: strategy: unknown strategy 'longest_idle' (did you mean 'longest-idle'?)" in err
    assert "queue billing: ring_timeout_s: -5.0 is negative" in err
    assert "queue billing: colour: unknown field" in err
    assert run(site, "queue", "add", "billing", "--set", "nonsense") == 2
    assert "expected KEY=VALUE" in out_err(capsys)[1]
    assert run(site, "queue", "add", "support", "--update", "--wrap-up", "7", "--set", "callback=true") == 0
    assert out_err(capsys)[0] == "queue support changed (the server applies it when it starts)\n"
    spec = site.db_read(lambda db: QueueRepo(db).get("support")).spec
    assert (spec.wrap_up_s, spec.callback, spec.strategy) == (7.0, True, "ring-all")

    assert run(site, "queue", "list") == 0
    lines = out_err(capsys)[0].splitlines()
    assert lines[0].split()[:3] == ["QUEUE", "STRATEGY", "SKILLS"] and lines[1].split()[:3] == \
        ["support", "ring-all", "support:2"]
    assert run(site, "queue", "show", "support") == 0
    assert "escalation" in out_err(capsys)[0]
    assert run(site, "queue", "show", "nope") == 2
    assert "no queue 'nope'" in out_err(capsys)[1]


def test_customer_import_without_a_server(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    good = site.root / "crm.csv"
    good.write_text("phone,name,vip_tier,language,last_agent,notes\n+15550100,Ada,2,en,alice,tea\n"
                    "+15550101,Bob,0,,,\n", encoding="utf-8")
    assert run(site, "customer", "import", str(good)) == 0
    assert out_err(capsys)[0] == f"{good}: 2 new, 0 updated\n"
    bad = site.root / "bad.csv"
    bad.write_text("phone,vip_tier\n+15550102,1\n+15550103,10\nnot a phone,1\n", encoding="utf-8")
    assert run(site, "customer", "import", str(bad)) == 1
    _, err = out_err(capsys)
    assert f"{bad}:3: vip_tier: 10 is outside 0..9" in err.splitlines()
    assert any(line.startswith(f"{bad}:4: phone: ") for line in err.splitlines())
    assert "nothing was imported" in err
    assert site.db_read(lambda db: CustomerRepo(db).get("+15550102")) is None
    assert run(site, "customer", "import", str(bad), "--skip-bad") == 0
    out, err = out_err(capsys)
    assert out == f"{bad}: 1 new, 0 updated, 2 bad lines skipped\n" and f"{bad}:3: " in err
    assert run(site, "customer", "import", str(site.root / "missing.csv")) == 2
    assert "cannot read" in out_err(capsys)[1]

    assert run(site, "customer", "show", "+1 555 0100") == 0
    out, _ = out_err(capsys)
    assert "Ada" in out and "alice" in out
    assert run(site, "customer", "show", "+19999") == 2


# -- through a running server ------------------------------------------------------------------------------

def test_through_the_server(site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = site.root / "admin.token"
    token_file.write_text("tok-admin\n", encoding="utf-8")
    with ThreadServer(site) as server:
        assert run(site, "agent", "list") == 2
        assert "needs a token: --token-file FILE or CALLCENTER_TOKEN" in out_err(capsys)[1]
        assert run(site, "agent", "add", "alice", "--user", "alice-u", "--skills", "support:3",
                   "--token-file", str(token_file)) == 0
        out, err = out_err(capsys)
        assert out == "agent alice added (logged out)\n" and f"via server http://127.0.0.1:{site.port}" in err
        assert server.acd.calls == [("reload_agent", "alice")]              # the live ACD reloaded it

        monkeypatch.setenv("CALLCENTER_TOKEN", "tok-admin")
        assert run(site, "agent", "add", "bob", "--skills", "support:9") == 2
        assert "agent bob: skills: support: proficiency 9 is outside 1..5" in out_err(capsys)[1]
        assert run(site, "queue", "add", "support", "--strategy", "ring-all") == 0
        assert out_err(capsys)[0] == "queue support added (ring-all)\n"
        assert server.acd.calls[-1] == ("reload_queue", "support")
        assert run(site, "queue", "add", "support", "--update", "--max-wait", "60") == 0
        assert "queue support changed\n" == out_err(capsys)[0]
        assert server.acd.calls[-1] == ("reload_queue", "support")

        # An agent's own token changes their own state through the live ACD.
        monkeypatch.setenv("CALLCENTER_TOKEN", "tok-alice")
        assert run(site, "agent", "login", "alice") == 0
        assert out_err(capsys)[0] == "agent alice: available\n"
        assert run(site, "agent", "pause", "alice", "--reason", "lunch") == 0
        assert out_err(capsys)[0] == "agent alice: break (lunch)\n"
        assert server.acd.calls[-2:] == [("set_state", "alice", "login", "", "alice-u"),
                                         ("set_state", "alice", "pause", "lunch", "alice-u")]
        assert run(site, "agent", "show", "alice") == 0
        out = out_err(capsys)[0]
        assert "status             break (lunch) [live]" in out
        assert run(site, "queue", "add", "sales") == 2                        # not an admin
        assert "refused" in out_err(capsys)[1]

        monkeypatch.setenv("CALLCENTER_TOKEN", "tok-admin")
        bad = site.root / "bad.csv"
        bad.write_text("phone,vip_tier\n+1555,1\n+1556,x\n", encoding="utf-8")
        assert run(site, "customer", "import", str(bad)) == 1
        assert f"{bad}:3: vip_tier: 'x' is not a whole number 0..9" in out_err(capsys)[1]
        assert run(site, "customer", "import", str(bad), "--skip-bad") == 0
        assert "1 new" in out_err(capsys)[0]
        assert run(site, "customer", "show", "+1555") == 0
        assert "+1555" in out_err(capsys)[0]
    rec = site.db_read(lambda db: AgentRepo(db).get("alice"))
    assert (rec.state, rec.reason) == ("break", "lunch")                    # recorded for a restart too


def test_an_explicit_server_that_does_not_answer_is_an_error(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, "agent", "list", "--server", f"http://127.0.0.1:{site.port}") == 2
    assert "no server answers" in out_err(capsys)[1]


def test_no_token_on_the_command_line(site: Site) -> None:
    with pytest.raises(SystemExit):
        run(site, "agent", "list", "--token", "tok-admin")

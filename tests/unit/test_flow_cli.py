"""`callcenter flow ...` in-process (main([...])) and through subprocesses: straight into a data directory,
and through a real HTTP server (uvicorn on a free port, in a thread) with token handling."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from callcenter.api import ApiContext, create_app
from callcenter.cli import main
from callcenter.flow_directory import FlowDirectory
from callcenter.storage.db import Database
from callcenter.storage.flows import FlowRepo, NumberRepo
from callcenter.storage.repos import CallRepo, UserRepo
from tests.unit.test_flow_store import BROKEN, caller_flow, helper_flow, menu_flow, warned_flow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    """A data directory, a config file whose http_port is ``port``, and flow files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir()
        self.port = free_port()
        self.config = root / "callcenter.toml"
        self.config.write_text(f'[server]\nhttp_port = {self.port}\ndata_dir = "data"\n', encoding="utf-8")
        self.flows = root / "flows"
        self.flows.mkdir()

    def file(self, name: str, text: str) -> Path:
        path = self.flows / name
        path.write_text(text, encoding="utf-8")
        return path

    def args(self, *rest: str) -> list[str]:
        return [*rest, "--config", str(self.config)]

    def db_read(self, fn):  # type: ignore[no-untyped-def]
        async def go():  # type: ignore[no-untyped-def]
            db = await Database.open(self.data)
            try:
                return await fn(db)
            finally:
                await db.close()

        return asyncio.run(go())


class ThreadServer:
    """The real API app under uvicorn, on its own event loop in a thread (the CLI under test is synchronous)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.directory: FlowDirectory | None = None
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="test-api-server")
        self.ready = threading.Event()

    async def _main(self) -> None:
        db = await Database.open(self.site.data)
        try:
            users = UserRepo(db)
            await users.add("root", "admin", "tok-admin")
            await users.add("sv", "supervisor", "tok-sup")
            self.directory = FlowDirectory(db)
            await self.directory.load()
            app = create_app(ApiContext(calls=CallRepo(db), users=users, data_dir=self.site.data.resolve(),
                                        active_calls=lambda: 0, flows=self.directory))
            self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.site.port, log_config=None,
                                                        lifespan="off", access_log=False))
            self.ready.set()
            await self.server.serve()
        finally:
            self.ready.set()
            await db.close()

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        self.ready.wait(10)
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


@pytest.fixture
def server(site: Site) -> Iterator[ThreadServer]:
    with ThreadServer(site) as s:
        yield s


# -- local commands ---------------------------------------------------------------------------------

def test_validate(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    good = site.file("menu.yaml", menu_flow())
    assert main(["flow", "validate", str(good)]) == 0
    out = capsys.readouterr()
    assert out.out == f"{good}: ok (example, 3 nodes)\n" and out.err == ""
    bad = site.file("bad.yaml", BROKEN)
    assert main(["flow", "validate", str(good), str(bad)]) == 1
    out = capsys.readouterr()
    assert f"{good}: ok" in out.out
    assert any(line.startswith(f"{bad}:") and "nowhere" in line for line in out.err.splitlines())
    warned = site.file("warned.yaml", warned_flow())
    assert main(["flow", "validate", str(warned)]) == 0
    out = capsys.readouterr()
    assert out.out == f"{warned}: ok (example, 3 nodes, 1 warning)\n"
    assert out.err.startswith(f"{warned}:4: warning: ") and "unused" in out.err
    assert main(["flow", "validate", str(site.flows / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    # A subflow may name a flow given on the same command line.
    caller, helper = site.file("main.yaml", caller_flow("main", "helper")), site.file("helper.yaml", helper_flow())
    assert main(["flow", "validate", str(caller), str(helper)]) == 0
    assert main(["flow", "validate", str(site.file("c2.yaml", caller_flow("main", "nope"))), str(helper)]) == 1
    assert "nope" in capsys.readouterr().err


def test_schema(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flow", "schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "nodes" in printed["properties"]
    out = site.root / "flow.schema.json"
    assert main(["flow", "schema", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == printed


def test_test_runs_cases_and_prints_coverage(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    flow = site.file("menu.yaml", menu_flow())
    cases = site.file("cases.yaml", """cases:
  - name: sales by key
    steps: [{press: "1"}]
    expect:
      path: [main, sales, bye]
""")
    assert main(["flow", "test", str(flow), "--cases", str(cases)]) == 0
    out = capsys.readouterr().out
    assert "PASS  sales by key" in out and "1 of 1 cases passed" in out and "node" in out.lower()
    site.file("cases.yaml", """cases:
  - name: wrong path
    steps: [{press: "2"}]
    expect:
      path: [main, sales, bye]
""")
    assert main(["flow", "test", str(flow), "--cases", str(cases)]) == 1
    assert "FAIL  wrong path" in capsys.readouterr().out
    site.file("cases.yaml", "cases:\n  - name: x\n    steps: [{jump: 1}]\n")
    assert main(["flow", "test", str(flow), "--cases", str(cases)]) == 1
    assert f"{cases}:3:" in capsys.readouterr().err
    assert main(["flow", "test", str(site.file("bad.yaml", BROKEN)), "--cases", str(cases)]) == 1
    assert "bad.yaml:" in capsys.readouterr().err


# -- straight into the data directory ---------------------------------------------------------------

def test_deploy_list_show_diff_rollback_without_a_server(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    v1 = site.file("menu.yaml", menu_flow())
    assert main(site.args("flow", "deploy", str(v1), "--number", "1000", "--comment", "first")) == 0
    out = capsys.readouterr()
    assert f"no server answers at http://127.0.0.1:{site.port}" in out.err and "data directory" in out.err
    assert out.out == "example@1 (new version); number 1000 -> example@1 (new number)\n"
    site.file("menu.yaml", menu_flow(say="Sales, one moment."))
    assert main(site.args("flow", "deploy", str(v1), "--number", "1000")) == 0
    assert "was example@1" in capsys.readouterr().out
    assert main(site.args("flow", "deploy", str(v1))) == 0
    assert "unchanged" in capsys.readouterr().out

    assert main(site.args("flow", "list")) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["FLOW", "LATEST", "VERSIONS"]
    assert table[1].split()[:3] == ["example", "2", "2"] and table[1].endswith("1000 (v2)")
    assert main(site.args("flow", "list", "--json")) == 0
    assert json.loads(capsys.readouterr().out)[0]["numbers"][0]["number"] == "1000"

    assert main(site.args("flow", "show", "1000")) == 0
    out = capsys.readouterr()
    assert out.out == menu_flow(say="Sales, one moment.")       # exactly the text, header on stderr
    assert "number 1000 points at example@2" in out.err
    assert main(site.args("flow", "show", "example", "--version", "1")) == 0
    assert capsys.readouterr().out == menu_flow()
    assert main(site.args("flow", "show", "nothing")) == 2
    assert "neither a number" in capsys.readouterr().err

    assert main(site.args("flow", "diff", "example@1", "1000")) == 0
    diff = capsys.readouterr().out
    assert diff.startswith("--- example@1\n+++ 1000 (example@2)\n")
    assert '-    say: "Connecting you to sales."\n' in diff and '+    say: "Sales, one moment."\n' in diff
    assert main(site.args("flow", "diff", str(v1), "example")) == 0
    out = capsys.readouterr()
    assert out.out == "" and "are the same" in out.err
    assert main(site.args("flow", "diff", "example@7", "example")) == 2

    assert main(site.args("flow", "rollback", "1000")) == 0
    assert capsys.readouterr().out == "number 1000: example@2 -> example@1\n"
    assert main(site.args("flow", "rollback", "1000")) == 2
    assert "no earlier version" in capsys.readouterr().err
    assert main(site.args("flow", "rollback", "1000", "--to", "2")) == 0
    assert capsys.readouterr().out == "number 1000: example@1 -> example@2\n"
    history = site.db_read(lambda db: NumberRepo(db).history("1000"))
    assert [(h.action, h.version) for h in history] == [("deploy", 1), ("deploy", 2), ("rollback", 1),
                                                        ("rollback_to", 2)]
    assert history[0].by.startswith("cli") and history[0].comment == "first"


def test_invalid_deploy_changes_nothing(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(site.args("flow", "deploy", str(site.file("menu.yaml", menu_flow())), "--number", "1000")) == 0
    capsys.readouterr()
    bad = site.file("bad.yaml", BROKEN)
    assert main(site.args("flow", "deploy", str(bad), "--number", "1000")) == 1
    err = capsys.readouterr().err
    assert any(line.startswith(f"{bad}:") for line in err.splitlines()) and "nothing was deployed" in err
    versions = site.db_read(lambda db: FlowRepo(db).versions("example"))
    assert [v.version for v in versions] == [1]
    assert main(site.args("flow", "deploy", str(bad), "--number", "not a number")) == 2


def test_no_server_and_no_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "menu.yaml"
    flow.write_text(menu_flow(), encoding="utf-8")
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nhttp_port = {port}\ndata_dir = "nowhere"\n', encoding="utf-8")
    assert main(["flow", "list", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"no server answers at http://127.0.0.1:{port}, and data directory" in err and "does not exist" in err
    # An explicit --server that does not answer is an error, not a fall-back to the local data directory.
    assert main(["flow", "list", "--config", str(config), "--server", f"http://127.0.0.1:{port}"]) == 2
    assert "no server answers" in capsys.readouterr().err


# -- through the server ------------------------------------------------------------------------------

def test_deploy_through_the_server(site: Site, server: ThreadServer, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    menu = site.file("menu.yaml", menu_flow())
    # No token: a clear error, and no fall-back to the database.
    assert main(site.args("flow", "deploy", str(menu), "--number", "1000")) == 2
    assert "needs an admin token" in capsys.readouterr().err
    monkeypatch.setenv("CALLCENTER_TOKEN", "wrong")
    assert main(site.args("flow", "deploy", str(menu), "--number", "1000")) == 2
    assert "refused the token" in capsys.readouterr().err
    monkeypatch.setenv("CALLCENTER_TOKEN", "tok-sup")            # a real token, but not an admin's
    assert main(site.args("flow", "list")) == 2
    assert "refused the token" in capsys.readouterr().err
    assert site.db_read(lambda db: FlowRepo(db).summaries()) == []

    monkeypatch.setenv("CALLCENTER_TOKEN", "tok-admin")
    assert main(site.args("flow", "deploy", str(menu), "--number", "1000")) == 0
    out = capsys.readouterr()
    assert f"via server http://127.0.0.1:{site.port}" in out.err and out.out.startswith("example@1 (new version)")
    assert server.directory is not None
    in_progress = server.directory.resolve("1000")              # the server sees it at once
    assert in_progress is not None and in_progress.version == 1
    site.file("menu.yaml", menu_flow(say="new"))
    assert main(site.args("flow", "deploy", str(menu), "--number", "1000", "--comment", "v2")) == 0
    capsys.readouterr()
    assert server.directory.resolve("1000").version == 2  # type: ignore[union-attr]
    assert in_progress.version == 1 and in_progress.flow.nodes["sales"].prompt.say != "new"

    monkeypatch.delenv("CALLCENTER_TOKEN")
    token_file = site.root / "token"
    token_file.write_text("tok-admin\n", encoding="utf-8")
    tf = ["--token-file", str(token_file)]
    assert main(site.args("flow", "show", "1000", *tf)) == 0
    assert capsys.readouterr().out == menu_flow(say="new")
    assert main(site.args("flow", "diff", "example@1", "example@2", *tf)) == 0
    assert "+    say: \"new\"" in capsys.readouterr().out
    assert main(site.args("flow", "rollback", "1000", *tf)) == 0
    assert capsys.readouterr().out == "number 1000: example@2 -> example@1\n"
    assert server.directory.resolve("1000").version == 1  # type: ignore[union-attr]
    bad = site.file("bad.yaml", BROKEN)
    assert main(site.args("flow", "deploy", str(bad), "--number", "1000", *tf)) == 1
    assert f"{bad}:" in capsys.readouterr().err                  # the server's errors name the local file
    assert main(site.args("flow", "list", "--json", *tf)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(f["name"], f["latest_version"], f["numbers"][0]["version"]) for f in listed] == [("example", 2, 1)]
    token_file.write_text("\n", encoding="utf-8")
    assert main(site.args("flow", "list", *tf)) == 2
    assert "is empty" in capsys.readouterr().err


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "CALLCENTER_TOKEN": "", **(env or {})})


def test_subprocesses(site: Site, server: ThreadServer) -> None:
    good, bad = site.file("menu.yaml", menu_flow()), site.file("bad.yaml", BROKEN)
    done = _cli("flow", "validate", str(good), str(bad))
    assert done.returncode == 1 and f"{good}: ok" in done.stdout and f"{bad}:" in done.stderr
    done = _cli(*site.args("flow", "deploy", str(good), "--number", "1000"), env={"CALLCENTER_TOKEN": "tok-admin"})
    assert done.returncode == 0, done.stderr
    assert "via server" in done.stderr and "example@1" in done.stdout
    assert server.directory is not None and server.directory.resolve("1000") is not None
    done = _cli(*site.args("flow", "list"), env={"CALLCENTER_TOKEN": "nope"})
    assert done.returncode == 2 and "refused the token" in done.stderr

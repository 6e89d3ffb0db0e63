"""`callcenter agent import FILE.csv` and `POST /api/agents/import` (callcenter/agent_import.py).

Real SQLite data directories throughout. The CLI runs in-process (test_acd_cli.py's ``run``) straight
into the data directory, and once through a real HTTP server (test_acd_cli.py's ``ThreadServer``:
uvicorn in a thread). The endpoint's own tests use httpx's ASGITransport (test_acd_api.py's env), whose
``RecordingAcd`` records what the API asks of the live ACD.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.agent_import import parse_agents_csv, plan_import
from callcenter.storage.acd import AgentRepo
from routing.model import AgentSpec
from tests.unit.test_acd_api import ADMIN, ALICE, SUP, Env, _env
from tests.unit.test_acd_api import RecordingAcd as _RecordingAcd
from tests.unit.test_acd_cli import ThreadServer, out_err, run
from tests.unit.test_flow_cli import Site

HEADER = "id,name,team,uri,skills,wrap_up_s,max_offers,weight,order,user"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.delenv("CALLCENTER_TOKEN", raising=False)
    monkeypatch.delenv("CALLCENTER_CONFIG", raising=False)
    return Site(tmp_path)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path, _RecordingAcd()):
        yield e


def many_agents(n: int) -> str:
    """``n`` agents, every column filled, the skills in both separators."""
    rows = [HEADER]
    for i in range(n):
        skills = f"support:{i % 5 + 1};billing:1" if i % 2 else f'"support:{i % 5 + 1},billing:1"'
        uri = "desk" if i % 3 == 0 else f"sip:agent{i:03d}@10.0.{i // 100}.{i % 100}:5060"
        rows.append(f"a{i:03d},Agent {i},team{i % 4},{uri},{skills},{i % 30},{i % 3 + 1},{i + 1},{-i},user{i}")
    return "\n".join(rows) + "\n"


def agents_in(site: Site) -> dict[str, AgentSpec]:
    return {r.spec.id: r.spec for r in site.db_read(lambda db: AgentRepo(db).all())}


# -- the command line, no server ---------------------------------------------------------------------------

def test_120_agents_in_one_command(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    f = site.root / "agents.csv"
    f.write_text(many_agents(120), encoding="utf-8")
    assert run(site, "agent", "import", str(f)) == 0
    out, err = out_err(capsys)
    assert out == f"{f}: added 120, changed 0, unchanged 0, skipped 0 (the server applies it when it starts)\n"
    assert "data directory" in err

    assert run(site, "agent", "list", "--json") == 0
    listed = {a["id"]: a for a in json.loads(out_err(capsys)[0])}
    assert len(listed) == 120
    assert listed["a007"] == {**listed["a007"], "name": "Agent 7", "team": "team3", "uri": "sip:agent007@10.0.0.7:5060",
                              "skills": {"support": 3, "billing": 1}, "wrap_up_s": 7.0, "max_offers": 2,
                              "weight": 8, "order": -7, "user": "user7", "state": "logged_out"}
    assert (listed["a006"]["uri"], listed["a006"]["skills"]) == ("desk", {"support": 2, "billing": 1})  # (",")
    assert run(site, "agent", "list") == 0
    assert len(out_err(capsys)[0].splitlines()) == 121                     # the table: a header and 120 rows

    assert run(site, "agent", "import", str(f), "--json") == 0              # the same file again: nothing to do
    got = json.loads(out_err(capsys)[0])
    assert (got["added"], got["changed"], len(got["unchanged"]), got["skipped"]) == ([], [], 120, 0)


def test_a_row_for_a_known_id_changes_only_its_non_empty_cells(site: Site,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, "agent", "add", "alice", "--name", "Alice", "--team", "blue", "--uri", "sip:alice@10.0.0.5",
               "--skills", "support:3", "--wrap-up", "5", "--weight", "4", "--user", "alice-u") == 0
    assert run(site, "agent", "pause", "alice", "--reason", "lunch") == 0
    capsys.readouterr()
    f = site.root / "update.csv"
    f.write_text("skills,ID,team,max_offers\nbilling:2;support:4,alice,,3\n\n,bob,red,\n", encoding="utf-8")
    assert run(site, "agent", "import", str(f), "--json") == 0
    assert json.loads(out_err(capsys)[0]) == {"added": ["bob"], "changed": ["alice"], "unchanged": [], "skipped": 0,
                                              "problems": [], "columns": ["skills", "id", "team", "max_offers"]}
    agents = agents_in(site)
    assert agents["alice"] == AgentSpec(id="alice", name="Alice", team="blue", uri="sip:alice@10.0.0.5",
                                        skills={"billing": 2, "support": 4}, wrap_up_s=5.0, max_offers=3, weight=4,
                                        user="alice-u")
    assert agents["bob"] == AgentSpec(id="bob", team="red")                 # a new id: defaults for empty cells
    rec = site.db_read(lambda db: AgentRepo(db).get("alice"))
    assert (rec.state, rec.reason) == ("break", "lunch")                    # the requested state stays


BAD_FILES = {
    "unknown column": (b"id,name,teem,colour\na1,A,blue,red\n",
                       ["bad.csv:1: unknown columns 'teem' (did you mean 'team'?), 'colour'; the columns are: id, "
                        "name, team, uri, skills, wrap_up_s, max_offers, weight, order, user"]),
    "bad skill level": (b"id,skills\na0,support:2\na1,support:9;billing:x\n",
                        ["bad.csv:3: agent a1: skills: support: proficiency 9 is outside 1..5; skills: 'billing:x': "
                         "the proficiency after ':' must be a whole number 1..5"]),
    "bad uri and numbers": (b"id,uri,wrap_up_s,max_offers\na0,desk,1,1\na1,tel:+1555,-3,2.5\n",
                            ["bad.csv:3: agent a1: uri: 'tel:+1555' is not a SIP URI (e.g. sip:alice@10.0.0.5:5060) "
                             "or \"desk\" (the browser desk); wrap_up_s: -3.0 is negative (times are seconds, 0 or "
                             "more); max_offers: expected a whole number, got float 2.5"]),
    "duplicate id": (b"id,name\na1,One\na2,Two\na1,Again\n",
                     ["bad.csv:2: agent a1: id a1 is also on line 4 (each id once per file)",
                      "bad.csv:4: agent a1: id a1 is also on line 2 (each id once per file)"]),
    "missing id": (b"id,name\na0,Zero\n,Nobody\nbad id!,X\n",
                   ["bad.csv:3: id: required",
                    "bad.csv:4: agent bad id!: id: 'bad id!' is not a valid agent id (letters, digits, '_', '.', '@', "
                    "'-'; at most 64)"]),
    "no id column": (b"name,team\nA,blue\n",
                     ["bad.csv:1: no 'id' column (the first line must name the columns, 'id' among them)"]),
    "not UTF-8": (b"id,name\na0,Zoe\na1,Ren\xe9\n",
                  ["bad.csv:3: not UTF-8 text (at byte offset 21); save the file as UTF-8"]),
    "empty": (b"", ["bad.csv:1: the file is empty (expected a header line such as id,name,team,uri,skills,"
                    "wrap_up_s,max_offers,weight,order,user)"]),
    "wrong field count, lines counted through a quoted line break": (
        b'id,name\na0,"Zero\nhas two lines"\na1,One,extra\n',
        ["bad.csv:2: agent a0: name: contains control characters",
         "bad.csv:4: agent a1: expected 2 fields (id,name), got 3"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_writes_nothing(site: Site, capsys: pytest.CaptureFixture[str], case: str) -> None:
    assert run(site, "agent", "add", "a0", "--name", "Before") == 0
    capsys.readouterr()
    content, expected = BAD_FILES[case]
    f = site.root / "bad.csv"
    f.write_bytes(content)
    assert run(site, "agent", "import", str(f)) == 1
    out, err = out_err(capsys)
    lines = [line.replace(str(site.root) + "/", "") for line in err.splitlines()]
    assert out == ""
    assert lines[1:-1] == expected                           # (lines[0]: "(via data directory ...)")
    n = len(expected)
    assert lines[-1] == f"callcenter: error: {n} bad line{'s' if n > 1 else ''}; nothing was imported"
    assert agents_in(site) == {"a0": AgentSpec(id="a0", name="Before")}


def test_a_file_that_cannot_be_read(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, "agent", "import", str(site.root / "missing.csv")) == 2
    assert "cannot read" in out_err(capsys)[1]


def test_skip_bad_writes_the_good_rows(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    f = site.root / "mixed.csv"
    f.write_text("id,skills,weight\ng1,support:1,1\nb1,support:6,1\ng2,,2\nb2,,0\ng3,sales,\ng1,,\n",
                 encoding="utf-8")
    assert run(site, "agent", "import", str(f), "--skip-bad") == 0
    out, err = out_err(capsys)
    assert out == f"{f}: added 2, changed 0, unchanged 0, skipped 4 (the server applies it when it starts)\n"
    assert [line for line in err.splitlines() if line.endswith("(skipped)")] == [
        f"{f}:2: agent g1: id g1 is also on line 7 (each id once per file) (skipped)",
        f"{f}:3: agent b1: skills: support: proficiency 6 is outside 1..5 (skipped)",
        f"{f}:5: agent b2: weight: 0 is below the minimum 1 (skipped)",
        f"{f}:7: agent g1: id g1 is also on line 2 (each id once per file) (skipped)"]
    assert sorted(agents_in(site)) == ["g2", "g3"]
    assert agents_in(site)["g3"].skills == {"sales": 1}


def test_parse_and_plan_without_a_database() -> None:
    columns, rows, problems = parse_agents_csv("\ufeffid, Skills ,Wrap_Up_S\nx,a:2;b,1.5\n", "f.csv")
    assert (columns, problems) == (("id", "skills", "wrap_up_s"), [])
    plan = plan_import(rows, {"x": AgentSpec(id="x", name="Old", skills={"z": 5})}, "f.csv")
    assert plan.changed == [AgentSpec(id="x", name="Old", skills={"a": 2, "b": 1}, wrap_up_s=1.5)]
    assert (plan.added, plan.unchanged, plan.problems) == ([], [], [])


# -- the endpoint --------------------------------------------------------------------------------------------

CSV = {"Content-Type": "text/csv"}


async def test_the_endpoint_upserts_and_reloads_the_live_acd(env: Env) -> None:
    c = env.client
    await AgentRepo(env.db).add(AgentSpec(id="alice", name="Alice", user="alice-u"))
    body = "id,team,uri\nalice,blue,\nbob,red,sip:bob@10.0.0.6\ncarol,,desk\n"
    r = await c.post("/api/agents/import", content=body, headers={**ADMIN, **CSV})
    assert r.status_code == 200, r.text
    assert r.json() == {"added": ["bob", "carol"], "changed": ["alice"], "unchanged": [], "skipped": 0,
                        "problems": [], "columns": ["id", "team", "uri"]}
    assert sorted(env.acd.calls) == [("reload_agent", "alice"), ("reload_agent", "bob"), ("reload_agent", "carol")]
    alice = await AgentRepo(env.db).get("alice")
    assert alice is not None and (alice.spec.name, alice.spec.team, alice.spec.user) == ("Alice", "blue", "alice-u")

    env.acd.calls.clear()
    r = await c.post("/api/agents/import", content="id,team\nalice,blue\n", headers={**ADMIN, **CSV})
    assert (r.json()["unchanged"], env.acd.calls) == (["alice"], [])         # nothing written, nothing reloaded


async def test_the_endpoint_refuses_bad_files_and_other_roles(env: Env) -> None:
    c = env.client
    body = "id,skills\nd1,support:2\nd2,support:0\n"
    for who in (ALICE, SUP):                                                   # agents' configuration is for admins
        r = await c.post("/api/agents/import", content=body, headers={**who, **CSV})
        assert r.status_code == 403 and "needs admin" in r.json()["detail"]
    assert (await c.post("/api/agents/import", content=body)).status_code == 401
    assert (await c.post("/api/agents/import", json={"id": "x"}, headers=ADMIN)).status_code == 415

    r = await c.post("/api/agents/import", content=body, headers={**ADMIN, **CSV}, params={"file": "team.csv"})
    assert r.status_code == 422
    assert r.json()["errors"] == ["team.csv:3: agent d2: skills: support: proficiency 0 is outside 1..5"]
    r = await c.post("/api/agents/import", content=b"id\n\xff\n", headers={**ADMIN, **CSV})
    assert r.status_code == 422
    assert r.json()["errors"] == ["<csv>:2: not UTF-8 text (at byte offset 3); save the file as UTF-8"]
    assert await AgentRepo(env.db).all() == [] and env.acd.calls == []

    r = await c.post("/api/agents/import", content=body, headers={**ADMIN, **CSV}, params={"skip_bad": "true"})
    assert r.status_code == 200 and (r.json()["added"], r.json()["skipped"]) == (["d1"], 1)
    assert env.acd.calls == [("reload_agent", "d1")]


# -- the command line through a running server ---------------------------------------------------------------

def test_through_the_server(site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    f = site.root / "agents.csv"
    f.write_text(many_agents(120), encoding="utf-8")
    bad = site.root / "bad.csv"
    bad.write_text("id,max_offers\nz1,1\nz2,500\n", encoding="utf-8")
    with ThreadServer(site) as server:
        monkeypatch.setenv("CALLCENTER_TOKEN", "tok-alice")
        assert run(site, "agent", "import", str(f)) == 2                     # an agent's token
        assert "refused" in out_err(capsys)[1]
        monkeypatch.setenv("CALLCENTER_TOKEN", "tok-admin")
        assert run(site, "agent", "import", str(f)) == 0
        out, err = out_err(capsys)
        assert out == f"{f}: added 120, changed 0, unchanged 0, skipped 0\n" and "via server" in err
        assert len(server.acd.calls) == 120 and server.acd.calls[0][0] == "reload_agent"
        assert run(site, "agent", "import", str(bad)) == 1
        assert f"{bad}:3: agent z2: max_offers: 500 is above the maximum 100" in out_err(capsys)[1].splitlines()
        assert run(site, "agent", "import", str(bad), "--skip-bad", "--json") == 0
        assert json.loads(out_err(capsys)[0])["added"] == ["z1"]
    assert len(agents_in(site)) == 121

"""/api/agents, /api/queues, /api/customers in-process (httpx ASGITransport) on a real SQLite database.

``RecordingAcd`` stands in for the live ACD (callcenter/acd.py, exercised by the lead's integration
tests with real calls): it implements the AcdControl protocol, records every call made to it and
keeps agent states in a dict, so these tests check what the API asks of the ACD, not routing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from callcenter.acd_api import build_router
from callcenter.acd_control import AcdControl, StateAction
from callcenter.api import ApiContext, create_app
from callcenter.exceptions import UnknownAgent
from callcenter.storage.acd import AgentRepo
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, UserRepo
from routing.exceptions import InvalidTransition

ADMIN = {"Authorization": "Bearer tok-admin"}
SUP = {"Authorization": "Bearer tok-sup"}
ALICE = {"Authorization": "Bearer tok-alice"}     # role agent, user "alice-u": agent "alice"
BOB = {"Authorization": "Bearer tok-bob"}         # role agent, user "bob-u": agent "bob"
QA = {"Authorization": "Bearer tok-qa"}


class RecordingAcd:
    """An AcdControl that records calls (a stand-in for the live ACD; see the module docstring)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.known: set[str] = set()

    async def reload_agent(self, agent_id: str) -> None:
        self.calls.append(("reload_agent", agent_id))
        self.known.add(agent_id)

    async def reload_queue(self, name: str) -> None:
        self.calls.append(("reload_queue", name))

    async def set_state(self, agent_id: str, action: StateAction, reason: str = "", *, by: str = "") -> dict[str, Any]:
        self.calls.append(("set_state", agent_id, action, reason, by))
        if agent_id not in self.known:
            raise UnknownAgent(f"no agent {agent_id!r}")
        current = self.agent_status(agent_id)["state"]
        if action == "resume" and current != "break":
            raise InvalidTransition(f"agent {agent_id} is {current}, not on a break")
        state = {"login": "available", "logout": "logged_out", "pause": "break", "resume": "available"}[action]
        self.states[agent_id] = {"id": agent_id, "state": state, "reason": reason if state == "break" else "",
                                 "since": 1.0, "pending": "", "contact": ""}
        return self.states[agent_id]

    def agent_status(self, agent_id: str) -> dict[str, Any]:
        if agent_id not in self.known:
            raise UnknownAgent(agent_id)
        return self.states.get(agent_id, {"id": agent_id, "state": "logged_out", "reason": "", "since": 0.0,
                                          "pending": "", "contact": ""})

    def snapshot(self) -> dict[str, Any]:
        return {"at": 0.0, "queues": {}, "agents": dict(self.states)}


def bare_app(ctx: ApiContext, *routers: APIRouter) -> FastAPI:
    """Only ``routers`` (and /healthz), not create_app's whole API: each test says what it serves."""
    app = FastAPI()
    app.state.ctx = ctx                     # (callcenter.api.require reads it)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "active_calls": 0}

    for router in routers:
        app.include_router(router)
    return app


class Env:
    def __init__(self, db: Database, client: httpx.AsyncClient, ctx: ApiContext) -> None:
        self.db, self.client, self.ctx = db, client, ctx

    @property
    def acd(self) -> RecordingAcd:
        assert isinstance(self.ctx.acd, RecordingAcd)
        return self.ctx.acd


async def _env(tmp_path: Path, acd: RecordingAcd | None) -> AsyncIterator[Env]:
    db = await Database.open(tmp_path)
    users = UserRepo(db)
    for name, role, token in (("root", "admin", "tok-admin"), ("sv", "supervisor", "tok-sup"),
                              ("alice-u", "agent", "tok-alice"), ("bob-u", "agent", "tok-bob"), ("q", "qa", "tok-qa")):
        await users.add(name, role, token)
    ctx = ApiContext(calls=CallRepo(db), users=users, data_dir=tmp_path.resolve(), active_calls=lambda: 0, acd=acd)
    app = bare_app(ctx, build_router(ctx))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Env(db, client, ctx)
    await db.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path, RecordingAcd()):
        yield e


@pytest.fixture
async def env_no_acd(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path, None):
        yield e


async def _agents(env: Env) -> None:
    for body in ({"id": "alice", "name": "Alice", "skills": {"support": 3}, "uri": "sip:alice@10.0.0.5",
                  "user": "alice-u"},
                 {"id": "bob", "user": "bob-u"}):
        r = await env.client.post("/api/agents", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text


def test_the_recording_acd_is_an_acd_control() -> None:
    acd: AcdControl = RecordingAcd()   # (mypy checks the protocol)
    assert acd is not None


async def test_roles(env: Env) -> None:
    c = env.client
    await _agents(env)
    await c.post("/api/queues", json={"name": "support"}, headers=ADMIN)
    admin_only = [("POST", "/api/agents", {"id": "x"}), ("PUT", "/api/agents/alice", {"name": "x"}),
                  ("DELETE", "/api/agents/bob", None), ("POST", "/api/queues", {"name": "x"}),
                  ("PUT", "/api/queues/support", {"priority": 1})]
    for method, path, body in admin_only:
        assert (await c.request(method, path, json=body)).status_code == 401, path
        for who in (SUP, ALICE, QA):
            assert (await c.request(method, path, json=body, headers=who)).status_code == 403, (path, who)
    for path in ("/api/agents", "/api/queues", "/api/queues/support"):
        assert (await c.get(path, headers=SUP)).status_code == 200, path
        assert (await c.get(path, headers=ALICE)).status_code == 403, path
        assert (await c.get(path, headers=QA)).status_code == 403, path
    assert env.acd.calls == [("reload_agent", "alice"), ("reload_agent", "bob"), ("reload_queue", "support")]


async def test_agent_crud_reloads_the_acd(env: Env) -> None:
    c = env.client
    await _agents(env)
    r = await c.get("/api/agents", headers=SUP)
    assert [a["id"] for a in r.json()] == ["alice", "bob"]
    alice = r.json()[0]
    assert (alice["skills"], alice["state"], alice["user"], alice["wrap_up_s"]) == ({"support": 3}, "logged_out",
                                                                                    "alice-u", 10.0)
    assert (await c.post("/api/agents", json={"id": "alice"}, headers=ADMIN)).status_code == 409

    r = await c.put("/api/agents/alice", json={"skills": {"support": 4, "billing": 1}, "max_offers": 2},
                    headers=ADMIN)
    assert r.status_code == 200, r.text
    assert (r.json()["skills"], r.json()["max_offers"], r.json()["name"]) == ({"support": 4, "billing": 1}, 2, "Alice")
    assert (await c.put("/api/agents/nobody", json={"name": "x"}, headers=ADMIN)).status_code == 404
    r = await c.delete("/api/agents/bob", headers=ADMIN)
    assert r.status_code == 200 and r.json()["id"] == "bob"
    assert (await c.get("/api/agents/bob", headers=SUP)).status_code == 404
    assert env.acd.calls[2:] == [("reload_agent", "alice"), ("reload_agent", "bob")]


async def test_invalid_bodies_name_every_field_and_change_nothing(env: Env) -> None:
    c = env.client
    r = await c.post("/api/agents", json={"id": "carol", "skills": {"support": 9}, "wrap_up_s": -3,
                                          "uri": "tel:123", "teem": "x"}, headers=ADMIN)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert "skills: support: proficiency 9 is outside 1..5" in errors
    assert "wrap_up_s: -3.0 is negative (times are seconds, 0 or more)" in errors
    assert "uri: 'tel:123' is not a SIP URI (e.g. sip:alice@10.0.0.5:5060) or \"desk\" (the browser desk)" in errors
    assert "teem: unknown field (did you mean 'team'?)" in errors
    assert (await c.get("/api/agents/carol", headers=SUP)).status_code == 404

    r = await c.post("/api/queues", json={"name": "support", "strategy": "longest_idle",
                                          "overflow": "queue:support", "ring_timeout_s": 0}, headers=ADMIN)
    assert r.status_code == 422
    assert r.json()["errors"][0].startswith("strategy: unknown strategy 'longest_idle' (did you mean 'longest-idle'?)")
    assert "overflow: queue 'support' cannot overflow into itself" in r.json()["errors"]
    assert "ring_timeout_s: must be more than 0" in r.json()["errors"]
    assert (await c.get("/api/queues", headers=SUP)).json() == []
    assert env.acd.calls == []


async def test_queue_crud(env: Env) -> None:
    c = env.client
    body = {"name": "support", "skills": {"support": 2}, "strategy": "ring-all", "overflow": "voicemail:support",
            "escalation": [{"after_s": 60, "add_queues": ["billing"]}, {"after_s": 30, "skills": {"support": 1}}]}
    r = await c.post("/api/queues", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    got = r.json()
    assert [s["after_s"] for s in got["escalation"]] == [30.0, 60.0]
    assert got["wrap_up_s"] is None and got["ring_timeout_s"] == 15.0
    r = await c.put("/api/queues/support", json={"max_wait_s": 120, "wrap_up_s": 5}, headers=ADMIN)
    assert r.status_code == 200 and (r.json()["max_wait_s"], r.json()["wrap_up_s"], r.json()["strategy"]) == \
        (120.0, 5.0, "ring-all")
    r = await c.put("/api/queues/support", json={"wrap_up_s": None}, headers=ADMIN)
    assert r.json()["wrap_up_s"] is None                                     # back to each agent's own
    assert (await c.put("/api/queues/nope", json={}, headers=ADMIN)).status_code == 404
    assert (await c.get("/api/queues/nope", headers=SUP)).status_code == 404
    assert (await c.post("/api/queues", json={"name": "support"}, headers=ADMIN)).status_code == 409
    assert env.acd.calls == [("reload_queue", "support")] * 3


async def test_agents_change_only_their_own_state(env: Env) -> None:
    c = env.client
    await _agents(env)
    r = await c.post("/api/agents/alice/state", json={"action": "login"}, headers=ALICE)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["live"]) == ("available", True)
    assert (await c.post("/api/agents/bob/state", json={"action": "login"}, headers=ALICE)).status_code == 403
    assert (await c.post("/api/agents/nobody/state", json={"action": "login"}, headers=ALICE)).status_code == 403
    assert (await c.post("/api/agents/alice/state", json={"action": "login"}, headers=QA)).status_code == 403
    assert (await c.get("/api/agents/bob/status", headers=ALICE)).status_code == 403
    assert (await c.get("/api/agents/bob", headers=ALICE)).status_code == 403
    assert (await c.get("/api/agents/alice", headers=ALICE)).json()["state"] == "available"

    # A supervisor changes anyone's; the reason goes through; the state is recorded for a restart.
    r = await c.post("/api/agents/bob/state", json={"action": "login"}, headers=SUP)
    r = await c.post("/api/agents/bob/state", json={"action": "pause", "reason": "lunch"}, headers=SUP)
    assert (r.json()["state"], r.json()["reason"]) == ("break", "lunch")
    bob = await AgentRepo(env.db).get("bob")
    assert bob is not None and (bob.state, bob.reason) == ("break", "lunch")
    r = await c.get("/api/agents/bob/status", headers=BOB)
    assert (r.json()["state"], r.json()["live"]) == ("break", True)
    state_calls = [x for x in env.acd.calls if x[0] == "set_state"]
    assert state_calls == [("set_state", "alice", "login", "", "alice-u"), ("set_state", "bob", "login", "", "sv"),
                           ("set_state", "bob", "pause", "lunch", "sv")]

    # The ACD refusing (resume while not on a break) is a 409 and records nothing.
    r = await c.post("/api/agents/alice/state", json={"action": "resume"}, headers=ALICE)
    assert r.status_code == 409 and "not on a break" in r.json()["detail"]
    assert (await c.post("/api/agents/alice/state", json={"action": "dance"}, headers=ALICE)).status_code == 422
    r = await c.post("/api/agents/alice/state", json={"action": "pause", "reason": "two words"}, headers=ALICE)
    assert r.status_code == 422 and "reason code" in r.json()["detail"]


async def test_without_the_acd_the_state_is_recorded_and_503(env_no_acd: Env) -> None:
    c = env_no_acd.client
    await _agents(env_no_acd)
    r = await c.post("/api/agents/alice/state", json={"action": "pause", "reason": "training"}, headers=ALICE)
    assert r.status_code == 503
    assert "the ACD is not running" in r.json()["detail"] and "recorded" in r.json()["detail"]
    alice = await AgentRepo(env_no_acd.db).get("alice")
    assert alice is not None and (alice.state, alice.reason) == ("break", "training")
    r = await c.get("/api/agents/alice/status", headers=ALICE)
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["reason"], r.json()["live"]) == ("break", "training", False)


async def test_customers_import_and_lookup(env: Env) -> None:
    c = env.client
    csv_text = "phone,name,vip_tier,language,last_agent,notes\n+15550100,Ada,2,en,alice,\n+15550101,Bob,0,,,\n"
    csv_headers = {**SUP, "Content-Type": "text/csv"}
    r = await c.post("/api/customers/import", content=csv_text, headers=csv_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["inserted"], r.json()["updated"]) == (2, 0)
    assert (await c.post("/api/customers/import", content=csv_text,
                         headers={**ALICE, "Content-Type": "text/csv"})).status_code == 403
    assert (await c.post("/api/customers/import", json={"x": 1}, headers=SUP)).status_code == 415
    assert (await c.post("/api/customers/import", content=b"\xff\xfe", headers=csv_headers)).status_code == 400

    bad = "phone,vip_tier\n+15550102,1\n+15550103,99\n,1\n"
    r = await c.post("/api/customers/import", content=bad, headers=csv_headers, params={"file": "crm.csv"})
    assert r.status_code == 422
    assert r.json()["errors"] == ["crm.csv:3: vip_tier: 99 is outside 0..9", "crm.csv:4: phone: required"]
    assert (await c.get("/api/customers/+15550102", headers=SUP)).status_code == 404     # nothing imported
    r = await c.post("/api/customers/import", content=bad, headers=csv_headers,
                     params={"file": "crm.csv", "skip_bad": "true"})
    assert r.status_code == 200 and r.json()["inserted"] == 1 and len(r.json()["skipped"]) == 2

    await CallRepo(env.db).create("call1", "sip1", "+15550100", "1000", "127.0.0.1", "main")
    r = await c.get("/api/customers/%2B15550100", headers=ALICE)                          # agents look up
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["name"], got["vip_tier"], got["known"], [x["id"] for x in got["calls"]]) == \
        ("Ada", 2, True, ["call1"])
    assert (await c.get("/api/customers/+19999", headers=SUP)).status_code == 404
    assert (await c.get("/api/customers/+15550100", headers=QA)).status_code == 403


async def test_a_queue_is_never_called_stats(env: Env) -> None:
    stats = APIRouter()

    @stats.get("/api/queues/stats")
    async def fake_stats() -> dict[str, str]:
        return {"stats": "here"}

    app = bare_app(env.ctx, build_router(env.ctx), stats)        # (ours first: it must not shadow the stats route)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/api/queues/stats", headers=SUP)).json() == {"stats": "here"}
        r = await client.post("/api/queues", json={"name": "stats"}, headers=ADMIN)
        assert r.status_code == 422 and r.json()["errors"][0].startswith("name: 'stats' is reserved")
        assert (await client.post("/api/queues", json={"name": "statsq"}, headers=ADMIN)).status_code == 201
        assert (await client.get("/api/queues/statsq", headers=SUP)).status_code == 200


async def test_create_app_serves_these_routes(env: Env) -> None:
    """The server's app (callcenter.api.create_app) includes this router."""
    app = create_app(env.ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert (await client.get("/api/queues", headers=SUP)).status_code == 200
    for p in ("/api/agents", "/api/agents/{agent_id}", "/api/agents/{agent_id}/state", "/api/agents/{agent_id}/status",
              "/api/queues", "/api/queues/{name}", "/api/customers/{phone}", "/api/customers/import"):
        assert p in paths, p
    assert "text/csv" in paths["/api/customers/import"]["post"]["requestBody"]["content"]

"""/api/flows, /api/numbers, /api/voicemails and the call's IVR path, in-process on a real database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jsonschema
import pytest

from callcenter.api import ApiContext, create_app
from callcenter.flow_directory import FlowDirectory
from callcenter.storage.db import Database
from callcenter.storage.flows import VoicemailRepo
from callcenter.storage.repos import CallRepo, EventRepo, UserRepo
from tests.unit.test_flow_store import BROKEN, caller_flow, helper_flow, menu_flow

ADMIN = {"Authorization": "Bearer tok-admin"}
SUP = {"Authorization": "Bearer tok-sup"}
QA = {"Authorization": "Bearer tok-qa"}


class Env:
    def __init__(self, db: Database, client: httpx.AsyncClient, directory: FlowDirectory, data_dir: Path) -> None:
        self.db, self.client, self.directory, self.data_dir = db, client, directory, data_dir


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = await Database.open(tmp_path)
    users = UserRepo(db)
    await users.add("root", "admin", "tok-admin")
    await users.add("sv", "supervisor", "tok-sup")
    await users.add("q", "qa", "tok-qa")
    directory = FlowDirectory(db)
    await directory.load()
    app = create_app(ApiContext(calls=CallRepo(db), users=users, data_dir=tmp_path.resolve(),
                                active_calls=lambda: 0, flows=directory))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Env(db, client, directory, tmp_path.resolve())
    await db.close()


async def test_schema_needs_no_token_and_checks_a_flow(env: Env) -> None:
    got = await env.client.get("/api/flows/schema")
    assert got.status_code == 200
    schema = got.json()
    import yaml

    jsonschema.validate(yaml.safe_load(menu_flow()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x"}, schema)


async def test_flow_routes_are_admin_only(env: Env) -> None:
    c = env.client
    for method, path in (("GET", "/api/flows"), ("POST", "/api/flows"), ("GET", "/api/flows/example"),
                         ("GET", "/api/flows/example/versions/1"), ("GET", "/api/numbers"),
                         ("GET", "/api/numbers/1000"), ("POST", "/api/numbers/1000/rollback")):
        assert (await c.request(method, path)).status_code == 401, path
        assert (await c.request(method, path, headers=SUP)).status_code == 403, path
    assert (await c.get("/api/voicemails")).status_code == 401
    assert (await c.get("/api/voicemails", headers=QA)).status_code == 403
    assert (await c.get("/api/voicemails", headers=SUP)).status_code == 200


async def test_deploy_list_show_rollback(env: Env) -> None:
    c = env.client
    got = await c.post("/api/flows", json={"text": menu_flow(), "number": "1000", "comment": "first"}, headers=ADMIN)
    assert got.status_code == 201, got.text
    body = got.json()
    assert (body["name"], body["version"], body["created"], body["number"], body["previous"]) == \
        ("example", 1, True, "1000", None)
    assert env.directory.resolve("1000") is not None        # the API reloaded the directory
    v1 = env.directory.resolve("1000")
    got = await c.post("/api/flows", json={"text": menu_flow(say="two"), "number": "1000"}, headers=ADMIN)
    assert got.json()["previous"] == {"flow": "example", "version": 1}
    assert env.directory.resolve("1000").version == 2  # type: ignore[union-attr]
    assert v1 is not None and v1.version == 1               # a call that started on v1 still has it
    same = (await c.post("/api/flows", json={"text": menu_flow(say="two")}, headers=ADMIN)).json()
    assert (same["version"], same["created"]) == (2, False)

    flows = (await c.get("/api/flows", headers=ADMIN)).json()
    assert [(f["name"], f["latest_version"], f["versions"]) for f in flows] == [("example", 2, 2)]
    assert [(n["number"], n["version"]) for n in flows[0]["numbers"]] == [("1000", 2)]
    detail = (await c.get("/api/flows/example", headers=ADMIN)).json()
    assert [(v["version"], v["created_by"], v["comment"]) for v in detail["versions"]] == \
        [(1, "root", "first"), (2, "root", "")]
    text = (await c.get("/api/flows/example/versions/1", headers=ADMIN)).json()
    assert text["text"] == menu_flow()
    assert (await c.get("/api/flows/example/versions/3", headers=ADMIN)).status_code == 404
    assert (await c.get("/api/flows/nope", headers=ADMIN)).status_code == 404

    number = (await c.get("/api/numbers/1000", headers=ADMIN)).json()
    assert [h["version"] for h in number["history"]] == [1, 2]
    assert (await c.get("/api/numbers/2000", headers=ADMIN)).status_code == 404
    assert (await c.get("/api/numbers/a%20b", headers=ADMIN)).status_code == 400

    back = await c.post("/api/numbers/1000/rollback", headers=ADMIN)
    assert back.status_code == 200 and back.json()["after"]["version"] == 1
    assert env.directory.resolve("1000").version == 1  # type: ignore[union-attr]
    assert (await c.post("/api/numbers/1000/rollback", headers=ADMIN)).status_code == 409
    to = await c.post("/api/numbers/1000/rollback", json={"to": 2, "comment": "fixed"}, headers=ADMIN)
    assert to.json()["after"]["version"] == 2 and to.json()["after"]["comment"] == "fixed"
    assert (await c.post("/api/numbers/1000/rollback", json={"to": 5}, headers=ADMIN)).status_code == 404
    assert (await c.post("/api/numbers/9/rollback", headers=ADMIN)).status_code == 404


async def test_invalid_deploy_is_422_and_changes_nothing(env: Env) -> None:
    c = env.client
    await c.post("/api/flows", json={"text": menu_flow(), "number": "1000"}, headers=ADMIN)
    before = (await c.get("/api/flows", headers=ADMIN)).json()
    got = await c.post("/api/flows", json={"text": BROKEN, "number": "1000", "file": "menu.yaml"}, headers=ADMIN)
    assert got.status_code == 422
    errors = got.json()["errors"]
    assert errors and all(e.startswith("menu.yaml:") for e in errors) and any("nowhere" in e for e in errors)
    bad = await c.post("/api/flows", json={"text": caller_flow("main", "helper")}, headers=ADMIN)
    assert bad.status_code == 422 and any("helper" in e for e in bad.json()["errors"])
    assert (await c.post("/api/flows", json={"text": menu_flow(), "number": "1 000"}, headers=ADMIN)).status_code \
        == 400
    assert (await c.post("/api/flows", json={"number": "1000"}, headers=ADMIN)).status_code == 422  # no text
    assert (await c.get("/api/flows", headers=ADMIN)).json() == before
    assert env.directory.resolve("1000").version == 1  # type: ignore[union-attr]
    # A subflow that is deployed is fine.
    await c.post("/api/flows", json={"text": helper_flow()}, headers=ADMIN)
    ok = await c.post("/api/flows", json={"text": caller_flow("main", "helper"), "number": "2000"}, headers=ADMIN)
    assert ok.status_code == 201
    assert set(env.directory.resolve("2000").subflows) == {"helper"}  # type: ignore[union-attr]


async def test_voicemails_and_their_audio(env: Env) -> None:
    vm_dir = env.data_dir / "voicemail" / "2026"
    vm_dir.mkdir(parents=True)
    (vm_dir / "c1.wav").write_bytes(b"RIFFvm")
    secret = env.data_dir / "secret.wav"
    secret.write_bytes(b"RIFFsecret")
    os.symlink(secret, vm_dir / "link.wav")
    repo = VoicemailRepo(env.db)
    ok = await repo.add("c1", "sales", "voicemail/2026/c1.wav", 2.0, "ab" * 32, 6, "1001")
    link = await repo.add("c2", "sales", "voicemail/2026/link.wav", 2.0, "", 10)
    # (add() refuses such a path; a row written past it must still not escape the folder)
    await env.db.conn.execute("INSERT INTO voicemails (call_id, mailbox, path, seconds, sha256, bytes, created_at) "
                              "VALUES ('c3', 'sales', 'voicemail/../secret.wav', 2, '', 10, '2026')")
    await env.db.conn.commit()
    escape = link + 1
    gone = await repo.add("c4", "support", "voicemail/2026/gone.wav", 2.0, "", 10)
    listed = (await env.client.get("/api/voicemails", params={"mailbox": "sales"}, headers=SUP)).json()
    assert [v["call_id"] for v in listed] == ["c3", "c2", "c1"]
    assert listed[-1]["audio_url"] == f"/api/voicemails/{ok}/audio" and listed[-1]["caller_number"] == "1001"
    got = await env.client.get(f"/api/voicemails/{ok}/audio", headers=SUP)
    assert got.status_code == 200 and got.content == b"RIFFvm" and got.headers["content-type"] == "audio/wav"
    for vid in (link, escape, gone):
        assert (await env.client.get(f"/api/voicemails/{vid}/audio", headers=SUP)).status_code == 410
    assert (await env.client.get("/api/voicemails/999/audio", headers=SUP)).status_code == 404
    assert (await env.client.get(f"/api/voicemails/{ok}/audio", headers=QA)).status_code == 403


async def test_call_detail_has_its_ivr_path(env: Env) -> None:
    calls, events = CallRepo(env.db), EventRepo(env.db)
    await calls.create("c1", "s1", "1001", "1000", "", "example")
    await calls.update("c1", flow_version=3)
    await events.append("CALLSTART", "c1")
    await events.append("IVR_NODE", "c1", node="main")
    await events.append("IVR_KEY", "c1", key="*", node="pin", sensitive=True)
    await events.append("IVR_NODE", "c1", node="bye")
    got = (await env.client.get("/api/calls/c1", headers=QA)).json()
    assert got["flow_version"] == 3
    assert [(s["event"], s["data"]) for s in got["ivr_path"]] == [
        ("IVR_NODE", {"node": "main"}), ("IVR_KEY", {"key": "*", "node": "pin", "sensitive": True}),
        ("IVR_NODE", {"node": "bye"})]
    listed = (await env.client.get("/api/calls", headers=QA)).json()
    assert "ivr_path" not in listed[0]                      # the list stays light

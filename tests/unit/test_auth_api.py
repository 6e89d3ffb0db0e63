"""/api/session and require() in-process (httpx ASGITransport) against the server's app on a real SQLite
database: sign in, cookie flags, who am I, sign out, rate limits (429 + Retry-After), session expiry with
an injected clock, the CSRF Origin check, bearer tokens still working, and no secret in any log line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from callcenter import auth_api
from callcenter.api import ApiContext, create_app, require
from callcenter.auth import COOKIE, Auth, SignInLimiter, hash_password
from callcenter.logs import KeyValueFormatter
from callcenter.storage.acd import AgentRepo
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, User, UserRepo
from routing.model import AgentSpec

HOST = "testserver"
SITE = {"Origin": f"http://{HOST}"}
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def app_with_session(ctx: ApiContext) -> FastAPI:
    """The server's app, with /api/session (added here until create_app includes it) and one test route
    that changes something, to check require()'s CSRF rule on."""
    app = create_app(ctx)
    if "/api/session" not in {getattr(r, "path", "") for r in app.routes}:
        app.include_router(auth_api.build_router(ctx))

    @app.post("/api/test/change")
    async def change(user: Annotated[User, Depends(require("agent"))]) -> dict[str, str]:
        return {"by": user.name}

    return app


class Env:
    def __init__(self, db: Database, ctx: ApiContext, clock: Clock, client: httpx.AsyncClient) -> None:
        self.db, self.ctx, self.clock, self.client = db, ctx, clock, client

    async def sign_in(self, name: str = "alice", password: str = PASSWORD, *, headers: dict[str, str] | None = None,
                      client: httpx.AsyncClient | None = None) -> httpx.Response:
        return await (client or self.client).post("/api/session", json={"name": name, "password": password},
                                                  headers=SITE if headers is None else headers)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = await Database.open(tmp_path)
    users = UserRepo(db)
    await users.add("alice", "agent", "tok-alice", password_hash=hash_password(PASSWORD))
    await users.add("quinn", "qa", "tok-qa", password_hash=hash_password(PASSWORD))
    await users.add("robot", "admin", "tok-robot")
    await AgentRepo(db).add(AgentSpec(id="a7", name="Alice", user="alice"))
    clock = Clock()
    auth = Auth(users, clock=clock, limiter=SignInLimiter(clock=clock))
    ctx = ApiContext(calls=CallRepo(db), users=users, data_dir=tmp_path, active_calls=lambda: 0, auth=auth)
    transport = httpx.ASGITransport(app=app_with_session(ctx), client=("10.1.2.3", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
        try:
            yield Env(db, ctx, clock, client)
        finally:
            await db.close()


def set_cookie(r: httpx.Response) -> str:
    values = r.headers.get_list("set-cookie")
    assert len(values) == 1, values
    return values[0]


async def test_sign_in_sets_a_strict_http_only_cookie(env: Env) -> None:
    r = await env.sign_in()
    assert r.status_code == 200, r.text
    assert r.json() == {"id": 1, "name": "alice", "role": "agent", "agent": "a7"}
    header = set_cookie(r)
    value = env.client.cookies[COOKIE]
    assert header == f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/"        # no Secure over http
    assert r.headers["cache-control"] == "no-store"
    me = await env.client.get("/api/session")
    assert me.status_code == 200 and me.json()["name"] == "alice"
    assert (await env.client.get("/api/me")).json() == {"id": 1, "name": "alice", "role": "agent"}

    quinn = await env.sign_in("quinn")
    assert quinn.json() == {"id": 2, "name": "quinn", "role": "qa", "agent": None}
    assert env.client.cookies[COOKIE] != value
    # the new sign-in replaced the browser's previous session
    old = await env.client.get("/api/session", headers={"Cookie": f"{COOKIE}={value}"})
    assert old.status_code == 401


async def test_secure_flag_over_https(env: Env) -> None:
    transport = httpx.ASGITransport(app=app_with_session(env.ctx))
    async with httpx.AsyncClient(transport=transport, base_url="https://cc.example.com") as tls:
        r = await env.sign_in(client=tls, headers={"Origin": "https://cc.example.com"})
        assert r.status_code == 200 and set_cookie(r).endswith("; Path=/; Secure")


async def test_wrong_password_unknown_user_and_token_only_user_look_alike(env: Env) -> None:
    answers = [await env.sign_in("alice", "wrong password"), await env.sign_in("mallory", PASSWORD),
               await env.sign_in("robot", PASSWORD)]
    assert {(r.status_code, r.text) for r in answers} == {(401, '{"detail":"wrong user name or password"}')}
    assert all("set-cookie" not in r.headers for r in answers)
    assert (await env.client.get("/api/session")).status_code == 401


async def test_bad_bodies_are_422_and_never_echo_the_password(env: Env) -> None:
    for body in ({"name": "", "password": "hunter2-secret"}, {"name": "alice"}, {"name": "a", "password": ""},
                 {"name": "alice", "password": "hunter2-secret", "extra": 1}, {"name": "a", "password": "p" * 1025}):
        r = await env.client.post("/api/session", json=body, headers=SITE)
        assert r.status_code == 422, body
        assert "hunter2" not in r.text and "ppp" not in r.text


async def test_rate_limit_per_user_and_address(env: Env) -> None:
    for _ in range(5):
        assert (await env.sign_in("alice", "guess")).status_code == 401
    locked = await env.sign_in("alice", PASSWORD)                  # the right password, but too late
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert "too many failed sign-ins" in locked.json()["detail"]
    assert (await env.sign_in("quinn")).status_code == 200          # another user from the same address
    other = httpx.ASGITransport(app=app_with_session(env.ctx), client=("10.9.9.9", 4000))
    async with httpx.AsyncClient(transport=other, base_url=f"http://{HOST}") as elsewhere:
        assert (await env.sign_in("alice", client=elsewhere)).status_code == 200
    env.ctx.auth.limiter.clock = lambda: env.clock.t + 901         # (the limiter's own clock) the window passed
    assert (await env.sign_in("alice")).status_code == 200


async def test_rate_limit_per_address(env: Env) -> None:
    for i in range(20):
        assert (await env.sign_in(f"user{i}", "guess")).status_code == 401
    r = await env.sign_in("quinn")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


async def test_sessions_expire(env: Env) -> None:
    assert (await env.sign_in()).status_code == 200
    env.clock.t += 11 * 3600
    assert (await env.client.get("/api/session")).status_code == 200
    env.clock.t += 12 * 3600 + 60
    r = await env.client.get("/api/session")
    assert r.status_code == 401 and "sign in again" in r.json()["detail"]
    assert set_cookie(r).startswith(f"{COOKIE}=; Max-Age=0")        # the browser forgets the dead cookie


async def test_sign_out(env: Env) -> None:
    assert (await env.sign_in()).status_code == 200
    value = env.client.cookies[COOKIE]
    assert (await env.client.delete("/api/session")).status_code == 403          # no Origin: not from our page
    r = await env.client.delete("/api/session", headers=SITE)
    assert r.status_code == 204 and set_cookie(r).startswith(f"{COOKIE}=; Max-Age=0")
    assert (await env.client.get("/api/session", headers={"Cookie": f"{COOKIE}={value}"})).status_code == 401
    assert (await env.client.delete("/api/session", headers=SITE)).status_code == 204   # twice: fine


async def test_csrf_origin_check_for_cookie_requests(env: Env) -> None:
    assert (await env.sign_in()).status_code == 200
    ok = await env.client.post("/api/test/change", headers=SITE)
    assert ok.status_code == 200 and ok.json() == {"by": "alice"}
    for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": f"http://{HOST}:8080"},
                    {**SITE, "Sec-Fetch-Site": "cross-site"}):
        r = await env.client.post("/api/test/change", headers=headers)
        assert r.status_code == 403, headers
        assert "Origin" in r.json()["detail"]
    # reading needs no Origin; a bearer token needs none either (a browser cannot be made to send one)
    assert (await env.client.get("/api/session")).status_code == 200
    bearer = await env.client.post("/api/test/change",     # (with the cookie too: the header is what counts)
                                   headers={"Authorization": "Bearer tok-alice", "Cookie": f"{COOKIE}=x"})
    assert bearer.status_code == 200
    # signing in from another site's form is refused too (login CSRF)
    assert (await env.sign_in("quinn", headers={"Origin": "http://evil.example"})).status_code == 403


async def test_bearer_tokens_still_work(env: Env) -> None:
    r = await env.client.get("/api/calls")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (await env.client.get("/api/calls", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await env.client.get("/api/calls", headers={"Authorization": "Basic eDp5"})).status_code == 401
    assert (await env.client.get("/api/calls", headers={"Authorization": "Bearer tok-qa"})).status_code == 200
    assert (await env.client.get("/api/calls", headers={"Authorization": "Bearer tok-alice"})).status_code == 403
    who = await env.client.get("/api/session", headers={"Authorization": "Bearer tok-robot"})
    assert who.json() == {"id": 3, "name": "robot", "role": "admin", "agent": None}
    # a cookie user has their role's rights, no more
    assert (await env.sign_in("quinn")).status_code == 200
    assert (await env.client.get("/api/calls")).status_code == 200
    assert (await env.client.get("/api/users")).status_code == 403


async def test_no_secret_in_any_log_line(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await env.sign_in("alice", "wrong password")
    await env.sign_in("mallory", PASSWORD)
    assert (await env.sign_in()).status_code == 200
    value = env.client.cookies[COOKIE]
    await env.client.get("/api/session")
    await env.client.post("/api/test/change", headers={"Origin": "http://evil.example"})
    await env.client.get("/api/calls", headers={"Authorization": "Bearer tok-qa"})
    await env.client.delete("/api/session", headers=SITE)
    await env.client.get("/api/session", headers={"Cookie": f"{COOKIE}={value}"})
    lines = [KeyValueFormatter("%(levelname)s %(name)s %(message)s").format(r) for r in caplog.records]
    text = "\n".join(lines)
    assert "signed in" in text and "address=10.1.2.3" in text and "sign-in failed" in text
    assert "cross-site request refused" in text and "signed out" in text
    for secret in (value, PASSWORD, "wrong password", "tok-qa", "tok-alice"):
        assert secret not in text, secret

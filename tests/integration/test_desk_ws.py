"""The agent desk's WebSocket (/api/desk/ws) on a real uvicorn server, a real SQLite database, the real
ACD and SIP engine in this process, and websockets clients: credentials, who may act for whom, seq
replay protection, heartbeat, resume within the grace period, takeover; and a DeskLeg offer answered
for real by an aiortc peer (tests/support/rtc_client.py standing in for the browser), with audio
checked both ways by frequency against a bridge port standing in for the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callcenter.acd import AcdService
from callcenter.acd_store import AcdStore
from callcenter.agent_leg import LegEnd
from callcenter.api import ApiContext, create_app
from callcenter.auth import COOKIE, auth_of, hash_password
from callcenter.desk import DeskHub, build_router
from callcenter.desk_leg import DeskLeg
from callcenter.server import convert_prompt
from callcenter.storage.acd import AgentRepo
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, EventRepo, UserRepo
from callcenter.trunk import Trunk
from ivr.prompts import PromptCache
from routing.model import AgentSpec
from tests.support.ports import free_port
from tests.support.rtc_client import BrowserPeer
from voice.config import EngineConfig
from voice.engine import Engine

pytestmark = pytest.mark.integration

GRACE_S, HEARTBEAT_S = 0.8, 0.25
TOKENS = {"alice": "tok-alice-0123456789", "bob": "tok-bob-0123456789", "sue": "tok-sue-0123456789",
          "quinn": "tok-quinn-0123456789", "carl": "tok-carl-0123456789"}
PASSWORD = "correct horse battery"


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Env:
    url: str
    host: str
    hub: DeskHub
    acd: AcdService
    engine: Engine
    db: Database
    ctx: ApiContext

    async def events(self, name: str) -> list[dict[str, Any]]:
        await self.db.flush()
        async with self.db.conn.execute("SELECT event, agent, call_id, data FROM events WHERE event = ? ORDER BY id",
                                        (name,)) as cur:
            return [{**dict(r), "data": json.loads(r["data"])} for r in await cur.fetchall()]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = await Database.open(tmp_path)
    calls, events, users = CallRepo(db), EventRepo(db), UserRepo(db)
    for name, role in (("alice", "agent"), ("bob", "agent"), ("sue", "supervisor"), ("quinn", "qa"),
                       ("carl", "agent")):
        await users.add(name, role, TOKENS[name], password_hash=hash_password(PASSWORD))
    agents = AgentRepo(db)
    await agents.add(AgentSpec(id="alice", uri="desk", user="alice", wrap_up_s=2.0))
    await agents.add(AgentSpec(id="bob", uri="desk", user="bob"))
    engine = Engine(EngineConfig(host="127.0.0.1", sip_port=free_port(), transports=("udp",), rtp_port=41000,
                                 rtp_port_range=2000, pjsip_log_level=1))
    await engine.start()
    prompts = PromptCache(tmp_path / "prompts", 8000, convert_prompt, "", 160)
    acd = AcdService(engine, AcdStore(db), events, calls, prompts, tmp_path, hold_music=Path("/usr/share/asterisk/moh"),
                     trunk=Trunk())
    await acd.start()
    from callcenter.live_events import EventBus

    bus = EventBus()
    acd.bus = bus
    ctx = ApiContext(calls=calls, users=users, data_dir=tmp_path, active_calls=lambda: 0, db=db, acd=acd, bus=bus)
    hub = DeskHub(ctx, engine=engine, grace_s=GRACE_S, heartbeat_s=HEARTBEAT_S, auth_timeout_s=0.5)
    app = create_app(ctx)
    app.include_router(build_router(ctx, hub))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = _Uvicorn(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="test-http")
    while not server.started:  # noqa: ASYNC110 (uvicorn has no event to wait on)
        await asyncio.sleep(0.01)
    host = f"127.0.0.1:{port}"
    try:
        yield Env(f"ws://{host}/api/desk/ws", host, hub, acd, engine, db, ctx)
    finally:
        await hub.close()
        server.should_exit = True
        await task
        sock.close()
        await acd.stop()
        bus.close()
        await engine.stop()
        await db.close()


class Desk:
    """A desk client: numbered messages; a reader task answers pings (unless ``pong`` is off) and keeps the
    other messages in order, like a page would."""

    def __init__(self, ws: ClientConnection, *, pong: bool = True) -> None:
        self.ws = ws
        self.seq = 0
        self.pong = pong
        self.seen: list[dict[str, Any]] = []
        self._unread: list[dict[str, Any]] = []
        self._inbox: asyncio.Queue[dict[str, Any] | ConnectionClosed] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name="test-desk-reader")

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                msg = json.loads(text)
                self.seen.append(msg)
                if msg["type"] == "ping":
                    if self.pong:
                        await self.send("pong")
                    continue
                self._inbox.put_nowait(msg)
        except ConnectionClosed as exc:
            self._inbox.put_nowait(exc)
            return
        self._inbox.put_nowait(ConnectionClosed(self.ws.protocol.close_rcvd, self.ws.protocol.close_sent))

    async def stop(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def send(self, type_: str, **fields: Any) -> int:
        self.seq += 1
        await self.ws.send(json.dumps({"type": type_, "seq": self.seq, **fields}))
        return self.seq

    async def raw(self, text: str) -> None:
        await self.ws.send(text)

    async def next(self, within: float = 3.0) -> dict[str, Any]:
        if self._unread:
            return self._unread.pop(0)
        got = await asyncio.wait_for(self._inbox.get(), within)
        if isinstance(got, ConnectionClosed):
            self._inbox.put_nowait(got)
            raise got
        return got

    async def expect(self, type_: str, within: float = 3.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + within
        skipped = []
        try:
            while True:
                msg = await self.next(max(0.01, deadline - time.monotonic()))
                if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                    return msg
                skipped.append(msg)
        except TimeoutError:
            raise AssertionError(f"no {type_} {match} within {within} s; got {skipped}") from None
        finally:
            self._unread = skipped + self._unread

    async def closed(self, within: float = 3.0) -> int:
        """Read until the server closes: its close code."""
        self._unread.clear()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await self.next(within)
        assert closed.value.rcvd is not None, "closed without a close frame"
        return closed.value.rcvd.code

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Everything (but pings) that arrives within ``seconds``."""
        got = []
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(await self.next(max(0.01, deadline - time.monotonic())))
        return got


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@contextlib.asynccontextmanager
async def desk(env: Env, name: str = "alice", *, path: str = "", pong: bool = True,
               headers: dict[str, str] | None = None) -> AsyncIterator[Desk]:
    async with connect(env.url + path, additional_headers=bearer(name) if headers is None else headers,
                       open_timeout=5) as ws:
        d = Desk(ws, pong=pong)
        try:
            yield d
        finally:
            await d.stop()


async def refused(env: Env, headers: dict[str, str], first: str | None = None, path: str = "") -> tuple[int, dict]:
    """The close code and the error message of a refused connection."""
    async with connect(env.url + path, additional_headers=headers, open_timeout=5) as ws:
        if first is not None:
            await ws.send(first)
        msg = json.loads(await asyncio.wait_for(ws.recv(), 3))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 3)
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code, msg


# -- credentials ---------------------------------------------------------------------------------------
async def test_wrong_credentials_are_refused(env: Env) -> None:
    code, msg = await refused(env, {"Authorization": "Bearer not-a-token"})
    assert (code, msg["type"], msg["code"]) == (4401, "error", "unauthorized")
    code, msg = await refused(env, {})                                   # nothing within auth_timeout_s
    assert code == 4401 and "auth" in msg["message"]
    code, msg = await refused(env, {}, json.dumps({"type": "auth", "token": "wrong"}))
    assert code == 4401 and "unknown or revoked" in msg["message"]
    code, msg = await refused(env, {}, json.dumps({"type": "state", "seq": 1, "action": "login"}))
    assert code == 4401 and "first message must be" in msg["message"]
    code, msg = await refused(env, {"Cookie": f"{COOKIE}=forged-cookie-value", "Origin": f"http://{env.host}"})
    assert code == 4401
    code, msg = await refused(env, bearer("quinn"))                      # role qa
    assert (code, msg["code"]) == (4403, "forbidden")
    code, msg = await refused(env, bearer("carl"))                       # an agent-role user with no agent
    assert code == 4403 and "no agent" in msg["message"]
    code, msg = await refused(env, {**bearer("alice"), "Origin": "http://evil.example"})
    assert code == 4403 and "origin" in msg["message"]
    assert env.hub.sessions == {}


async def test_a_signed_in_cookie_and_a_first_auth_message_are_accepted(env: Env) -> None:
    _, cookie = await auth_of(env.ctx).sign_in("alice", PASSWORD)
    async with desk(env, headers={"Cookie": f"{COOKIE}={cookie}", "Origin": f"http://{env.host}"}) as d:
        welcome = await d.expect("welcome")
        assert (welcome["agent"], welcome["role"]) == ("alice", "agent")
    async with connect(env.url, open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "auth", "token": TOKENS["bob"]}))
        d = Desk(ws)
        welcome = await d.expect("welcome")
        await d.stop()
        assert welcome["agent"] == "bob" and welcome["state"]["state"] == "logged_out"
        assert welcome["heartbeat_s"] == HEARTBEAT_S and welcome["grace_s"] == GRACE_S


# -- acting for oneself only -----------------------------------------------------------------------------
async def test_an_agent_cannot_act_for_another_agent(env: Env) -> None:
    code, msg = await refused(env, bearer("alice"), path="?agent=bob")
    assert code == 4403 and "not agent 'bob'" in msg["message"]
    async with desk(env, "alice") as d:
        await d.expect("welcome")
        ref = await d.send("force_state", agent="bob", action="login")
        err = await d.expect("error", ref=ref)
        assert err["code"] == "forbidden"
        ref = await d.send("answer", offer="bob-reservation")
        assert (await d.expect("error", ref=ref))["code"] == "not_found"
        ref = await d.send("hold", call_id="someone-elses-call")
        assert (await d.expect("error", ref=ref))["code"] == "not_found"
    assert env.acd.agent_status("bob")["state"] == "logged_out"


async def test_states_and_a_supervisor_forcing_one(env: Env) -> None:
    async with desk(env, "alice") as alice, desk(env, "sue") as sue:
        assert (await sue.expect("welcome"))["agent"] is None
        await alice.expect("welcome")
        await alice.send("state", action="login")
        assert (await alice.expect("agent_state", state="available"))["agent"] == "alice"
        await alice.send("state", action="pause", reason="lunch")
        got = await alice.expect("agent_state", state="break")
        assert got["reason"] == "lunch" and got["since"] > 0
        await sue.send("force_state", agent="alice", action="logout", reason="")
        assert (await sue.expect("agent_state", agent="alice"))["state"] == "logged_out"
        await alice.expect("agent_state", state="logged_out")     # the agent hears it live (the bus)
    assert [e["data"]["supervisor"] for e in await env.events("FORCESTATE")] == ["sue"]


# -- bad and replayed messages change nothing ---------------------------------------------------------------
async def test_bad_and_replayed_messages_get_an_error_and_change_nothing(env: Env) -> None:
    async with desk(env, "alice") as d:
        await d.expect("welcome")
        await d.send("state", action="login")
        await d.expect("agent_state", state="available")
        before = env.acd.agent_status("alice")
        # replay: the same seq again (a logout this time), and an older one
        await d.ws.send(json.dumps({"type": "state", "seq": d.seq, "action": "logout"}))
        err = await d.expect("error", ref=d.seq)
        assert err["code"] == "replay" and "not above" in err["message"]
        await d.ws.send(json.dumps({"type": "state", "seq": 0, "action": "pause"}))
        assert (await d.expect("error", ref=0))["code"] == "replay"
        for raw in ('{"type": "state", "seq": 99, "action": "sleep"}',          # a bad field value
                    '{"type": "state", "seq": 100}',                            # a missing field
                    '{"type": "stat", "seq": 101, "action": "logout"}',         # an unknown type
                    '{"type": "state", "seq": 102, "action": "logout", "x": 1}',  # an unknown field
                    '{"type": "state", "seq": "103", "action": "logout"}',      # seq not an integer
                    "not json", "[]",
                    json.dumps({"type": "state", "seq": 104, "action": "logout", "reason": "x" * 70_000})):
            await d.raw(raw)
            err = await d.expect("error")
            assert err["code"] == "bad_message", err
        after = env.acd.agent_status("alice")
        assert (after["state"], after["since"]) == (before["state"], before["since"]) == ("available",
                                                                                          before["since"])
        # a good message after the bad ones still only needs a seq above the last *accepted* one
        await d.send("state", action="pause", reason="coffee")
        await d.expect("agent_state", state="break")


# -- heartbeat ----------------------------------------------------------------------------------------------
async def test_heartbeat(env: Env) -> None:
    async with desk(env, "alice") as d:
        await d.expect("welcome")
        await d.quiet(HEARTBEAT_S * 6)                # pings answered: still connected
        assert sum(1 for m in d.seen if m["type"] == "ping") >= 4
        assert env.hub.reachable("alice")
    async with desk(env, "bob", pong=False) as d:
        await d.expect("welcome")
        start = time.monotonic()
        err = await d.expect("error", within=HEARTBEAT_S * 8, code="heartbeat")
        assert "unanswered" in err["message"]
        assert await d.closed() == 4408
        assert time.monotonic() - start < HEARTBEAT_S * 8
        assert not env.hub.reachable("bob")


# -- resume within the grace period, takeover ------------------------------------------------------------
async def test_resume_within_grace_keeps_the_session(env: Env) -> None:
    async with desk(env, "alice") as d:
        first = await d.expect("welcome")
        await d.send("state", action="login")
        await d.expect("agent_state", state="available")
        seq = d.seq
    await asyncio.sleep(GRACE_S / 4)
    async with desk(env, "alice") as d:
        d.seq = seq
        again = await d.expect("welcome")
        assert again["session"] == first["session"] and again["last_seq"] >= seq - 1
        await d.send("resume", resume_token=first["resume_token"])
        resumed = await d.expect("welcome", resumed=True)
        assert resumed["session"] == first["session"]
        await d.ws.send(json.dumps({"type": "state", "seq": 1, "action": "logout"}))   # an old seq: replay
        assert (await d.expect("error", ref=1))["code"] == "replay"
        ref = await d.send("resume", resume_token="made-up")
        assert (await d.expect("error", ref=ref))["code"] == "unauthorized"
        token = resumed["resume_token"]
    assert env.acd.agent_status("alice")["state"] == "available"
    await asyncio.sleep(GRACE_S * 1.6)                  # no reconnect: the session ends, a desk agent logs out
    assert "agent:alice" not in env.hub.sessions
    assert env.acd.agent_status("alice")["state"] == "logged_out"
    assert [e["agent"] for e in await env.events("DESKLOGOFF")] == ["alice"]
    async with desk(env, "alice") as d:
        fresh = await d.expect("welcome")
        assert fresh["session"] != first["session"] and fresh["last_seq"] == -1
        ref = await d.send("resume", resume_token=token)
        assert (await d.expect("error", ref=ref))["code"] == "unauthorized"


async def test_a_second_connection_takes_over(env: Env) -> None:
    async with desk(env, "alice") as one:
        w1 = await one.expect("welcome")
        async with desk(env, "alice") as two:
            w2 = await two.expect("welcome")
            err = await one.expect("error", code="taken_over")
            assert "another connection" in err["message"]
            assert await one.closed() == 4409
            assert w2["session"] == w1["session"]
            await two.send("state", action="login")
            await two.expect("agent_state", state="available")
            assert env.hub.reachable("alice")
    assert len(await env.events("DESKTAKEOVER")) == 1


# -- a DeskLeg answered by a real aiortc peer ---------------------------------------------------------------
def tone_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum[5:])) + 5])


class CallerPort:
    """A bridge port standing in for the caller: says a 500 Hz tone, keeps what it hears."""

    def __init__(self, engine: Engine, port: int) -> None:
        self.audio = engine.port_audio(port)
        self.port = port
        self.heard: list[np.ndarray] = []
        self.audio.sink = lambda frame: self.heard.append(frame.pcm.copy())
        self._task = asyncio.create_task(self._say(), name="caller-port-say")

    async def _say(self) -> None:
        n = 0
        while True:
            while self.audio.speak_buffered() < 480:
                t = (n + np.arange(160)) / 8000
                self.audio.write_frame((8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16))
                n += 160
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def answer_offer(d: Desk, leg: DeskLeg, browser: BrowserPeer) -> None:
    offer = await d.expect("offer", offer=leg.reservation)
    assert (offer["call_id"], offer["queue"], offer["caller"]) == (leg.call_id, "sales", "+15550100")
    assert offer["variables"] == {"order": "A-17", "card": "****"}
    await d.send("answer", offer=leg.reservation)
    rtc = await d.expect("rtc_offer", call_id=leg.call_id, within=10)
    await d.send("rtc_answer", call_id=leg.call_id, sdp=await browser.answer(rtc["sdp"]))


async def test_a_desk_leg_answered_by_an_aiortc_peer_carries_audio_both_ways(env: Env) -> None:
    answered: asyncio.Future[DeskLeg] = asyncio.get_running_loop().create_future()
    ended: asyncio.Future[LegEnd] = asyncio.get_running_loop().create_future()
    browser = BrowserPeer(tone_hz=1300)
    caller = CallerPort(env.engine, await env.engine.open_port(label="caller"))
    try:
        async with desk(env, "alice") as d:
            await d.expect("welcome")
            leg = env.hub.leg(call_id="call-1", reservation="res-1", agent="alice", queue="sales", caller="+15550100",
                              variables={"order": "A-17", "card": "****"}, ring_timeout_s=15,
                              on_answered=answered.set_result, on_ended=lambda _leg, end: ended.set_result(end))
            task = leg.start()
            await answer_offer(d, leg, browser)
            assert await asyncio.wait_for(answered, 10) is leg and leg.handle is not None
            await leg.connect(caller.port)
            await d.expect("connected", call_id="call-1")
            await asyncio.sleep(1.5)
            heard_by_browser = browser.heard_pcm()[-4000:]
            heard_by_caller = np.concatenate(caller.heard[-25:])
            assert abs(tone_hz(heard_by_browser) - 500) < 30, "the browser does not hear the caller"
            assert abs(tone_hz(heard_by_caller) - 1300) < 30, "the caller does not hear the browser"
            assert leg.media is not None and leg.media.codec == "PCMU/8000"
            await d.send("hangup", call_id="call-1")
            end = await asyncio.wait_for(ended, 5)
            ending = await d.expect("call_ended", call_id="call-1")
            assert (ending["by"], ending["wrap_up_s"]) == ("agent", 2.0)
            await task
        assert (end.status, end.answered, end.local, end.lost) == (200, True, False, False)
        assert end.recording is not None and end.recording.exists() and end.recording.stat().st_size > 8000
    finally:
        await caller.stop()
        await browser.close()
        await env.engine.close_port(caller.port)


async def test_a_desk_leg_whose_browser_vanishes_ends_lost_after_the_grace_period(env: Env) -> None:
    answered: asyncio.Future[DeskLeg] = asyncio.get_running_loop().create_future()
    ended: asyncio.Future[LegEnd] = asyncio.get_running_loop().create_future()
    browser = BrowserPeer(tone_hz=1300)
    async with desk(env, "alice") as d:
        await d.expect("welcome")
        leg = env.hub.leg(call_id="call-2", reservation="res-2", agent="alice", queue="sales", caller="+15550100",
                          variables={"order": "A-17", "card": "****"},
                          on_answered=answered.set_result, on_ended=lambda _leg, end: ended.set_result(end))
        task = leg.start()
        await answer_offer(d, leg, browser)
        await asyncio.wait_for(answered, 10)
    await browser.close()                                # socket and peer gone
    start = time.monotonic()
    end = await asyncio.wait_for(ended, GRACE_S * 4)
    assert time.monotonic() - start >= GRACE_S * 0.8
    assert (end.answered, end.lost, end.status) == (True, True, 408)
    await task
    lost = await env.events("DESKLOST")
    assert [e["data"]["outcome"] for e in lost] == ["waiting", "ended"]


async def test_a_reconnect_within_the_grace_period_resumes_the_call(env: Env) -> None:
    answered: asyncio.Future[DeskLeg] = asyncio.get_running_loop().create_future()
    ends: list[LegEnd] = []
    browser = BrowserPeer(tone_hz=1300)
    caller = CallerPort(env.engine, await env.engine.open_port(label="caller"))
    try:
        async with desk(env, "alice") as d:
            welcome = await d.expect("welcome")
            leg = env.hub.leg(call_id="call-6", reservation="res-6", agent="alice", queue="sales",
                              caller="+15550100", variables={"order": "A-17", "card": "****"},
                              on_answered=answered.set_result, on_ended=lambda _leg, end: ends.append(end))
            task = leg.start()
            await answer_offer(d, leg, browser)
            await asyncio.wait_for(answered, 10)
            await leg.connect(caller.port)
            await d.expect("connected", call_id="call-6")
            seq = d.seq
        await asyncio.sleep(GRACE_S / 2)                   # the socket is gone, the peer (the page) is not
        assert leg.lost_at is not None and not ends
        async with desk(env, "alice") as d:
            d.seq = seq
            await d.expect("welcome", session=welcome["session"])
            await d.send("resume", resume_token=welcome["resume_token"])
            await d.expect("welcome", resumed=True)
            await d.expect("connected", call_id="call-6")  # the page learns its call again
            await asyncio.sleep(GRACE_S * 1.5)               # past the grace period: the call goes on
            assert not ends and leg.lost_at is None and leg.state == "answered"
            n = len(caller.heard)
            await asyncio.sleep(0.6)
            assert abs(tone_hz(np.concatenate(caller.heard[n:])) - 1300) < 30   # audio all along the same peer
            assert leg.media is not None and leg.media.offers == 1
            await d.send("hangup", call_id="call-6")
            await task
        assert [(e.status, e.lost) for e in ends] == [(200, False)]
        assert [e["data"]["outcome"] for e in await env.events("DESKLOST")] == ["waiting"]
        assert any(e["call_id"] == "call-6" for e in await env.events("DESKRESUME"))
    finally:
        await caller.stop()
        await browser.close()
        await env.engine.close_port(caller.port)


async def test_an_offer_to_a_desk_that_is_not_connected_ends_at_once(env: Env) -> None:
    ended: asyncio.Future[LegEnd] = asyncio.get_running_loop().create_future()
    leg = env.hub.leg(call_id="call-3", reservation="res-3", agent="bob", on_answered=lambda _leg: None,
                      on_ended=lambda _leg, end: ended.set_result(end))
    await leg.start()
    end = ended.result()
    assert (end.status, end.answered) == (480, False)
    assert "res-3" not in env.hub.legs


async def test_reject_and_cancel(env: Env) -> None:
    ends: list[LegEnd] = []
    async with desk(env, "alice") as d:
        await d.expect("welcome")
        leg = env.hub.leg(call_id="c4", reservation="res-4", agent="alice", on_answered=lambda _leg: None,
                          on_ended=lambda _leg, end: ends.append(end))
        task = leg.start()
        await d.expect("offer", offer="res-4")
        await d.send("reject", offer="res-4")
        await task
        leg = env.hub.leg(call_id="c5", reservation="res-5", agent="alice", on_answered=lambda _leg: None,
                          on_ended=lambda _leg, end: ends.append(end))
        task = leg.start()
        await d.expect("offer", offer="res-5")
        leg.cancel("taken")
        assert (await d.expect("offer_canceled", offer="res-5"))["reason"] == "taken"
        await task
        ref = await d.send("answer", offer="res-5")              # too late: nothing to answer
        assert (await d.expect("error", ref=ref))["code"] == "not_found"
    assert [(e.status, e.answered) for e in ends] == [(603, False), (487, False)]

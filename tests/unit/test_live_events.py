"""The live event bus (callcenter/live_events.py) and its stream (callcenter/events_api.py).

The bus is tested on its own; the stream through a real server (uvicorn on a free port, on its own
event loop in a thread) with real clients: httpx reading server-sent events as they arrive, and a
websockets client. Events are published on the server's loop (``call_soon_threadsafe``), as the ACD does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callcenter import events_api
from callcenter.api import ApiContext
from callcenter.live_events import EventBus
from callcenter.storage.acd import AgentRepo
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, UserRepo
from routing.model import AgentSpec
from tests.unit.test_acd_api import bare_app

HEARTBEAT_S = 0.4
AUTH_TIMEOUT_S = 0.6


# -- the bus ------------------------------------------------------------------------------------------------

async def test_publish_fans_out_with_filters() -> None:
    bus = EventBus()
    everything = bus.subscribe()
    states = bus.subscribe(["agent_state"])
    alices = bus.subscribe(accept=lambda e: e.get("agent") == "alice")
    bus.publish({"type": "agent_state", "agent": "alice", "state": "available"})
    bus.publish({"type": "queue_joined", "queue": "support", "at": 5.0})
    bus.publish({"type": "agent_state", "agent": "bob", "state": "break"})
    got = [await everything.get(0) for _ in range(3)]
    assert [e["type"] for e in got if e] == ["agent_state", "queue_joined", "agent_state"]
    assert got[1] == {"type": "queue_joined", "queue": "support", "at": 5.0}      # "at" given: kept
    assert got[0] is not None and abs(got[0]["at"] - time.time()) < 5             # "at" missing: added
    assert [(await states.get(0) or {}).get("agent") for _ in range(2)] == ["alice", "bob"]
    assert (await alices.get(0) or {})["state"] == "available"
    assert await alices.get(0) is None and not alices.finished                    # nothing more, still open
    with pytest.raises(ValueError, match="needs a 'type'"):
        bus.publish({"agent": "alice"})
    assert bus.published == 3 and len(bus) == 3


async def test_a_slow_subscriber_gets_overflow_and_is_closed() -> None:
    bus = EventBus()
    slow = bus.subscribe(max_pending=3)
    fast = bus.subscribe()
    for i in range(5):
        bus.publish({"type": "offer", "n": i})
    assert slow.pending == 1
    event = await slow.get(0)
    assert event is not None and event["type"] == "overflow" and event["dropped"] == 4
    assert await slow.get(0) is None and slow.finished and slow.overflowed
    assert [e["n"] async for e in _take(fast, 5)] == [0, 1, 2, 3, 4]
    assert len(bus) == 1 and bus.overflows == 1


async def _take(sub: Any, n: int) -> AsyncIterator[dict[str, Any]]:
    for _ in range(n):
        e = await sub.get(1)
        assert e is not None
        yield e


async def test_publish_never_waits_and_stays_bounded() -> None:
    bus = EventBus()
    subs = [bus.subscribe(max_pending=1000) for _ in range(10)]   # nobody reads
    for i in range(20_000):
        bus.publish({"type": "heartbeat", "n": i})                     # returns at once, never awaits anyone
    assert all(s.pending == 1 and s.overflowed for s in subs) and len(bus) == 0


async def test_waiting_readers_wake_on_publish_close_and_timeout() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    reader = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish({"type": "connected", "agent": "alice"})
    assert (await reader) is not None
    t0 = time.monotonic()
    assert await sub.get(0.05) is None and not sub.finished
    assert time.monotonic() - t0 >= 0.04
    reader = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    sub.close()
    assert await reader is None and sub.finished and len(bus) == 0
    sub.close()                                                         # idempotent


async def test_closing_the_bus_lets_readers_drain_then_end() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish({"type": "call_started", "call_id": "c1"})
    bus.publish({"type": "call_ended", "call_id": "c1"})
    bus.close()
    bus.publish({"type": "call_started", "call_id": "c2"})             # ignored after close
    assert [e["call_id"] async for e in sub] == ["c1", "c1"]
    late = bus.subscribe()
    assert late.finished and [e async for e in late] == []


async def test_a_failing_filter_does_not_break_the_producer() -> None:
    bus = EventBus()
    bad = bus.subscribe(accept=lambda e: 1 / 0 > 0)                     # raises
    good = bus.subscribe()
    bus.publish({"type": "offer"})
    assert await good.get(0) is not None and await bad.get(0) is None


def test_types_are_checked() -> None:
    assert events_api.parse_types(None) is None and events_api.parse_types(" ") is None
    assert events_api.parse_types("offer, agent_state") == {"offer", "agent_state"}
    with pytest.raises(events_api.BadTypes, match="did you mean 'agent_state'"):
        events_api.parse_types("agent_states")


# -- the stream through a real server -----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The real app under uvicorn on its own loop in a thread; users admin/supervisor/agents/qa, two agents."""

    def __init__(self, data: Path, with_bus: bool = True) -> None:
        self.data = data
        self.port = _free_port()
        self.bus: EventBus | None = EventBus() if with_bus else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="test-events-server")

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        db = await Database.open(self.data)
        try:
            users = UserRepo(db)
            for name, role in (("root", "admin"), ("sv", "supervisor"), ("alice-u", "agent"), ("q", "qa")):
                await users.add(name, role, f"tok-{name}")
            await AgentRepo(db).add(AgentSpec(id="alice", user="alice-u"))
            await AgentRepo(db).add(AgentSpec(id="bob"))
            ctx = ApiContext(calls=CallRepo(db), users=users, data_dir=self.data, active_calls=lambda: 0,
                             bus=self.bus)
            # Only this router (create_app includes it too, with the production heartbeat of 15 s).
            app = bare_app(ctx, events_api.build_router(ctx, heartbeat_s=HEARTBEAT_S, auth_timeout_s=AUTH_TIMEOUT_S))
            self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                        lifespan="off", access_log=False, ws="websockets-sansio"))
            await self.server.serve()
        finally:
            await db.close()

    def publish(self, event: dict[str, Any]) -> None:
        assert self.loop is not None and self.bus is not None
        self.loop.call_soon_threadsafe(self.bus.publish, event)

    def subscribers(self) -> int:
        assert self.loop is not None and self.bus is not None
        return asyncio.run_coroutine_threadsafe(_count(self.bus), self.loop).result(5)

    def __enter__(self) -> Server:
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

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/events/ws"


async def _count(bus: EventBus) -> int:
    return len(bus)


def _wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path) as s:
        yield s


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{name}"}


class SseClient:
    """A minimal HTTP/1.1 client reading a server-sent event stream as it arrives.

    (httpx would do, but closing one of its streams half-read leaves its inner async generators to
    the garbage collector, which the leaked-task check then reports.)"""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.buffer = b""

    async def open(self, path: str, headers: dict[str, str]) -> SseClient:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{head}\r\n".encode())
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status, *lines = raw.decode().split("\r\n")
        self.status = int(status.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
        assert self.headers.get("transfer-encoding") == "chunked" or self.status != 200
        return self

    async def _chunk(self) -> bytes:
        assert self.reader is not None
        size = int((await asyncio.wait_for(self.reader.readuntil(b"\r\n"), 5)).strip(), 16)
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), 5)
        return data[:-2]

    async def next(self) -> dict[str, Any]:
        while b"\n\n" not in self.buffer:
            self.buffer += await self._chunk()
        frame, self.buffer = self.buffer.split(b"\n\n", 1)
        lines = frame.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("data: "), frame   # one data line per event
        got: dict[str, Any] = json.loads(lines[0][6:])
        return got

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def test_sse_streams_events_as_they_happen(server: Server) -> None:
    events = await SseClient(server.port).open("/api/events", _auth("sv"))
    try:
        assert events.status == 200 and events.headers["content-type"].startswith("text/event-stream")
        first = await events.next()
        assert first["type"] == "heartbeat"                          # the stream is live (subscribed)
        server.publish({"type": "queue_joined", "queue": "support", "call_id": "c1", "at": 1.5})
        assert await events.next() == {"type": "queue_joined", "queue": "support", "call_id": "c1", "at": 1.5}
        server.publish({"type": "agent_state", "agent": "bob", "state": "available", "previous": "logged_out"})
        got = await events.next()
        assert (got["type"], got["agent"], got["state"]) == ("agent_state", "bob", "available")
        # Silence: heartbeats keep coming.
        assert (await events.next())["type"] == "heartbeat"
        assert server.subscribers() == 1
    finally:
        await events.close()
    _wait_for(lambda: server.subscribers() == 0)                     # the hang-up ended the subscription


async def test_sse_filters_checks_and_refuses(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        assert (await client.get("/api/events")).status_code == 401
        assert (await client.get("/api/events", headers=_auth("q"))).status_code == 403
        r = await client.get("/api/events", params={"types": "offer,agent_sate"}, headers=_auth("sv"))
        assert r.status_code == 400 and "did you mean 'agent_state'" in r.json()["detail"]
    events = await SseClient(server.port).open("/api/events?types=offer", _auth("root"))
    try:
        assert (await events.next())["type"] == "heartbeat"
        server.publish({"type": "agent_state", "agent": "bob", "state": "break"})
        server.publish({"type": "offer", "agent": "bob", "call_id": "c9"})
        got = await events.next()
        assert (got["type"], got["call_id"]) == ("offer", "c9")
    finally:
        await events.close()


async def test_sse_without_a_bus_is_503(tmp_path: Path) -> None:
    with Server(tmp_path, with_bus=False) as s:
        async with httpx.AsyncClient(base_url=s.http, timeout=10) as client:
            r = await client.get("/api/events", headers=_auth("sv"))
            assert r.status_code == 503


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return got


async def _recv_skipping_heartbeats(ws: ClientConnection) -> dict[str, Any]:
    while True:
        got = await _recv(ws)
        if got["type"] != "heartbeat":
            return got


async def test_websocket_header_auth_and_an_agents_view(server: Server) -> None:
    async with connect(server.ws, additional_headers=_auth("alice-u")) as ws:
        assert (await _recv(ws))["type"] == "heartbeat"
        server.publish({"type": "call_started", "call_id": "c1", "caller": "+15550100"})     # not for agents
        server.publish({"type": "offer", "agent": "bob", "call_id": "c1", "queue": "support"})  # bob's
        server.publish({"type": "queue_joined", "queue": "support", "call_id": "c1"})          # queue-level
        server.publish({"type": "offer", "agent": "alice", "call_id": "c2", "queue": "support"})
        server.publish({"type": "queue_left", "queue": "support", "call_id": "c1", "agent": "bob"})
        got = [await _recv_skipping_heartbeats(ws) for _ in range(3)]
        assert [(e["type"], e.get("agent"), e["call_id"]) for e in got] == [
            ("queue_joined", None, "c1"), ("offer", "alice", "c2"), ("queue_left", "bob", "c1")]
    _wait_for(lambda: server.subscribers() == 0)


async def test_websocket_first_message_auth(server: Server) -> None:
    async with connect(server.ws + "?types=agent_state") as ws:
        await ws.send(json.dumps({"type": "auth", "token": "tok-sv"}))
        assert (await _recv(ws))["type"] == "heartbeat"                     # authenticated
        server.publish({"type": "offer", "agent": "bob"})
        server.publish({"type": "agent_state", "agent": "bob", "state": "on_call"})
        got = await _recv_skipping_heartbeats(ws)
        assert (got["type"], got["state"]) == ("agent_state", "on_call")
        await asyncio.sleep(HEARTBEAT_S * 1.5)
        assert (await _recv(ws))["type"] == "heartbeat"                     # heartbeats in silence
        await ws.send(json.dumps({"type": "ping"}))                         # client messages are ignored
        server.publish({"type": "agent_state", "agent": "alice", "state": "break"})
        assert (await _recv_skipping_heartbeats(ws))["agent"] == "alice"


async def _refused(url: str, headers: dict[str, str] | None = None, first: str | None = None) -> tuple[int, str]:
    async with connect(url, additional_headers=headers) as ws:
        if first is not None:
            await ws.send(first)
        error = await _recv(ws)
        assert error["type"] == "error"
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None
        return info.value.rcvd.code, error["detail"]


async def test_websocket_refusals(server: Server) -> None:
    code, detail = await _refused(server.ws, first=json.dumps({"type": "auth", "token": "wrong"}))
    assert (code, detail) == (4401, "unknown or revoked token")
    code, detail = await _refused(server.ws, headers={"Authorization": "Bearer wrong"})
    assert code == 4401
    code, detail = await _refused(server.ws, first="hello")
    assert code == 4401 and "first message must be" in detail
    code, detail = await _refused(server.ws, headers=_auth("q"))
    assert code == 4403 and "may not watch" in detail
    # A token in the URL is not looked at: the server waits for the auth message, then gives up.
    t0 = time.monotonic()
    code, detail = await _refused(server.ws + "?token=tok-sv")
    assert code == 4401 and "no auth message" in detail and time.monotonic() - t0 >= AUTH_TIMEOUT_S * 0.9
    code, detail = await _refused(server.ws + "?types=nope", headers=_auth("sv"))
    assert code == 1008 and "unknown event type 'nope'" in detail
    assert server.subscribers() == 0

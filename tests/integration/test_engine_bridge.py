"""Outbound calls and bridges of the engine, on real calls: what the ACD does with an agent.

The engine runs in this process on free ports (as in test_call_controls.py). A caller phone
(tests/support/phone.py) calls in; the engine dials an agent softphone (tests/support/agent_phone.py,
its own process with its own pjsua2, listening on a free port) and bridges the two calls. Each
side plays its own tone; which tones each recording holds is measured with a single-bin DFT
(Goertzel) at both frequencies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.audio import tone
from tests.support.ports import free_port
from voice.audio import read_wav, write_wav
from voice.config import EngineConfig
from voice.engine import Engine
from voice.events import (
    CallAnswered,
    CallEnded,
    CallHeld,
    CallProgress,
    EngineEvent,
    IncomingCall,
    MediaReady,
    PlaybackDone,
)
from voice.exceptions import CallGone, EngineError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PHONE = ROOT / "tests" / "support" / "phone.py"
AGENT_PHONE = ROOT / "tests" / "support" / "agent_phone.py"
RATE = 8000
CALLER_HZ, AGENT_HZ = 500.0, 1300.0
MEDIA_TIMEOUT_S = 2.0  # short: a ringing agent outlasts it in these tests


class Inbox:
    """Events kept as they arrive (from ``engine.events`` or a dialled call's sink)."""

    def __init__(self) -> None:
        self.seen: list[EngineEvent] = []
        self.queue: asyncio.Queue[EngineEvent] = asyncio.Queue()

    def put(self, event: EngineEvent) -> None:
        self.queue.put_nowait(event)

    async def wait(self, kind: type, call: int | None = None, within: float = 10.0,
                   where: Callable[[Any], bool] = lambda ev: True) -> Any:
        checked = 0
        deadline = time.monotonic() + within
        while True:
            for ev in self.seen[checked:]:
                checked += 1
                if isinstance(ev, kind) and (call is None or ev.call == call) and where(ev):
                    self.seen.remove(ev)
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind.__name__} within {within}s; seen: {self.seen}")
            try:
                self.seen.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                continue

    async def drain(self, seconds: float) -> list[EngineEvent]:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self.seen.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return list(self.seen)


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    eng = Engine(EngineConfig(host="127.0.0.1", sip_port=free_port(), transports=("udp",), rtp_port=30000,
                              rtp_port_range=9000, pjsip_log_level=1, media_timeout_s=MEDIA_TIMEOUT_S))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


_SPAWNED: list[asyncio.subprocess.Process] = []


@pytest.fixture(autouse=True)
async def no_stray_phones() -> AsyncIterator[None]:
    """A failing test leaves no phone process behind (they would load the next tests)."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def spawn(*args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE)
    _SPAWNED.append(proc)
    return proc


@pytest.fixture
def incoming(engine: Engine) -> Inbox:
    """The engine's own events (incoming calls) through an Inbox."""
    inbox = Inbox()
    inbox.queue = engine.events
    return inbox


class AgentPhone:
    """An agent_phone.py process listening on a free port."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port
        self.uri = f"sip:agent@127.0.0.1:{port}"

    @classmethod
    async def start(cls, *args: str) -> AgentPhone:
        port = free_port()
        proc = await spawn(str(AGENT_PHONE), "--port", str(port), *args)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert json.loads(line) == {"type": "ready", "port": port}, line
        return cls(proc, port)

    async def next_call(self, within: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        report: dict[str, Any] = json.loads(line)
        assert report["type"] == "call", report
        return report

    async def finish(self) -> dict[str, Any]:
        """Stop it (SIGTERM) and return its summary line."""
        if self.proc.returncode is None:
            self.proc.terminate()
        out, _ = await asyncio.wait_for(self.proc.communicate(), 20)
        assert self.proc.returncode == 0
        summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        assert summary["type"] == "summary", summary
        return summary


class Caller:
    """A caller phone (phone.py) in an answered call with the engine."""

    def __init__(self, proc: asyncio.subprocess.Process, call: int, heard: Path) -> None:
        self.proc, self.call, self.heard = proc, call, heard

    async def report(self) -> dict[str, Any]:
        out, _ = await asyncio.wait_for(self.proc.communicate(), 40)
        assert self.proc.returncode == 0
        return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def call_in(engine: Engine, inbox: Inbox, tmp: Path, *, hangup_after: float, play: Path | None = None) -> Caller:
    heard = tmp / f"caller-heard-{time.monotonic_ns()}.wav"
    args = [str(PHONE), f"sip:queue@127.0.0.1:{engine.config.sip_port}",
            "--hangup-after", str(hangup_after), "--record", str(heard), "--timeout", "40"]
    if play is not None:
        args += ["--play", str(play)]
    proc = await spawn(*args)
    inc = await inbox.wait(IncomingCall)
    await engine.answer(inc.call)
    await inbox.wait(MediaReady, inc.call)
    return Caller(proc, inc.call, heard)


def tone_file(tmp: Path, name: str, freq: float, seconds: float = 1.0) -> Path:
    path = tmp / name
    write_wav(path, tone(freq, seconds))
    return path


def power(pcm: np.ndarray, freq: float) -> float:
    """Goertzel: the signal's power at ``freq`` (one DFT bin), per sample."""
    x = pcm.astype(np.float64)
    if len(x) == 0:
        return 0.0
    n = np.arange(len(x))
    return float(abs(np.dot(x, np.exp(-2j * np.pi * freq * n / RATE))) ** 2 / len(x))


def tones(path: Path, start_s: float = 0.0, end_s: float | None = None) -> tuple[float, float]:
    """Power at the caller's and the agent's frequencies in a stretch of a recording."""
    pcm = read_wav(path).samples
    stretch = pcm[int(start_s * RATE) : None if end_s is None else int(end_s * RATE)]
    return power(stretch, CALLER_HZ), power(stretch, AGENT_HZ)


def hears_only(path: Path, wanted: float, start_s: float = 0.0, end_s: float | None = None) -> None:
    caller, agent = tones(path, start_s, end_s)
    mine, other = (caller, agent) if wanted == CALLER_HZ else (agent, caller)
    assert mine > 1e9, f"{path.name}: no {wanted:g} Hz tone ({mine:.3g})"
    assert mine > 300 * max(other, 1.0), f"{path.name}: {wanted:g} Hz {mine:.3g} vs the other tone {other:.3g}"


# -- bridging -----------------------------------------------------------------------------------------
async def test_bridged_calls_hear_each_other_and_each_leg_records_its_own_far_end(
        engine: Engine, incoming: Inbox, tmp_path: Path) -> None:
    agent = await AgentPhone.start("--answer-after", "0.5", "--play", str(tone_file(tmp_path, "agent.wav", AGENT_HZ)),
                                   "--record-dir", str(tmp_path / "agent"), "--calls", "1")
    caller = await call_in(engine, incoming, tmp_path, hangup_after=20,
                           play=tone_file(tmp_path, "caller.wav", CALLER_HZ))
    caller_leg, agent_leg = tmp_path / "leg-caller.wav", tmp_path / "leg-agent.wav"
    await engine.record(caller.call, str(caller_leg))

    sink = Inbox()
    t_dial = time.monotonic()
    leg = await engine.dial(agent.uri, headers={"X-Reservation": "r-17"}, sink=sink.put)
    assert leg != caller.call
    progress = await sink.wait(CallProgress, leg)
    assert progress.status == 180
    await sink.wait(CallAnswered, leg)
    media = await sink.wait(MediaReady, leg)
    assert media.codec.upper().startswith("PCMU")
    assert time.monotonic() - t_dial >= 0.4  # it rang first (--answer-after 0.5)
    await engine.record(leg, str(agent_leg))
    await engine.bridge(caller.call, leg)
    await engine.bridge(leg, caller.call)  # idempotent, either order
    await asyncio.sleep(3.0)

    # The caller hangs up first (here: the engine for it): the agent's call goes on alone.
    await engine.hangup(caller.call, 200)
    ended = await incoming.wait(CallEnded, caller.call)
    assert ended.recordings == (str(caller_leg),)
    assert not [ev for ev in await sink.drain(0.5) if isinstance(ev, CallEnded)]
    assert await engine.unbridge(caller.call, leg) is False  # its links went with it
    await engine.hangup(leg, 200)
    agent_end = await sink.wait(CallEnded, leg)
    assert agent_end.status_code == 200 and agent_end.local_hangup and agent_end.recordings == (str(agent_leg),)
    # Nothing of the dialled call went to engine.events.
    assert not [ev for ev in await incoming.drain(0.2) if ev.call == leg]

    report = await agent.next_call()
    assert report["answered_at"] is not None and not report["canceled"]
    assert report["headers"] == {"X-Reservation": "r-17"}
    await caller.report()
    summary = await agent.finish()
    assert summary["calls"] == 1 and summary["answered"] == 1

    hears_only(caller.heard, AGENT_HZ)  # the caller heard the agent...
    hears_only(Path(report["recording"]), CALLER_HZ)  # ...and the agent the caller
    hears_only(caller_leg, CALLER_HZ)  # each server-side leg: its own far end, not the mix
    hears_only(agent_leg, AGENT_HZ)


async def test_bridge_survives_the_agent_holding_and_resuming(engine: Engine, incoming: Inbox, tmp_path: Path) -> None:
    """Hold and resume are re-INVITEs that replace a call's port: the bridge is rewired. Then the
    agent hangs up (a BYE inside the dialog we created) and the caller's call goes on."""
    agent = await AgentPhone.start("--play", str(tone_file(tmp_path, "agent.wav", AGENT_HZ)),
                                   "--record-dir", str(tmp_path / "agent"), "--hold-at", "1.0", "--resume-at", "2.0",
                                   "--hangup-after", "4.5", "--calls", "1")
    caller = await call_in(engine, incoming, tmp_path, hangup_after=20,
                           play=tone_file(tmp_path, "caller.wav", CALLER_HZ))
    sink = Inbox()
    leg = await engine.dial(agent.uri, sink=sink.put)
    await sink.wait(MediaReady, leg)
    await engine.bridge(caller.call, leg)
    held = await sink.wait(CallHeld, leg, within=5)
    assert held.held
    resumed = await sink.wait(CallHeld, leg, within=5)
    assert not resumed.held
    t_resumed = time.monotonic()
    ended = await sink.wait(CallEnded, leg, within=10)  # the agent hangs up
    t_agent_end = time.monotonic()
    assert ended.status_code == 200 and not ended.local_hangup, ended
    assert not [ev for ev in await incoming.drain(0.8) if isinstance(ev, CallEnded)]  # the caller stays
    await engine.hangup(caller.call, 200)
    await incoming.wait(CallEnded, caller.call)
    t_caller_end = time.monotonic()
    report = await agent.next_call()
    await caller.report()
    await agent.finish()
    assert report["held"] and report["local_hangup"]
    # Between the resume and the agent's hang-up (~2.5 s), both still hear each other.
    heard_end = len(read_wav(caller.heard).samples) / RATE
    hears_only(caller.heard, AGENT_HZ, heard_end - (t_caller_end - t_resumed) + 0.5,
               heard_end - (t_caller_end - t_agent_end) - 0.3)
    agent_rec = Path(report["recording"])
    agent_end = len(read_wav(agent_rec).samples) / RATE
    hears_only(agent_rec, CALLER_HZ, agent_end - (t_agent_end - t_resumed) + 0.8, agent_end - 0.3)


# -- ringing, cancel, rejects -------------------------------------------------------------------------
async def test_caller_hangup_cancels_the_ringing_agent(engine: Engine, incoming: Inbox, tmp_path: Path) -> None:
    agent = await AgentPhone.start("--no-answer", "--calls", "1")
    caller = await call_in(engine, incoming, tmp_path, hangup_after=MEDIA_TIMEOUT_S + 1.5)
    sink = Inbox()
    leg = await engine.dial(agent.uri, sink=sink.put)
    assert (await sink.wait(CallProgress, leg)).status == 180
    await incoming.wait(CallEnded, caller.call, within=15)  # the caller gave up...
    # ...after ringing longer than the media timeout: the watchdog left the ringing call alone.
    assert not [ev for ev in sink.seen if isinstance(ev, CallEnded)]
    t0 = time.monotonic()
    await engine.hangup(leg)  # what the ACD does then: CANCEL
    ended = await sink.wait(CallEnded, leg, within=5)
    assert ended.status_code == 487 and ended.local_hangup and not ended.ended_by, ended
    assert time.monotonic() - t0 < 1.0
    report = await agent.next_call()
    assert report["canceled"] and report["answered_at"] is None and report["status"] == 487, report
    await caller.report()
    await agent.finish()


async def test_rejects_and_no_answer_end_with_their_status(engine: Engine) -> None:
    agent = await AgentPhone.start("--behaviour", "reject:486,reject:603,reject:480,noanswer",
                                   "--answer-after", "0.3", "--calls", "4")
    for code in (486, 603, 480):
        sink = Inbox()
        leg = await engine.dial(agent.uri, from_uri='"ACD" <sip:acd@127.0.0.1>', sink=sink.put)
        assert (await sink.wait(CallProgress, leg)).status == 180
        ended = await sink.wait(CallEnded, leg)
        assert ended.status_code == code and not ended.local_hangup, ended
        assert not [ev for ev in await sink.drain(0.1) if isinstance(ev, (CallAnswered, MediaReady))]
        report = await agent.next_call()
        assert report["status"] == code and not report["canceled"]
        assert "acd@127.0.0.1" in report["from"] and '"ACD"' in report["from"], report
    # No answer: the ACD's ring timeout (here 2.5 s, past the media timeout) ends it with a CANCEL.
    sink = Inbox()
    leg = await engine.dial(agent.uri, sink=sink.put)
    await sink.wait(CallProgress, leg)
    assert not [ev for ev in await sink.drain(MEDIA_TIMEOUT_S + 0.5) if isinstance(ev, CallEnded)]
    await engine.hangup(leg, 200)
    ended = await sink.wait(CallEnded, leg)
    assert ended.status_code == 487, ended
    report = await agent.next_call()
    assert report["canceled"] and report["answered_at"] is None
    summary = await agent.finish()
    assert summary["calls"] == 4 and summary["answered"] == 0 and summary["canceled"] == 1


async def test_bad_dial_input_is_refused(engine: Engine, incoming: Inbox, tmp_path: Path) -> None:
    got: list[EngineEvent] = []
    for uri in ("tel:+15551234", "sip:agent@agents.example.com", "sip:a b@127.0.0.1", "sip:a@127.0.0.1\r\nX: 1",
                "sip:a@127.0.0.1?Via=evil", "sip:a@127.0.0.1:70000", "", "sip:" + "a" * 600 + "@127.0.0.1"):
        with pytest.raises(EngineError):
            await engine.dial(uri, sink=got.append)
    for headers in ({"Via": "SIP/2.0/UDP 6.6.6.6"}, {"X-A": "1\r\nX-B: 2"}, {"bad name": "1"}):
        with pytest.raises(EngineError):
            await engine.dial("sip:a@127.0.0.1:9", headers=headers, sink=got.append)
    with pytest.raises(EngineError):
        await engine.dial("sip:a@127.0.0.1:9", from_uri="not a uri", sink=got.append)
    await asyncio.sleep(0.2)
    assert got == []

    caller = await call_in(engine, incoming, tmp_path, hangup_after=20)
    with pytest.raises(EngineError):
        await engine.bridge(caller.call, caller.call)
    with pytest.raises(CallGone):
        await engine.bridge(caller.call, 10_000)
    assert await engine.unbridge(caller.call, 10_000) is False
    await engine.hangup(caller.call, 200)
    await incoming.wait(CallEnded, caller.call)
    await caller.report()


# -- looping playback ---------------------------------------------------------------------------------
async def test_loop_playback_plays_past_its_file_until_stopped(engine: Engine, incoming: Inbox, tmp_path: Path) -> None:
    caller = await call_in(engine, incoming, tmp_path, hangup_after=20)
    music = tone_file(tmp_path, "music.wav", AGENT_HZ, seconds=0.4)
    playback = await engine.play(caller.call, str(music), loop=True)
    assert not [ev for ev in await incoming.drain(2.5) if isinstance(ev, PlaybackDone)]  # past 0.4 s + slack
    assert await engine.stop_playback(caller.call, playback) is True
    done = await incoming.wait(PlaybackDone, caller.call, within=1.0)
    assert done.playback == playback and done.stopped
    assert not [ev for ev in await incoming.drain(0.5) if isinstance(ev, PlaybackDone)]  # exactly one
    second = await engine.play(caller.call, str(music), loop=True)  # the call's end ends it: no PlaybackDone
    await asyncio.sleep(0.5)
    await engine.hangup(caller.call, 200)
    await incoming.wait(CallEnded, caller.call)
    assert not [ev for ev in await incoming.drain(0.3) if isinstance(ev, PlaybackDone)], second
    await caller.report()
    pcm = read_wav(caller.heard).samples
    env = np.sqrt((pcm[: len(pcm) // 80 * 80].astype(np.float64).reshape(-1, 80) ** 2).mean(axis=1))
    loud_s = float((env > 1000).sum()) * 0.01
    assert 2.3 < loud_s < 4.0, loud_s  # ~2.5 s of the first loop (six passes of 0.4 s) + ~0.5 s of the second
    assert power(pcm, AGENT_HZ) > 1e9


async def test_playback_starts_part_way_and_reports_its_position(engine: Engine, incoming: Inbox,
                                                                 tmp_path: Path) -> None:
    """Hold music resumes where an announcement stopped it: ``start_s`` skips into the file,
    ``playback_position`` says how far a playback has got, and the deadline counts only what is left."""
    caller = await call_in(engine, incoming, tmp_path, hangup_after=20)
    first, second = tone(CALLER_HZ, 2.0), tone(AGENT_HZ, 1.0)
    path = tmp_path / "two_parts.wav"
    write_wav(path, type(first)(np.concatenate([first.samples, second.samples]), first.rate))
    playback = await engine.play(caller.call, str(path), start_s=2.0)  # the second part only
    await asyncio.sleep(0.5)
    at = await engine.playback_position(caller.call, playback)
    assert at is not None and 2.2 < at < 2.95, at
    done = await incoming.wait(PlaybackDone, caller.call, within=2.5)  # ~0.5 s left (+ the EOF slack)
    assert done.playback == playback and not done.stopped
    assert await engine.playback_position(caller.call, playback) is None  # ended
    await engine.hangup(caller.call, 200)
    await incoming.wait(CallEnded, caller.call)
    await caller.report()
    pcm = read_wav(caller.heard).samples
    assert power(pcm, AGENT_HZ) > 1e9
    assert power(pcm, CALLER_HZ) < power(pcm, AGENT_HZ) / 100  # the skipped part was never played

"""The WebRTC gateway on real calls: a pjsua2 phone calls in, aiortc peers stand in for browsers.

The engine runs in this process on free ports. The caller is the pjsua2 test phone
(tests/support/phone.py, its own process) playing one tone; browser agents and supervisors
are aiortc peers (tests/support/rtc_client.py: real ICE and DTLS-SRTP over loopback) saying
tones of their own. Each ear is checked by frequency (a one-bin DFT, as in
test_engine_bridge.py): the tones it must hear are there, the ones it must not are not.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.audio import tone
from tests.support.ports import free_port
from tests.support.rtc_client import BrowserPeer
from voice.audio import read_wav, write_wav
from voice.config import EngineConfig
from voice.engine import Engine
from voice.events import IncomingCall, MediaReady
from voice.exceptions import CallGone, EngineError, RtcError
from voice.rtc import RtcPeer
from voice.rtc_bridge import RtcBridge

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PHONE = ROOT / "tests" / "support" / "phone.py"
RATE = 8000
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 500.0, 1300.0, 2100.0
LOUD = 1e9  # a tone at level 8000 gives ~1.6e10 per sample; silence and other tones < 1e6


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    eng = Engine(EngineConfig(host="127.0.0.1", sip_port=free_port(), transports=("udp",), rtp_port=31000,
                              rtp_port_range=8000, pjsip_log_level=1))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


def power(pcm: np.ndarray, freq: float) -> float:
    """Goertzel: the signal's power at ``freq`` (one DFT bin), per sample."""
    x = pcm.astype(np.float64)
    if len(x) == 0:
        return 0.0
    n = np.arange(len(x))
    return float(abs(np.dot(x, np.exp(-2j * np.pi * freq * n / RATE))) ** 2 / len(x))


def assert_hears(pcm: np.ndarray, wanted: tuple[float, ...], what: str) -> None:
    """The ``wanted`` tones are loud; the others at least 30 dB below the weakest of them (a mix of
    two tones through G.711 and the bridge's mixer leaves products ~40 dB down), or absent."""
    loud = [power(pcm, f) for f in wanted]
    for freq, p in zip(wanted, loud, strict=True):
        assert p > LOUD, f"{what}: no {freq:g} Hz ({p:.3g}) in {len(pcm) / RATE:.2f} s"
    ceiling = min(loud) / 1000 if loud else LOUD / 1000
    for freq in {CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ} - set(wanted):
        p = power(pcm, freq)
        assert p < ceiling, f"{what}: hears {freq:g} Hz ({p:.3g}), it must not"


class Caller:
    """The pjsua2 phone process, in an answered call with the engine."""

    def __init__(self, proc: asyncio.subprocess.Process, call: int, heard: Path, media_at: float) -> None:
        self.proc, self.call, self.heard, self.media_at = proc, call, heard, media_at

    def heard_between(self, t0: float, t1: float) -> np.ndarray:
        """What the phone heard between two monotonic times (its recording starts with the media)."""
        pcm = read_wav(self.heard).samples
        return pcm[int((t0 - self.media_at) * RATE) : int((t1 - self.media_at) * RATE)]

    async def finish(self) -> dict[str, Any]:
        out, _ = await asyncio.wait_for(self.proc.communicate(), 30)
        assert self.proc.returncode == 0
        return dict(json.loads(out.decode().strip().splitlines()[-1]))


@pytest.fixture
async def phones() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:  # a failing test leaves no phone behind
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def call_in(engine: Engine, tmp: Path, procs: list[Any], hangup_after: float) -> Caller:
    play = tmp / "caller.wav"
    write_wav(play, tone(CALLER_HZ, 1.0))
    heard = tmp / "caller-heard.wav"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(PHONE), f"sip:desk@127.0.0.1:{engine.config.sip_port}", "--play", str(play),
        "--record", str(heard), "--hangup-after", str(hangup_after), "--timeout", "40",
        stdout=asyncio.subprocess.PIPE)
    procs.append(proc)
    inc = await asyncio.wait_for(engine.events.get(), 20)
    assert isinstance(inc, IncomingCall), inc
    await engine.answer(inc.call)
    ready = await asyncio.wait_for(engine.events.get(), 10)
    assert isinstance(ready, MediaReady) and ready.call == inc.call, ready
    return Caller(proc, inc.call, heard, time.monotonic())


class Desk:
    """A browser on a bridge port: the server's RtcPeer and RtcBridge, the browser's aiortc peer."""

    def __init__(self, port: int, peer: RtcPeer, bridge: RtcBridge, browser: BrowserPeer, offer: str,
                 answer: str) -> None:
        self.port, self.peer, self.bridge, self.browser = port, peer, bridge, browser
        self.offer, self.answer = offer, answer
        self.marks: list[tuple[float, int]] = []

    @classmethod
    async def open(cls, engine: Engine, hz: float, label: str) -> Desk:
        port = await engine.open_port(label=label)
        peer = RtcPeer()
        bridge = RtcBridge(peer, engine.port_audio(port))
        browser = BrowserPeer(hz, keep_audio=True)
        offer = await peer.offer()
        answer = await browser.answer(offer)
        await peer.accept_answer(answer)
        await browser.connected()
        return cls(port, peer, bridge, browser, offer, answer)

    def mark(self) -> None:
        self.marks.append((time.monotonic(), sum(len(c) for c in self.browser.chunks)))

    def heard_since_mark(self, index: int, skip_s: float = 0.3) -> np.ndarray:
        """What the browser heard from mark ``index`` (plus ``skip_s``) to the next mark."""
        pcm = self.browser.heard_pcm()
        start = self.marks[index][1] + int(skip_s * RATE)
        end = self.marks[index + 1][1] if index + 1 < len(self.marks) else len(pcm)
        return pcm[start:end]

    async def close(self, engine: Engine) -> None:
        await self.bridge.close()
        await self.peer.close()
        await self.browser.close()
        await engine.close_port(self.port)


def first_payload(sdp: str) -> str:
    """The codec of the audio line's first payload type (``PCMU/8000``...)."""
    m = re.search(r"^m=audio \d+ \S+ (\d+)", sdp, re.M)
    assert m, sdp
    rtpmap = re.search(rf"^a=rtpmap:{m.group(1)} (\S+)", sdp, re.M)
    return rtpmap.group(1) if rtpmap else {"0": "PCMU/8000", "8": "PCMA/8000"}[m.group(1)]


# -- caller <-> browser agent -----------------------------------------------------------------------
async def test_caller_and_browser_agent_hear_each_other_over_g711(
        engine: Engine, tmp_path: Path, phones: list[Any]) -> None:
    caller = await call_in(engine, tmp_path, phones, hangup_after=4.0)
    agent = await Desk.open(engine, AGENT_HZ, "agent 7")
    # G.711 offered first and negotiated: no Opus, no resampling.
    assert first_payload(agent.offer) == "PCMU/8000" and "opus" not in agent.offer.lower()
    assert first_payload(agent.answer) == "PCMU/8000"
    assert agent.peer.codec == "PCMU/8000" and agent.bridge.stats().codec == "PCMU/8000"
    leg = tmp_path / "agent-leg.wav"
    await engine.record(agent.port, str(leg))  # the agent's leg: what the browser says
    await engine.bridge(caller.call, agent.port)
    t0 = time.monotonic()
    agent.mark()
    await asyncio.sleep(2.5)
    t1 = time.monotonic()
    agent.mark()
    seconds = await engine.stop_recording(agent.port, str(leg))
    assert seconds > 2.0
    stats = agent.bridge.stats()
    await caller.finish()
    await agent.close(engine)

    assert_hears(agent.heard_since_mark(0), (CALLER_HZ,), "the browser agent")
    assert_hears(caller.heard_between(t0 + 0.4, t1 - 0.2), (AGENT_HZ,), "the caller")
    assert_hears(read_wav(leg).samples[int(0.5 * RATE) :], (AGENT_HZ,), "the agent's recording")
    # Both ways flowed in real time (~50 frames a second). Gaps: none on an idle machine, but a
    # loaded one stalls the loop now and then (bench/bridge.py counts them under load); a bridge
    # that gapped on every tick would have well over a hundred here.
    assert stats.frames_out > 110 and stats.frames_in > 110, stats
    assert stats.underruns + stats.port_underflows + stats.in_dropped <= 25, stats
    assert stats.buffered_ms <= 120, stats


# -- supervisor: listen, whisper, barge -------------------------------------------------------------
async def test_supervisor_listens_whispers_and_barges(engine: Engine, tmp_path: Path, phones: list[Any]) -> None:
    caller = await call_in(engine, tmp_path, phones, hangup_after=9.0)
    agent = await Desk.open(engine, AGENT_HZ, "agent")
    sup = await Desk.open(engine, SUPERVISOR_HZ, "supervisor")
    await engine.bridge(caller.call, agent.port)
    phase_s = 1.8
    times = []

    async def phase() -> None:
        times.append(time.monotonic())
        agent.mark()
        sup.mark()
        await asyncio.sleep(phase_s)

    # listen: the supervisor hears both; neither hears the supervisor.
    await engine.connect(caller.call, sup.port)
    await engine.connect(agent.port, sup.port)
    assert set(await engine.hears(sup.port)) == {caller.call, agent.port}
    await phase()
    # whisper: the agent hears the supervisor too; the caller does not.
    await engine.connect(sup.port, agent.port)
    await phase()
    # barge: everyone hears everyone.
    await engine.connect(sup.port, caller.call)
    await phase()
    # off: the supervisor leaves (disconnect each way); the call goes on.
    for src, dst in ((caller.call, sup.port), (agent.port, sup.port), (sup.port, agent.port), (sup.port, caller.call)):
        assert await engine.disconnect(src, dst) is True
    assert await engine.disconnect(sup.port, caller.call) is False
    assert await engine.hears(sup.port) == ()
    await phase()
    times.append(time.monotonic())
    await caller.finish()
    await sup.close(engine)
    await agent.close(engine)

    listen, whisper, barge, off = range(4)
    assert_hears(sup.heard_since_mark(listen), (CALLER_HZ, AGENT_HZ), "supervisor listening")
    assert_hears(sup.heard_since_mark(whisper), (CALLER_HZ, AGENT_HZ), "supervisor whispering")
    assert_hears(sup.heard_since_mark(barge), (CALLER_HZ, AGENT_HZ), "supervisor barging")
    assert_hears(sup.heard_since_mark(off)[: int(1.0 * RATE)], (), "supervisor gone")
    assert_hears(agent.heard_since_mark(listen), (CALLER_HZ,), "agent while listened to")
    assert_hears(agent.heard_since_mark(whisper), (CALLER_HZ, SUPERVISOR_HZ), "agent whispered to")
    assert_hears(agent.heard_since_mark(barge), (CALLER_HZ, SUPERVISOR_HZ), "agent in a barge")
    assert_hears(agent.heard_since_mark(off), (CALLER_HZ,), "agent after the supervisor left")
    for i, (what, wanted) in enumerate(((listen, (AGENT_HZ,)), (whisper, (AGENT_HZ,)),
                                        (barge, (AGENT_HZ, SUPERVISOR_HZ)), (off, (AGENT_HZ,)))):
        assert what == i
        assert_hears(caller.heard_between(times[i] + 0.4, times[i + 1] - 0.2), wanted, f"caller in phase {i}")


# -- bad input -------------------------------------------------------------------------------------------
async def test_bad_sdp_and_misuse_get_clear_errors_and_change_nothing(engine: Engine) -> None:
    with pytest.raises(RtcError, match="unknown codec"):
        RtcPeer(codecs=("G729/8000",))
    peer = RtcPeer()
    with pytest.raises(RtcError, match="no offer is waiting"):
        await peer.accept_answer("v=0\r\n")
    for bad, match in (("", "empty"), ("hello", "no audio line"), ("v=0\r\nm=audio x\r\n", "unusable SDP"),
                       ("x" * 70_000, "longer than")):
        with pytest.raises(RtcError, match=match):
            await peer.answer(bad)
    # An offer of Opus alone: none of our G.711 codecs.
    opus_only = BrowserPeer(AGENT_HZ, codecs=("audio/opus",))
    with pytest.raises(RtcError, match="none of the codecs PCMU/8000, PCMA/8000"):
        await peer.answer(await opus_only.offer())
    await opus_only.close()
    await peer.close()
    with pytest.raises(RtcError, match="closed"):
        await peer.offer()

    # A fresh peer after a bad answer still completes a good exchange and carries audio.
    port = await engine.open_port(label="agent")
    peer = RtcPeer()
    bridge = RtcBridge(peer, engine.port_audio(port))
    offer = await peer.offer()
    with pytest.raises(RtcError, match="unusable SDP answer"):
        await peer.accept_answer("v=0\r\nm=audio 9 RTP/SAVPF 0\r\na=garbage\r\n")
    browser = BrowserPeer(AGENT_HZ)
    await peer.accept_answer(await browser.answer(offer))
    await browser.connected()
    await asyncio.sleep(0.6)
    assert bridge.stats().frames_in > 10
    await bridge.close()
    await peer.close()
    await browser.close()

    # Ports refuse call control, and a closed port is gone.
    with pytest.raises(EngineError, match="bridge port"):
        await engine.hangup(port)
    with pytest.raises(EngineError):
        await engine.connect(port, port)
    assert await engine.close_port(port) is True
    assert await engine.close_port(port) is False
    with pytest.raises(CallGone):
        await engine.bridge(port, port + 1000)
    with pytest.raises(CallGone):
        engine.port_audio(port)
    with pytest.raises(EngineError):
        await engine.open_port(label="x" * 300)


# -- Opus where configured ---------------------------------------------------------------------------
async def test_opus_when_configured_is_resampled_both_ways(engine: Engine, tmp_path: Path) -> None:
    """A browser offering Opus only, a server that allows it: 48 kHz on the wire, 8 kHz on the bridge.
    The port hears a prompt (the engine plays it) and its recording keeps what the browser says."""
    prompt = tmp_path / "prompt.wav"
    write_wav(prompt, tone(CALLER_HZ, 3.0))
    port = await engine.open_port(label="opus agent")
    peer = RtcPeer(codecs=("opus/48000", "PCMU/8000"))
    bridge = RtcBridge(peer, engine.port_audio(port))
    browser = BrowserPeer(AGENT_HZ, codecs=("audio/opus",))
    answer = await peer.answer(await browser.offer())
    await browser.accept(answer)
    assert peer.codec == "opus/48000" and first_payload(answer).lower().startswith("opus/48000")
    await browser.connected()
    leg = tmp_path / "leg.wav"
    await engine.record(port, str(leg))
    await engine.play(port, str(prompt))
    browser.chunks.clear()
    await asyncio.sleep(2.0)
    await engine.stop_recording(port, str(leg))
    await bridge.close()
    await peer.close()
    await browser.close()
    await engine.close_port(port)
    assert_hears(browser.heard_pcm()[int(0.3 * RATE) :], (CALLER_HZ,), "the Opus browser")
    assert_hears(read_wav(leg).samples[int(0.5 * RATE) :], (AGENT_HZ,), "the Opus agent's recording")

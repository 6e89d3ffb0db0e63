"""The engine's call controls for the IVR, on real calls: keys (RFC 4733, SIP INFO, in-band
tones), barge-in, recording pauses, extra recordings, blind transfer, caller identity.

The engine runs in this process on free ports (as in test_tap.py); each test phone
(tests/support/phone.py) is its own process with its own pjsua2, calling over loopback UDP.
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
from tests.support.rawsip import GOOD_SDP, RawCall, UdpPeer, header, request, status
from voice.audio import read_wav, write_wav
from voice.config import EngineConfig
from voice.engine import Engine
from voice.events import (
    CallEnded,
    DtmfReceived,
    EngineEvent,
    IncomingCall,
    MediaReady,
    PlaybackDone,
    TransferDone,
)
from voice.exceptions import EngineError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PHONE = ROOT / "tests" / "support" / "phone.py"
RATE = 8000


class Events:
    """The engine's events as they arrive, kept: a test waits for one without losing the others."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[EngineEvent] = []

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
                self.seen.append(await asyncio.wait_for(self.engine.events.get(), left))
            except TimeoutError:
                continue

    async def drain(self, seconds: float) -> list[EngineEvent]:
        """Everything that arrives within ``seconds`` (plus what was kept)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self.seen.append(await asyncio.wait_for(self.engine.events.get(), left))
            except TimeoutError:
                break
        return list(self.seen)


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    eng = Engine(EngineConfig(host="127.0.0.1", sip_port=free_port(), transports=("udp",), rtp_port=30000,
                              rtp_port_range=9000, pjsip_log_level=1))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


class Phone:
    """A test phone process in a call with the engine."""

    def __init__(self, proc: asyncio.subprocess.Process, incoming: IncomingCall, media: MediaReady | None,
                 record: Path) -> None:
        self.proc, self.incoming, self.media, self.record = proc, incoming, media, record
        self.call = incoming.call

    async def report(self) -> dict[str, Any]:
        out, _ = await asyncio.wait_for(self.proc.communicate(), 40)
        assert self.proc.returncode == 0
        return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def dial(engine: Engine, events: Events, tmp: Path, *phone_args: str, user: str = "ivr",
               hangup_after: float = 6.0, answer: bool = True) -> Phone:
    """Start a phone that calls ``user`` at the engine; answer it and wait until its audio flows."""
    record = tmp / f"heard-{time.monotonic_ns()}.wav"
    args = [sys.executable, str(PHONE), f"sip:{user}@127.0.0.1:{engine.config.sip_port}",
            "--hangup-after", str(hangup_after), "--record", str(record), *phone_args]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    incoming = await events.wait(IncomingCall)
    media = None
    if answer:
        await engine.answer(incoming.call)
        media = await events.wait(MediaReady, incoming.call)
    return Phone(proc, incoming, media, record)


def tone_file(tmp: Path, name: str, freq: float, seconds: float) -> Path:
    path = tmp / name
    write_wav(path, tone(freq, seconds))
    return path


def level(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


# -- keys ---------------------------------------------------------------------------------------
async def test_rfc4733_keys_arrive_in_order(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, "--dtmf", "1@0.5,23#@1.2,*0D@2.5", hangup_after=4.5)
    assert phone.media is not None and phone.media.telephone_event
    keys = [await events.wait(DtmfReceived, phone.call) for _ in range(7)]
    assert "".join(k.digit for k in keys) == "123#*0D"
    assert {k.source for k in keys} == {"rfc4733"}
    await events.wait(CallEnded, phone.call)
    report = await phone.report()
    assert len(report["dtmf_sent"]) == 3 and "errors" not in report
    # One event per key press, not per RTP packet of it.
    assert not [ev for ev in await events.drain(0.3) if isinstance(ev, DtmfReceived)]


@pytest.mark.parametrize("method", ["info", "info-dtmf"])
async def test_sip_info_keys_are_answered_200_and_delivered(engine: Engine, tmp_path: Path, method: str) -> None:
    """application/dtmf-relay (pjsua's own handler) and application/dtmf (normalized by the guard)."""
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, "--dtmf", "5@0.5,9*@1.0,#a@1.5", "--dtmf-method", method,
                       hangup_after=3.0)
    keys = [await events.wait(DtmfReceived, phone.call) for _ in range(5)]
    assert "".join(k.digit for k in keys) == "59*#A"
    assert {k.source for k in keys} == {"info"}
    await events.wait(CallEnded, phone.call)
    report = await phone.report()
    assert report["info_responses"] == [200] * 5, report


async def test_info_bodies_are_normalized_by_the_guard(engine: Engine) -> None:
    """Hand-made INFOs inside a call: what pjsua alone would misread, refuse or leave unanswered."""
    events = Events(engine)
    raw = RawCall(engine.config.sip_port, GOOD_SDP)
    try:
        answered = asyncio.create_task(asyncio.to_thread(raw.invite))
        inc = await events.wait(IncomingCall)
        await engine.answer(inc.call)
        assert await answered == 200 and raw.final is not None
        await events.wait(MediaReady, inc.call)
        to_tag = (header(raw.final, "To") or "").split("tag=", 1)[1].split(";")[0]
        cases = [  # (content subtype, body, expected status, expected digit or None)
            ("dtmf-relay", "Signal= 7\r\nDuration= 200\r\n", 200, "7"),
            ("dtmf-relay", "signal=b\r\n", 200, "B"),  # pjsua alone: no "Signal" found, 400
            ("dtmf-relay", "Signal=10\r\nDuration=100\r\n", 200, "*"),  # pjsua alone: '1'
            ("dtmf", "11", 200, "#"),  # pjsua alone: no handler, 500
            ("dtmf", " 4 \r\n", 200, "4"),
            ("dtmf-relay", "Signal=16\r\nDuration=100\r\n", 200, None),  # hook flash: not a key
            ("dtmf-relay", "Signal=X\r\n", 400, None),
            ("dtmf", "12345", 400, None),
            ("DTMF-Relay", "SIGNAL=0", 200, "0"),
        ]
        for cseq, (subtype, body, code, _) in enumerate(cases, start=2):
            msg = request("INFO", raw.port, raw.peer.port, to_tag=to_tag, call_id=raw.call_id,
                          from_header=raw.from_header, cseq=cseq, body=body)
            msg = msg.replace(b"Content-Type: application/sdp", f"Content-Type: application/{subtype}".encode())
            raw.peer.send(msg, raw.port)
            reply = await asyncio.to_thread(raw.peer.final_response)
            assert reply is not None and status(reply) == code, (body, reply)
        keys = [ev for ev in await events.drain(0.3) if isinstance(ev, DtmfReceived)]
        assert [(k.digit, k.source) for k in keys] == [(d, "info") for *_, d in cases if d is not None]
        await engine.hangup(inc.call, 200)
        assert await asyncio.to_thread(raw.wait_bye, 5.0) is not None
        await events.wait(CallEnded, inc.call)
    finally:
        raw.close()


async def test_no_telephone_event_and_inband_keys_reach_the_tap(engine: Engine, tmp_path: Path) -> None:
    """A phone without telephone-event: MediaReady says so, and its in-band keys are tones in the tap."""
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, "--no-telephone-event", "--dtmf", "5@1.0",
                       "--dtmf-method", "inband", hangup_after=3.0)
    assert phone.media is not None and not phone.media.telephone_event
    tap = await engine.open_tap(phone.call, chunk_ms=20)
    pcm = np.concatenate([f.pcm async for f in tap])  # until the call (and so the tap) ends
    assert not [ev for ev in await events.drain(0.2) if isinstance(ev, DtmfReceived)]
    loud = pcm[np.abs(pcm) > 500]
    assert len(loud) > 0.05 * RATE, "no key tone heard"
    start = int(np.flatnonzero(np.abs(pcm) > 500)[0])
    burst = pcm[start : start + 640].astype(np.float64)  # 80 ms inside the 100 ms tone
    spectrum = np.abs(np.fft.rfft(burst * np.hanning(len(burst))))
    freqs = np.fft.rfftfreq(len(burst), 1 / RATE)
    peaks = sorted(float(freqs[i]) for i in np.argsort(spectrum)[-2:])
    low, high = peaks
    assert abs(low - 770) < 25 and abs(high - 1336) < 25, peaks  # key 5
    report = await phone.report()
    assert report["dtmf_sent"][0]["method"] == "inband"


async def test_send_dtmf_both_methods(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, hangup_after=3.0)
    await engine.send_dtmf(phone.call, "12", "rfc4733")
    await asyncio.sleep(0.8)
    await engine.send_dtmf(phone.call, "#", "info")
    with pytest.raises(EngineError):
        await engine.send_dtmf(phone.call, "1x", "info")
    with pytest.raises(EngineError):
        await engine.send_dtmf(phone.call, "1", "inband")
    report = await phone.report()
    heard = [(k["digit"], k["method"]) for k in report["dtmf_heard"]]
    assert heard == [("1", "rfc4733"), ("2", "rfc4733"), ("#", "info")], heard


# -- barge-in -------------------------------------------------------------------------------------
async def test_stop_playback_ends_a_long_prompt_with_one_playback_done(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, hangup_after=4.0)
    long_prompt = tone_file(tmp_path, "long.wav", 600, 10.0)
    playback = await engine.play(phone.call, str(long_prompt))
    await asyncio.sleep(1.0)
    t0 = time.monotonic()
    assert await engine.stop_playback(phone.call, playback) is True
    done = await events.wait(PlaybackDone, phone.call, within=1.0)
    assert done.playback == playback and done.stopped and time.monotonic() - t0 < 0.5
    assert await engine.stop_playback(phone.call, playback) is False  # already over: no second event

    short = await engine.play(phone.call, str(tone_file(tmp_path, "short.wav", 900, 0.5)))
    finished = await events.wait(PlaybackDone, phone.call, within=3.0)
    assert finished.playback == short and not finished.stopped
    assert await engine.stop_playback(phone.call, short) is False
    await events.wait(CallEnded, phone.call)
    assert not [ev for ev in events.seen if isinstance(ev, PlaybackDone)], events.seen
    await phone.report()
    heard = read_wav(phone.record).samples
    # The phone heard about one second of the 10 s prompt (then the short one).
    loud_s = np.count_nonzero(np.abs(heard) > 1000) / RATE
    assert 0.8 < loud_s < 2.2, loud_s


# -- recordings ------------------------------------------------------------------------------------
async def test_paused_recordings_record_silence_while_taps_hear(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    play = tmp_path / "caller.wav"
    write_wav(play, tone(1000, 2.0))
    phone = await dial(engine, events, tmp_path, "--play", str(play), hangup_after=5.0)
    main_rec, extra_rec = tmp_path / "call.wav", tmp_path / "extra.wav"
    await engine.record(phone.call, str(main_rec))  # the call's own port (MediaTap)
    await engine.record(phone.call, str(extra_rec))  # an AudioMediaRecorder
    port_tap = await engine.open_tap(phone.call, chunk_ms=20)  # reads the recording port's frames
    own_tap = await engine.open_tap(phone.call, chunk_ms=20, speak=False)  # a port of its own
    t_start = time.monotonic()

    async def read(tap: Any) -> list[tuple[float, np.ndarray]]:
        return [(f.time, f.pcm) async for f in tap]

    readers = [asyncio.create_task(read(port_tap)), asyncio.create_task(read(own_tap))]
    await asyncio.sleep(1.0)
    t_pause = time.monotonic()
    assert await engine.pause_recording(phone.call) is True
    assert await engine.pause_recording(phone.call) is False
    await asyncio.sleep(1.5)
    t_resume = time.monotonic()
    assert await engine.resume_recording(phone.call) is True
    assert await engine.resume_recording(phone.call) is False
    ended = await events.wait(CallEnded, phone.call)
    t_end = time.monotonic()
    assert set(ended.recordings) == {str(main_rec), str(extra_rec)}
    tap_frames = await asyncio.gather(*readers)
    await phone.report()

    for path in (main_rec, extra_rec):
        pcm = read_wav(path).samples
        quiet = _longest_zero_run(pcm) / RATE
        assert abs(quiet - (t_resume - t_pause)) < 0.25, (path.name, quiet)
        assert level(pcm[: int(0.8 * RATE)]) > 1000, path.name  # heard before the pause
        assert level(pcm[-int(1.0 * RATE) : -int(0.3 * RATE)]) > 1000, path.name  # and after it
        assert abs(len(pcm) / RATE - (t_end - t_start)) < 0.5, path.name  # real time kept
    for frames in tap_frames:
        during = np.concatenate([p for t, p in frames if t_pause + 0.2 < t < t_resume - 0.2])
        assert len(during) > RATE and level(during) > 1000  # the taps heard the caller throughout


def _longest_zero_run(pcm: np.ndarray) -> int:
    zero = np.concatenate([[False], pcm == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


async def test_stop_recording_closes_the_file_now(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    play = tmp_path / "caller.wav"
    write_wav(play, tone(700, 1.0))
    phone = await dial(engine, events, tmp_path, "--play", str(play), hangup_after=4.0)
    main_rec, voicemail = tmp_path / "call.wav", tmp_path / "voicemail.wav"
    await engine.record(phone.call, str(main_rec))
    with pytest.raises(EngineError):
        await engine.record(phone.call, str(main_rec))  # one recording per file
    await engine.record(phone.call, str(voicemail))
    await asyncio.sleep(2.0)
    seconds = await engine.stop_recording(phone.call, str(voicemail))
    assert 1.8 < seconds < 2.4, seconds
    audio = read_wav(voicemail)  # final already: a complete WAV of that length
    assert abs(len(audio.samples) / audio.rate - seconds) < 0.01 and level(audio.samples) > 1000
    with pytest.raises(EngineError):
        await engine.stop_recording(phone.call, str(voicemail))
    ended = await events.wait(CallEnded, phone.call)
    assert ended.recordings == (str(main_rec),)
    assert len(read_wav(voicemail).samples) == len(audio.samples)  # untouched since
    await phone.report()


# -- transfer ----------------------------------------------------------------------------------------
async def test_transfer_accepted_reaches_the_target(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, "--accept-refer", hangup_after=8.0)
    target = f"sip:target@127.0.0.1:{engine.config.sip_port}"
    await engine.transfer(phone.call, target)
    with pytest.raises(EngineError):
        await engine.transfer(phone.call, target)  # one at a time
    # The phone follows the REFER: a new call to the target arrives at the engine.
    transferred = await events.wait(IncomingCall, where=lambda ev: ev.dialled_number == "target")
    await engine.answer(transferred.call)
    done = await events.wait(TransferDone, phone.call)
    assert done.ok and done.status == 200, done
    # The transferor hangs up (the application's part after a transfer); the phone then ends
    # its own calls, the one to the target included.
    await engine.hangup(phone.call, 200)
    await events.wait(CallEnded, phone.call)
    await events.wait(CallEnded, transferred.call)
    report = await phone.report()
    assert report["refer"]["target"].strip("<>") == target and report["refer"]["accepted"]
    assert report["transfer_call"]["connected"]


async def test_transfer_refused_and_bad_targets(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, hangup_after=4.0)
    for bad in ("http://example.com/", "sip:a@b\r\nX-Evil: 1", "sip:a b@c", ""):
        with pytest.raises(EngineError):
            await engine.transfer(phone.call, bad)
    t0 = time.monotonic()
    await engine.transfer(phone.call, "sip:someone@127.0.0.1:9")
    done = await events.wait(TransferDone, phone.call)
    assert not done.ok and done.status == 603 and time.monotonic() - t0 < 2.0, done
    report = await phone.report()
    assert report["refer"]["target"].strip("<>") == "sip:someone@127.0.0.1:9" and not report["refer"]["accepted"]


# -- identity --------------------------------------------------------------------------------------------
async def test_identity_from_the_invite(engine: Engine, tmp_path: Path) -> None:
    events = Events(engine)
    phone = await dial(engine, events, tmp_path, "--from", '"Smith, \\"Al\\"" <sip:+1-555-0100@127.0.0.1>',
                       user="800-555", hangup_after=0.5)
    inc = phone.incoming
    assert (inc.caller_number, inc.caller_name, inc.dialled_number) == ("+15550100", 'Smith, "Al"', "800555")
    assert "+1-555-0100" in inc.caller  # the raw URI stays
    await phone.report()

    # P-Asserted-Identity from a source that is not in trusted_peers is ignored (RFC 3325)...
    pai = 'P-Asserted-Identity: "Front Desk" <sip:desk@127.0.0.1>, <tel:+44-20-7946-0000>'
    phone = await dial(engine, events, tmp_path, "--from", "Alice <sip:alice@127.0.0.1>", "--header", pai,
                       user="sales", hangup_after=0.5)
    inc = phone.incoming
    assert (inc.caller_number, inc.caller_name, inc.dialled_number) == ("alice", "Alice", "sales")
    await phone.report()


async def test_identity_asserted_by_a_trusted_peer(tmp_path: Path) -> None:
    eng = Engine(EngineConfig(host="127.0.0.1", sip_port=free_port(), transports=("udp",), rtp_port=30000,
                              rtp_port_range=9000, pjsip_log_level=1, trusted_peers=("127.0.0.0/8",)))
    await eng.start()
    try:
        events = Events(eng)
        pai = 'P-Asserted-Identity: "Front Desk" <sip:desk@127.0.0.1>, <tel:+44-20-7946-0000>'
        phone = await dial(eng, events, tmp_path, "--from", "Alice <sip:alice@127.0.0.1>", "--header", pai,
                           user="sales", hangup_after=0.5)
        inc = phone.incoming
        assert (inc.caller_number, inc.caller_name, inc.dialled_number) == ("+442079460000", "Front Desk", "sales")
        await phone.report()
    finally:
        await eng.stop()


async def test_identity_of_a_hostile_invite_is_cleaned(engine: Engine) -> None:
    events = Events(engine)
    peer = UdpPeer()
    try:
        port = engine.config.sip_port
        invite = request(
            "INVITE", port, peer.port, uri=f"sip:%1b%5b2J%0d%0a999@127.0.0.1:{port}",
            from_header='From: "\x1b[31mEvil\\" \u202e" <sip:%0d%0aX-Injected@127.0.0.1>;tag=abc',
            extra=("P-Asserted-Identity: <sip:unterminated@127.0.0.1",),
            body=GOOD_SDP,
        )
        peer.send(invite, port)
        inc = await events.wait(IncomingCall)
        assert inc.dialled_number == "\\x1b[2J\\x0d\\x0a999"
        assert inc.caller_name == '\\x1b[31mEvil" \\u202e'
        assert inc.caller_number == "\\x0d\\x0aX-Injected"  # the broken PAI is ignored: From's number
        await engine.hangup(inc.call, 486)
        await events.wait(CallEnded, inc.call)
    finally:
        peer.close()

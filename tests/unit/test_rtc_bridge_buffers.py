"""The WebRTC bridge's bounded buffers (voice/rtc_bridge.py) and G.711 tables (voice/g711.py).

No network and no engine: OutBuffer, JitterBuffer and the outgoing PortTrack are fed by hand.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from voice import g711
from voice.rtc_bridge import FRAME, JitterBuffer, OutBuffer, PortTrack


def frame(value: int, n: int = FRAME) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


# -- OutBuffer: port -> browser -----------------------------------------------------------------------
def test_out_buffer_drops_the_oldest_beyond_its_limit_once_started() -> None:
    buf = OutBuffer(limit=3)
    for v in range(5):  # before the sender starts: old audio is no loss, and the first pop keeps the newest
        buf.push(frame(v))
    assert buf.dropped == 0
    first = buf.pop()
    assert first is not None and first[0] == 4 and not buf.frames
    for v in range(10, 15):
        buf.push(frame(v))
    assert buf.dropped == 2  # 10 and 11 went
    assert [int(f[0]) for f in buf.frames] == [12, 13, 14]
    assert [int(p[0]) for p in (buf.pop(), buf.pop(), buf.pop()) if p is not None] == [12, 13, 14]
    assert buf.pop() is None and buf.sent == 4


def test_out_buffer_underruns_are_silence_and_count_only_after_the_start() -> None:
    buf = OutBuffer()
    s = buf.silence()
    assert not s.any() and len(s) == FRAME and buf.underruns == 0  # nothing had started
    buf.push(frame(7))
    assert buf.pop() is not None
    buf.silence()
    buf.silence()
    assert buf.underruns == 2 and buf.sent == 4


# -- JitterBuffer: browser -> port --------------------------------------------------------------------
def test_jitter_buffer_primes_to_its_target_then_gives_whole_frames() -> None:
    jb = JitterBuffer(target=2, limit=6, trim_ticks=1000)
    jb.push(frame(1))
    assert jb.take(2 * FRAME, dry=True) is None  # priming: one frame is not the target
    jb.push(frame(2)[:100])
    jb.push(frame(2)[:60])  # packets need not be 20 ms
    out = jb.take(2 * FRAME, dry=True)
    assert out is not None and len(out) == 2 * FRAME
    assert out[:FRAME].tolist() == [1] * FRAME and out[FRAME:].tolist() == [2] * FRAME
    jb.push(frame(3))
    assert jb.take(FRAME - 1, dry=False) is None  # less room than a frame: nothing
    got = jb.take(FRAME, dry=False)  # not dry: no priming needed for the next frame
    assert got is not None and got.tolist() == [3] * FRAME and jb.buffered == 0


def test_jitter_buffer_drops_the_oldest_beyond_its_limit_and_counts() -> None:
    jb = JitterBuffer(target=2, limit=4, trim_ticks=1000, max_target=2)
    for v in range(7):
        jb.push(frame(v))
    assert jb.buffered == 4 * FRAME
    assert jb.dropped == 3 * FRAME and jb.drops == 3 and jb.received == 7 * FRAME
    out = jb.take(10 * FRAME, dry=False)
    assert out is not None and [int(x) for x in out[::FRAME]] == [3, 4, 5, 6]  # the newest four stayed


def test_jitter_buffer_drops_late_and_duplicate_packets_by_rtp_timestamp() -> None:
    jb = JitterBuffer()
    jb.push(frame(1), timestamp=0xFFFFFF60)
    jb.push(frame(2), timestamp=0)  # wraps around: newer
    jb.push(frame(9), timestamp=0)  # duplicate
    jb.push(frame(9), timestamp=0xFFFFFF60)  # late
    assert jb.late == 2 and jb.buffered == 2 * FRAME


def test_jitter_buffer_trims_audio_that_waits_beyond_the_target() -> None:
    jb = JitterBuffer(target=2, limit=6, trim_ticks=3)
    for v in range(3):
        jb.push(frame(v))
    for _ in range(2):
        jb.tick()
    assert jb.trimmed == 0
    jb.tick()  # a whole frame waited for three ticks: the oldest goes
    assert jb.trimmed == FRAME and jb.buffered == 2 * FRAME
    jb.take(2 * FRAME, dry=False)
    for _ in range(5):
        jb.tick()  # nothing waits: nothing trimmed
    assert jb.trimmed == FRAME


def test_jitter_buffer_target_grows_when_the_ring_runs_dry_and_relaxes_later() -> None:
    jb = JitterBuffer(target=2, limit=10, max_target=4, relax_ticks=5, trim_ticks=1000)
    assert jb.target == 2 * FRAME
    for _ in range(3):
        jb.ran_dry()
    assert jb.target == 4 * FRAME and jb.dry == 3  # capped at max_target
    for v in range(3):
        jb.push(frame(v))
    assert jb.take(4 * FRAME, dry=True) is None  # priming now waits for the larger target
    jb.push(frame(3))
    out = jb.take(4 * FRAME, dry=True)
    assert out is not None and len(out) == 4 * FRAME
    for _ in range(4):
        jb.tick()
    assert jb.target == 4 * FRAME
    jb.tick()  # five quiet ticks: one frame less
    assert jb.target == 3 * FRAME
    for _ in range(20):
        jb.tick()
    assert jb.target == 2 * FRAME  # never below where it started


# -- PortTrack: what aiortc's sender reads ------------------------------------------------------------
async def test_track_returns_frames_as_they_come_and_silence_on_underrun() -> None:
    buf = OutBuffer()
    track = PortTrack(buf, underrun_s=0.05)
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, track.push, frame(100))
    first = await track.recv()
    assert isinstance(first, av.AudioFrame) and first.sample_rate == 8000 and first.samples == FRAME
    assert first.to_ndarray().reshape(-1).tolist() == [100] * FRAME and first.pts == 0
    t0 = time.monotonic()
    second = await track.recv()  # nothing comes: 20 ms + 50 ms later, silence
    waited = time.monotonic() - t0
    assert not second.to_ndarray().any() and second.pts == FRAME
    assert 0.04 < waited < 0.5 and buf.underruns == 1
    track.push(frame(5))
    track.push(frame(6))
    third, fourth = await track.recv(), await track.recv()  # queued frames come at once
    assert third.to_ndarray()[0, 0] == 5 and fourth.to_ndarray()[0, 0] == 6 and fourth.pts == 3 * FRAME
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_track_sends_g711_packets_when_negotiated() -> None:
    track = PortTrack(OutBuffer())
    track.codec = "PCMA"
    pcm = (6000 * np.sin(np.arange(FRAME) / 3)).astype(np.int16)
    track.push(pcm)
    packet = await track.recv()
    assert isinstance(packet, av.Packet) and packet.pts == 0 and packet.time_base == fractions.Fraction(1, 8000)
    assert bytes(packet) == g711.encode(pcm, "PCMA") and len(bytes(packet)) == FRAME
    track.stop()


# -- G.711 tables ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "codec"), [("PCMU", "pcm_mulaw"), ("PCMA", "pcm_alaw")])
def test_g711_matches_ffmpeg_and_round_trips(name: str, codec: str) -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32767, 4000, dtype=np.int16)
    enc = av.CodecContext.create(codec, "w")
    enc.format, enc.layout, enc.sample_rate = "s16", "mono", 8000  # type: ignore[attr-defined]
    enc.time_base = fractions.Fraction(1, 8000)
    f = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    f.sample_rate = 8000
    reference = b"".join(bytes(p) for p in [*enc.encode(f), *enc.encode(None)])  # type: ignore[attr-defined]
    coded = g711.encode(pcm, name)
    assert coded == reference
    back = g711.decode(coded, name).astype(np.int32)
    # Companding: the error grows with the level, about 1/32 of it at most (plus the smallest step).
    assert (np.abs(back - pcm) <= np.abs(pcm.astype(np.int32)) / 16 + 16).all()

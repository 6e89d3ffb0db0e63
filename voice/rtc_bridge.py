"""The audio bridge between a browser's WebRTC peer (voice/rtc.py) and a bridge port (voice/ports.py).

    bridge = RtcBridge(peer, engine.port_audio(port))   # after (or before) the SDP exchange
    ...
    bridge.stats()                                        # frames, underruns, drops, buffered ms
    await bridge.close()

Port -> browser: the port pump hands each 20 ms frame the port heard (one pass per bridge tick
for every port, no asyncio hop per frame) to ``OutBuffer``; the outgoing track's ``recv()``
takes frames from it as they come, so the bridge's clock paces the browser's stream. A frame
that is more than ``UNDERRUN_S`` late makes ``recv()`` send 20 ms of silence instead (an
underrun, counted once the first frame went out); a sender that falls behind loses the oldest
frames beyond ``OUT_LIMIT`` (counted). With G.711 negotiated, ``recv()`` returns the frame
already encoded (an ``av.Packet``, by the G.711 tables of voice/g711.py): aiortc only packs it
into RTP, with no resampler, no codec context and no thread-pool hop per frame. With Opus it
returns an ``av.AudioFrame`` (s16, mono, 8 kHz), which aiortc resamples to 48 kHz and encodes.

Browser -> port: with G.711, RTP packets are taken from aiortc's receiver as they arrive (its
``_handle_rtp_packet``, replaced on this one receiver instance) and decoded inline: aiortc's
own audio path would hold each packet for four more (80 ms) and hand every frame through a
decoder thread and a coroutine. With Opus, the receiver's track is read (jitter prefetch
lowered to one frame) and resampled to 8 kHz. Either way the audio goes into ``JitterBuffer``,
and from there into the port's speak ring, keeping that ring at a target: on arrival if there
is room, and at each bridge tick. The target starts at ``TARGET_FRAMES`` (40 ms); each time the
ring is found dry (the browser's audio, or the loop, came late) it grows by a frame, up to
``MAX_TARGET_FRAMES``, and after ``RELAX_TICKS`` without that it shrinks by one again. The
buffer starts (and restarts, after the ring ran dry) once it holds the target; beyond
``JITTER_LIMIT`` frames the oldest go, and audio that stays queued beyond the target for a
second loses a frame (both counted), so a burst of late packets cannot leave latency behind. A
ring that runs dry plays silence (the native ``underflows``: a gap in what the caller hears).

Latency this adds (bench/bridge.py): port -> browser, under one frame; browser -> port, the
target (40 ms on a quiet machine) plus up to one tick.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.jitterbuffer import JitterBuffer as AiortcJitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from . import g711
from .audio import Pcm
from .ports import PortAudio
from .rtc import RtcPeer
from .tap import TapFrame

log = logging.getLogger("voice.rtc")

RATE = 8000
FRAME = 160  # samples per 20 ms
TIME_BASE = fractions.Fraction(1, RATE)
UNDERRUN_S = 0.06  # a frame this late is replaced by silence
OUT_LIMIT = 10  # frames waiting for the sender (200 ms: a stalled loop catches up, nothing is lost)
TARGET_FRAMES = 2  # browser audio kept in the port's speak ring (40 ms)
MAX_TARGET_FRAMES = 6  # ...at most, after the ring ran dry (120 ms)
RELAX_TICKS = 500  # ticks (10 s) without running dry before the target shrinks by a frame
JITTER_LIMIT = 10  # frames the jitter buffer holds at most (200 ms) before dropping the oldest
TRIM_TICKS = 50  # a frame queued beyond the target for this many ticks (1 s) is dropped
SILENCE = np.zeros(FRAME, dtype=np.int16)


class OutBuffer:
    """Port -> browser: frames the port heard, waiting for the sender (bounded, drop-oldest)."""

    def __init__(self, limit: int = OUT_LIMIT) -> None:
        self.frames: collections.deque[Pcm] = collections.deque()
        self.limit = max(1, limit)
        self.dropped = 0  # frames dropped because the sender fell behind
        self.underruns = 0  # silent frames sent because none was ready, after the first real one
        self.sent = 0  # frames handed to the sender (silence included)
        self.started = False

    def push(self, pcm: Pcm) -> None:
        self.frames.append(pcm)
        if len(self.frames) > self.limit:
            self.frames.popleft()
            if self.started:  # (before the sender starts, old audio is no loss)
                self.dropped += 1

    def pop(self) -> Pcm | None:
        """The oldest frame, or None if there is none. The first pop keeps only the newest frame:
        what queued before the sender started would be latency for the rest of the call."""
        if not self.frames:
            return None
        if not self.started:
            self.started = True
            while len(self.frames) > 1:
                self.frames.popleft()
        self.sent += 1
        return self.frames.popleft()

    def silence(self) -> Pcm:
        """A frame of silence for an underrun (counted once audio has started)."""
        if self.started:
            self.underruns += 1
        self.sent += 1
        return SILENCE


class JitterBuffer:
    """Browser -> port: decoded audio waiting for the port's speak ring (bounded, drop-oldest).

    ``take(room, dry)`` gives what the ring has room for, in whole frames; while the ring is
    ``dry`` (empty) nothing comes out until ``target`` samples are here (priming). ``ran_dry()``
    (the ring was found empty while playing) raises the target by a frame, up to
    ``max_target``; ``tick()``, once per bridge tick, lowers it again after ``relax_ticks``
    quiet ticks, and trims a frame that has waited beyond the target for ``trim_ticks``.
    """

    def __init__(self, target: int = TARGET_FRAMES, limit: int = JITTER_LIMIT, trim_ticks: int = TRIM_TICKS,
                 frame: int = FRAME, max_target: int = MAX_TARGET_FRAMES, relax_ticks: int = RELAX_TICKS) -> None:
        self.frame = frame
        self.min_target = self.target = max(1, target) * frame  # samples the ring is kept at
        self.max_target = max(target, max_target) * frame
        self.limit = max(max_target, limit) * frame
        self.trim_ticks = trim_ticks
        self.relax_ticks = relax_ticks
        self.dry = 0  # times the ring was found dry while playing
        self._calm = 0  # ticks since then
        self.parts: collections.deque[Pcm] = collections.deque()
        self.buffered = 0  # samples
        self.received = 0  # samples pushed
        self.dropped = 0  # samples dropped (oldest first) beyond the limit
        self.drops = 0  # pushes that had to drop
        self.trimmed = 0  # samples trimmed because they waited too long
        self.late = 0  # packets older than one already taken (out of order, duplicates)
        self._last_ts: int | None = None
        self._held = 0  # consecutive ticks with a whole frame left over

    def push(self, pcm: Pcm, timestamp: int | None = None) -> None:
        """Queue samples; ``timestamp`` (RTP, if known) drops late and duplicate packets."""
        if timestamp is not None:
            ahead = (timestamp - self._last_ts) & 0xFFFFFFFF if self._last_ts is not None else 1
            if ahead == 0 or ahead >= 0x80000000:  # (RTP timestamps wrap around)
                self.late += 1
                return
            self._last_ts = timestamp
        if len(pcm) == 0:
            return
        self.parts.append(pcm)
        self.buffered += len(pcm)
        self.received += len(pcm)
        if self.buffered > self.limit:
            self.drops += 1
            self.dropped += self._discard(self.buffered - self.limit)

    def take(self, room: int, dry: bool) -> Pcm | None:
        """Up to ``room`` samples (whole frames) for the ring, or None."""
        if dry and self.buffered < self.target:
            return None  # priming
        n = min(room, self.buffered) // self.frame * self.frame
        if n <= 0:
            return None
        out: list[Pcm] = []
        need = n
        while need:
            part = self.parts[0]
            if len(part) <= need:
                out.append(self.parts.popleft())
                need -= len(part)
            else:
                out.append(part[:need])
                self.parts[0] = part[need:]
                need = 0
        self.buffered -= n
        return out[0] if len(out) == 1 else np.concatenate(out)

    def ran_dry(self) -> None:
        """The ring ran dry while playing: keep more in it from now on."""
        self.dry += 1
        self._calm = 0
        self.target = min(self.max_target, self.target + self.frame)

    def tick(self) -> None:
        """A bridge tick passed (after ``take``): relax the target, trim audio that waited too long."""
        self._calm += 1
        if self._calm >= self.relax_ticks and self.target > self.min_target:
            self._calm = 0
            self.target -= self.frame
        if self.buffered >= self.frame:
            self._held += 1
            if self._held >= self.trim_ticks:
                self._held = 0
                self.trimmed += self._discard(self.frame)
        else:
            self._held = 0

    def _discard(self, n: int) -> int:
        gone = 0
        while gone < n and self.parts:
            part = self.parts[0]
            if len(part) <= n - gone:
                gone += len(self.parts.popleft())
            else:
                self.parts[0] = part[n - gone :]
                gone = n
        self.buffered -= gone
        return gone


class PortTrack(MediaStreamTrack):
    """The outgoing audio track: what the port hears, paced by the bridge's clock."""

    kind = "audio"

    def __init__(self, buffer: OutBuffer, underrun_s: float = UNDERRUN_S) -> None:
        super().__init__()
        self.buffer = buffer
        self.codec = ""  # G.711 name (PCMU/PCMA) once negotiated: recv() returns encoded packets
        self.resolve: Callable[[], bool] | None = None  # sets ``codec``; True once negotiated
        self._underrun_s = underrun_s
        self._samples = 0
        self._due = 0.0  # when the next frame is expected (monotonic)
        self._waiter: asyncio.Future[None] | None = None
        self._clock = asyncio.get_running_loop()

    def push(self, pcm: Pcm) -> None:
        self.buffer.push(pcm)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self.resolve is not None and self.resolve():  # (the sender starts once negotiated)
            self.resolve = None
        pcm = self.buffer.pop()
        now = time.monotonic()
        if pcm is None:
            due = max(self._due, now) if self._due else now + 1.0  # (the first frame: up to 1 s)
            waiter = self._waiter = self._clock.create_future()
            timer = self._clock.call_at(self._clock.time() + (due + self._underrun_s - now), _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
            if self.readyState != "live":
                raise MediaStreamError
            pcm = self.buffer.pop()
            if pcm is None:
                pcm = self.buffer.silence()
                self._due = due + FRAME / RATE
            else:
                self._due = time.monotonic() + FRAME / RATE
        else:
            self._due = now + FRAME / RATE
        pts = self._samples
        self._samples += len(pcm)
        if self.codec:
            packet = av.Packet(g711.encode(pcm, self.codec))
            packet.pts, packet.time_base = pts, TIME_BASE
            return packet
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, pts, TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(frozen=True, slots=True)
class BridgeStats:
    """Counters of one RtcBridge (frames are 20 ms)."""

    codec: str
    frames_out: int  # frames sent towards the browser (silence included)
    underruns: int  # ...of which silence because the port's frame was late
    out_dropped: int  # frames the sender was too slow for (oldest dropped)
    frames_in: int  # frames received from the browser
    in_dropped: int  # frames dropped beyond the jitter buffer's limit (oldest first)
    in_trimmed: int  # frames trimmed because they waited beyond the target too long
    in_late: int  # packets dropped as late or duplicate
    port_underflows: int  # times the port's speak ring ran dry (the caller heard a gap)
    target_ms: float  # what the jitter buffer keeps in the speak ring now (grows after underflows)
    buffered_ms: float  # browser audio waiting: jitter buffer + the port's speak ring
    out_buffered_ms: float  # port audio waiting for the sender


class RtcBridge:
    """Pumps audio both ways between ``peer`` and a port's ``audio`` (event loop only)."""

    def __init__(self, peer: RtcPeer, audio: PortAudio, *, target_frames: int = TARGET_FRAMES,
                 jitter_limit: int = JITTER_LIMIT) -> None:
        if audio.rate != RATE:
            raise ValueError(f"the bridge runs at {RATE} Hz, not {audio.rate}")
        self.peer = peer
        self.audio = audio
        self.out = OutBuffer()
        self.jitter = JitterBuffer(target_frames, jitter_limit)
        self.track = PortTrack(self.out)
        self._closed = False
        self._reader: asyncio.Task[None] | None = None
        self._resampler: av.AudioResampler | None = None
        self._receiver = peer.transceiver.receiver
        self._original = self._receiver._handle_rtp_packet
        self._g711_pt: dict[int, str] = {}
        self._playing = False  # the ring has been fed since the buffer last primed
        self.track.resolve = self._negotiated
        peer.transceiver.sender.replaceTrack(self.track)
        setattr(self._receiver, "_handle_rtp_packet", self._on_rtp)  # noqa: B010 (one instance)
        audio.sink = self._on_port_frame
        self._started = False
        self._negotiated()

    # -- port -> browser ------------------------------------------------------------------------------
    def _on_port_frame(self, frame: TapFrame) -> None:
        """One frame the port heard (the pump's pass, once per bridge tick)."""
        self.track.push(frame.pcm)
        self._feed()
        self.jitter.tick()

    # -- browser -> port ------------------------------------------------------------------------------
    def _negotiated(self) -> bool:
        """Once the peer knows its codec: G.711 goes the inline way, anything else through the track."""
        if self._started:
            return True
        codec = self.peer.codec
        if not codec:
            return False
        self._started = True
        name = codec.split("/")[0].upper()
        if name in g711.CODECS:
            self.track.codec = name
            for c in getattr(self.peer.transceiver, "_codecs", []):
                cname = c.mimeType.split("/")[-1].upper()
                if cname in g711.CODECS:
                    self._g711_pt[int(c.payloadType)] = cname
        else:
            if hasattr(self._receiver, "_RTCRtpReceiver__jitter_buffer"):  # aiortc holds 4 frames before decoding
                setattr(self._receiver, "_RTCRtpReceiver__jitter_buffer", AiortcJitterBuffer(capacity=16, prefetch=1))  # noqa: B010
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            self._reader = asyncio.get_running_loop().create_task(self._read_track(), name="rtc-bridge-read")
        log.info("rtc bridge audio", extra={"call": self.audio.port, "codec": codec})
        return True

    async def _on_rtp(self, packet: Any, arrival_time_ms: int) -> None:
        if not self._started and not self._negotiated():
            return
        codec = self._g711_pt.get(packet.payload_type)
        if codec is None or self._closed:
            await self._original(packet, arrival_time_ms)  # Opus, telephone-events...
            return
        if packet.payload:
            self.jitter.push(g711.decode(packet.payload, codec), packet.timestamp)
            self._feed()

    async def _read_track(self) -> None:
        track = self._receiver.track
        assert self._resampler is not None
        try:
            while not self._closed:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in self._resampler.resample(frame):
                    self.jitter.push(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))
                self._feed()
        except MediaStreamError:
            pass

    def _feed(self) -> None:
        """Top the port's speak ring up to the target from the jitter buffer."""
        if self._closed:
            return
        held = self.audio.speak_buffered()
        target = self.jitter.target
        if held >= target:
            return
        if held == 0 and self._playing:
            self._playing = False
            self.jitter.ran_dry()
            target = self.jitter.target
        pcm = self.jitter.take(target - held, held == 0)
        if pcm is not None:
            self.audio.write_frame(pcm)
            self._playing = True

    # -- life cycle -----------------------------------------------------------------------------------
    def stats(self) -> BridgeStats:
        s = self.audio.stats()
        j = self.jitter
        return BridgeStats(
            codec=self.peer.codec, frames_out=self.out.sent, underruns=self.out.underruns,
            out_dropped=self.out.dropped, frames_in=j.received // FRAME, in_dropped=j.dropped // FRAME,
            in_trimmed=j.trimmed // FRAME, in_late=j.late, port_underflows=s.underflows,
            target_ms=j.target * 1000 / RATE,
            buffered_ms=(j.buffered + s.write_buffered) * 1000 / RATE,
            out_buffered_ms=len(self.out.frames) * FRAME * 1000 / RATE)

    async def close(self) -> None:
        """Stop pumping (the peer and the port stay: closing them is their owners' business)."""
        if self._closed:
            return
        self._closed = True
        if self.audio.sink == self._on_port_frame:
            self.audio.sink = None
        with contextlib.suppress(AttributeError):
            delattr(self._receiver, "_handle_rtp_packet")
        self.track.stop()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

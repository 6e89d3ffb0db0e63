"""A browser stand-in for WebRTC tests and benchmarks: a plain aiortc peer (real ICE, real DTLS-SRTP).

    client = BrowserPeer(tone_hz=1300)            # says a steady tone (or bursts: client.say)
    answer = await client.answer(server_offer)    # or: offer = await client.offer()
    ...
    client.heard_pcm()                            # what it heard, int16 at 8 kHz
    await client.close()

What it says: 20 ms frames paced by its own clock (like a microphone), a tone at ``tone_hz``
(0: silence) or, with ``bursts=True``, silence with tone bursts scheduled by ``burst()``; the
send time of each burst's first sample is kept (``sent``). With G.711 negotiated its frames go
out already encoded (``av.Packet``: no thread hop per frame, so a hundred of these fit in one
process). What it hears: with ``inline=True`` RTP packets are decoded as they arrive (no
decoder thread, no 80 ms prefetch: arrival times are the wire's), else through aiortc's track
as a browser app would. Onsets of bursts in what it hears are timestamped (``onsets``).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from voice import g711

RATE, FRAME = 8000, 160
TIME_BASE = fractions.Fraction(1, RATE)
ONSET_LEVEL, QUIET_S = 2000, 0.25


class Onsets:
    """Tone-burst onsets in a stream of samples: a loud sample after QUIET_S of quiet."""

    def __init__(self) -> None:
        self.quiet = int(QUIET_S * RATE)
        self.times: list[float] = []

    def feed(self, pcm: np.ndarray, t0: float) -> None:
        """``pcm`` whose first sample arrived at ``t0``."""
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > ONSET_LEVEL)
        if loud.size == 0:
            self.quiet += len(pcm)
            return
        if self.quiet + int(loud[0]) >= QUIET_S * RATE:
            self.times.append(t0 + int(loud[0]) / RATE)
        self.quiet = len(pcm) - 1 - int(loud[-1])


class ToneSource(MediaStreamTrack):
    """A microphone: 20 ms frames on its own clock, a tone or bursts of one."""

    kind = "audio"

    def __init__(self, tone_hz: float, level: int = 8000, bursts: bool = False) -> None:
        super().__init__()
        self.tone_hz, self.level, self.bursts = tone_hz, level, bursts
        self.codec = ""  # PCMU/PCMA once negotiated: frames go out encoded
        self.sent: list[float] = []  # monotonic time each burst's first sample went out
        self._pending: list[int] = []  # burst lengths (samples) waiting to start
        self._burst_left = 0
        self._n = 0
        self._start: float | None = None

    def burst(self, seconds: float = 0.1) -> None:
        self._pending.append(int(seconds * RATE))

    def _pcm(self) -> np.ndarray:
        t = (self._n + np.arange(FRAME)) / RATE
        tone = (self.level * np.sin(2 * np.pi * self.tone_hz * t)).astype(np.int16)
        if not self.bursts:
            return tone
        if self._burst_left == 0 and self._pending:
            self._burst_left = self._pending.pop(0)
            self.sent.append(time.monotonic())
        if self._burst_left == 0:
            return np.zeros(FRAME, dtype=np.int16)
        n = min(FRAME, self._burst_left)
        self._burst_left -= n
        tone[n:] = 0
        return tone

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._n / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = self._pcm()
        pts = self._n
        self._n += FRAME
        if self.codec:
            packet = av.Packet(g711.encode(pcm, self.codec))
            packet.pts, packet.time_base = pts, TIME_BASE
            return packet
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, pts, TIME_BASE
        return frame


class BrowserPeer:
    """The browser's side of one call."""

    def __init__(self, tone_hz: float = 1300.0, *, bursts: bool = False, inline: bool = False,
                 codecs: tuple[str, ...] = (), keep_audio: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.source = ToneSource(tone_hz, bursts=bursts)
        self.transceiver = self.pc.addTransceiver(self.source, direction="sendrecv")
        if codecs:  # e.g. ("audio/opus",): what this "browser" accepts, in order
            caps = RTCRtpSender.getCapabilities("audio").codecs
            self.transceiver.setCodecPreferences([c for m in codecs for c in caps if c.mimeType == m])
        self.inline = inline
        self.keep_audio = keep_audio
        self.chunks: list[np.ndarray] = []
        self.onsets = Onsets()
        self.packets = 0
        self.lost = 0  # RTP sequence gaps (inline only)
        self.first_at: float | None = None
        self._seq: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._codec = ""
        receiver = self.transceiver.receiver
        if inline:
            setattr(receiver, "_handle_rtp_packet", self._on_rtp)  # noqa: B010

    @property
    def codec(self) -> str:
        codecs = getattr(self.transceiver, "_codecs", [])
        return f"{codecs[0].mimeType.split('/')[1]}/{codecs[0].clockRate}" if codecs else ""

    def _negotiated(self) -> None:
        name = self.codec.split("/")[0].upper()
        self._codec = name if name in g711.CODECS else ""
        self.source.codec = self._codec
        if not self.inline and self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="browser-peer-read")

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._negotiated()
        return str(self.pc.localDescription.sdp)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._negotiated()

    async def connected(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while self.pc.connectionState != "connected":
            if time.monotonic() > deadline:
                raise AssertionError(f"not connected within {within}s: {self.pc.connectionState}")
            await asyncio.sleep(0.02)

    def _heard(self, pcm: np.ndarray, t0: float) -> None:
        if self.first_at is None:
            self.first_at = t0
        if self.keep_audio:
            self.chunks.append(pcm)
        self.onsets.feed(pcm, t0)

    async def _on_rtp(self, packet: Any, arrival_time_ms: int) -> None:
        now = time.monotonic()
        self.packets += 1
        if self._seq is not None:
            self.lost += max(0, ((packet.sequence_number - self._seq) & 0xFFFF) - 1) if (
                (packet.sequence_number - self._seq) & 0xFFFF) < 0x8000 else 0
        self._seq = packet.sequence_number
        if self._codec and packet.payload:
            self._heard(g711.decode(packet.payload, self._codec), now)

    async def _read(self) -> None:
        track = self.transceiver.receiver.track
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if isinstance(frame, av.AudioFrame):
                    for out in resampler.resample(frame):
                        self._heard(out.to_ndarray().reshape(-1).astype(np.int16), now)
        except MediaStreamError:
            pass

    def heard_pcm(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)

    async def close(self) -> None:
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass

"""The server's WebRTC peer for one browser: an aiortc RTCPeerConnection with one audio line.

    peer = RtcPeer()                                  # G.711 only: PCMU, then PCMA
    sdp = await peer.offer()                          # the server offers...
    await peer.accept_answer(browser_answer_sdp)      # ...the browser answers
    # or: answer_sdp = await peer.answer(browser_offer_sdp)
    bridge = RtcBridge(peer, engine.port_audio(port)) # voice/rtc_bridge.py: audio both ways

One ``sendrecv`` audio transceiver, its codec preferences in the order given: G.711 (PCMU/8000,
PCMA/8000, which every browser supports) first, so the audio crosses the gateway with no
resampling and no transcoding beyond G.711 <-> PCM; Opus (``"opus/48000"``) only when
configured, then resampled to and from the bridge's 8 kHz. aiortc gathers its ICE candidates
before it returns an SDP (no trickle needed), and no STUN server is used unless given.

Bad input gets a clear ``RtcError`` and changes nothing the caller can see: SDP that does not
parse or is not an offer/answer in the right state, an offer with no audio or with none of the
configured codecs, an unknown codec name. ``on_state`` hears the connection's state:
``connected``, ``disconnected``, ``failed``, ``closed``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from .exceptions import RtcError
from .text import clean

log = logging.getLogger("voice.rtc")

G711 = ("PCMU/8000", "PCMA/8000")
KNOWN = {"PCMU/8000": "audio/PCMU", "PCMA/8000": "audio/PCMA", "opus/48000": "audio/opus",
         "opus/48000/2": "audio/opus"}
MAX_SDP = 64 * 1024
_STATES = frozenset({"connected", "disconnected", "failed", "closed"})


def codec_name(mime: str, rate: int) -> str:
    """``audio/PCMU``, 8000 -> ``PCMU/8000``."""
    return f"{mime.split('/', 1)[-1]}/{rate}"


class RtcPeer:
    """One browser's peer connection (event loop only)."""

    def __init__(self, *, codecs: Sequence[str] = G711, ice_servers: Sequence[str] = (),
                 on_state: Callable[[str], None] | None = None) -> None:
        names: dict[str, str] = {}  # our name -> aiortc's MIME type, in order
        for name in codecs:
            key = next((k for k in KNOWN if isinstance(name, str) and k.lower() == name.lower()), None)
            if key is None:
                raise RtcError(f"unknown codec {clean(str(name), 40)!r}: use {', '.join(sorted(KNOWN))}")
            if KNOWN[key] not in names.values():
                names[key] = KNOWN[key]
        if not names:
            raise RtcError("at least one codec is needed")
        caps = RTCRtpSender.getCapabilities("audio").codecs
        prefs = [c for mime in names.values() for c in caps if c.mimeType == mime]
        self.codecs = tuple(names)
        self.on_state = on_state
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(u) for u in ice_servers]))
        self.transceiver = self.pc.addTransceiver("audio", direction="sendrecv")
        self.transceiver.setCodecPreferences(prefs)
        self.state = "new"
        self._closed = False
        self.pc.on("connectionstatechange", self._on_state)

    # -- signalling ---------------------------------------------------------------------------------
    async def offer(self) -> str:
        """The server's offer (with its ICE candidates)."""
        self._usable()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        """The browser's answer to ``offer()``."""
        self._usable()
        if self.pc.signalingState != "have-local-offer":
            raise RtcError(f"no offer is waiting for an answer (signalling state {self.pc.signalingState})")
        await self._remote(sdp, "answer")

    async def answer(self, offer_sdp: str) -> str:
        """The answer to the browser's offer."""
        self._usable()
        if self.pc.signalingState != "stable" or self.pc.remoteDescription is not None:
            raise RtcError(f"cannot take an offer now (signalling state {self.pc.signalingState})")
        await self._remote(offer_sdp, "offer")
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def add_ice_candidate(self, candidate: str, sdp_mid: str | None = None,
                                sdp_mline_index: int | None = 0) -> None:
        """A trickled candidate from the browser (``candidate:...`` as in its SDP); optional:
        browsers put their gathered candidates in the SDP too. "" (end of candidates) is ignored."""
        self._usable()
        text = candidate.strip()
        if not text:
            return
        try:
            cand = candidate_from_sdp(text.removeprefix("a=").removeprefix("candidate:"))
        except (ValueError, IndexError) as exc:
            raise RtcError(f"bad ICE candidate {clean(text, 80)!r}: {exc}") from None
        cand.sdpMid, cand.sdpMLineIndex = sdp_mid, sdp_mline_index
        await self.pc.addIceCandidate(cand)

    async def _remote(self, sdp: str, kind: str) -> None:
        if not isinstance(sdp, str) or not sdp.strip():
            raise RtcError(f"an empty {kind}")
        if len(sdp) > MAX_SDP:
            raise RtcError(f"the {kind} is longer than {MAX_SDP} bytes")
        text = sdp if sdp.endswith("\n") else sdp + "\r\n"
        if "m=audio" not in text:
            raise RtcError(f"the {kind} has no audio line (m=audio)")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=text, type=kind))
        except Exception as exc:  # aiortc's parser raises ValueError, KeyError, IndexError, its own errors...
            reason = str(exc) or type(exc).__name__
            if "send parameters" in reason or "receive parameters" in reason:
                reason = f"none of the codecs {', '.join(self.codecs)} is in it"
            raise RtcError(f"unusable SDP {kind}: {clean(reason, 200)}") from None
        if not self.codec:
            raise RtcError(f"the {kind} negotiated no audio codec")

    # -- what was negotiated -------------------------------------------------------------------------
    @property
    def codec(self) -> str:
        """The codec the peer sends and receives (``PCMU/8000``, ``opus/48000``...), "" before
        negotiation."""
        codecs: list[Any] = getattr(self.transceiver, "_codecs", [])  # aiortc's negotiated list
        first = next((c for c in codecs if c.mimeType.lower() != "audio/rtx"), None)
        return codec_name(first.mimeType, first.clockRate) if first is not None else ""

    @property
    def payload_type(self) -> int | None:
        codecs: list[Any] = getattr(self.transceiver, "_codecs", [])
        return int(codecs[0].payloadType) if codecs else None

    @property
    def local_sdp(self) -> str:
        desc = self.pc.localDescription
        return str(desc.sdp) if desc is not None else ""

    # -- life cycle ----------------------------------------------------------------------------------
    def _usable(self) -> None:
        if self._closed:
            raise RtcError("this peer connection is closed")

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == self.state or state not in _STATES:
            return
        self.state = state
        log.info("peer connection %s", state)
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                log.exception("on_state failed")

    async def close(self) -> None:
        """Close the connection (idempotent): ``on_state("closed")`` follows."""
        if self._closed:
            return
        self._closed = True
        await self.pc.close()

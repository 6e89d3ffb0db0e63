"""The audio of one browser on the desk: a bridge port, an aiortc peer and the pump between them.

An agent answering a call, or a supervisor listening in, gets a :class:`DeskMedia`: a conference
bridge member with no SIP call (``Engine.open_port``), and over it a WebRTC peer
(``voice.rtc.RtcPeer``) pumped by ``voice.rtc_bridge.RtcBridge``. The server offers (``offer()``
gives the SDP for the desk's ``rtc_offer``), the browser answers (``accept_answer``). The port
outlives its peers: after a reconnect, ``offer()`` again replaces the peer on the same port, so the
bridges to the caller (and a recording of the port) go on untouched.

``on_state`` hears the current peer's connection state: connected, disconnected, failed, closed
(a replaced peer's states are not passed on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from voice.engine import Engine
from voice.exceptions import CallGone, EngineError, EngineStopped
from voice.rtc import G711, RtcPeer
from voice.rtc_bridge import RtcBridge

log = logging.getLogger("callcenter.desk")


class DeskMedia:
    def __init__(self, engine: Engine, *, label: str, on_state: Callable[[str], None],
                 codecs: tuple[str, ...] = G711) -> None:
        self.engine = engine
        self.codecs = codecs
        self.label = label
        self._on_state = on_state
        self.port: int | None = None
        self.state = "new"              # the current peer's: new, connecting, connected, disconnected, failed, closed
        self._peer: RtcPeer | None = None
        self._bridge: RtcBridge | None = None
        self.offers = 0                 # SDP offers made (1 + renegotiations)
        self.closed = False

    async def open(self) -> int:
        """The bridge port (opened once)."""
        if self.port is None:
            self.port = await self.engine.open_port(label=self.label)
        return self.port

    async def offer(self) -> str:
        """A fresh peer on the port (the old one closed): its SDP offer."""
        port = await self.open()
        await self._drop_peer()
        peer = RtcPeer(codecs=self.codecs)
        peer.on_state = lambda state: self._peer_state(peer, state)
        self._peer = peer
        self.state = "connecting"
        self._bridge = RtcBridge(peer, self.engine.port_audio(port))
        sdp = await peer.offer()
        self.offers += 1
        return sdp

    async def accept_answer(self, sdp: str) -> None:
        if self._peer is None:
            raise ValueError("no SDP offer is waiting for an answer")
        await self._peer.accept_answer(sdp)

    def _peer_state(self, peer: RtcPeer, state: str) -> None:
        if peer is not self._peer or self.closed:
            return
        self.state = state
        try:
            self._on_state(state)
        except Exception:
            log.exception("desk media state handler failed", extra={"label": self.label, "state": state})

    def stats(self) -> dict[str, Any]:
        """The pump's figures (voice.rtc_bridge.BridgeStats as a dict), {} with no peer."""
        return dataclasses.asdict(self._bridge.stats()) if self._bridge is not None else {}

    @property
    def codec(self) -> str:
        return self._peer.codec if self._peer is not None else ""

    async def _drop_peer(self) -> None:
        peer, bridge = self._peer, self._bridge
        self._peer = self._bridge = None
        try:
            if bridge is not None:
                await bridge.close()
            if peer is not None:
                await peer.close()
        except Exception:
            log.exception("closing a desk peer failed", extra={"label": self.label})

    async def close(self) -> None:
        """Peer, pump and port: all gone. Idempotent."""
        if self.closed:
            return
        self.closed = True
        await self._drop_peer()
        self.state = "closed"
        if self.port is not None:
            with contextlib.suppress(CallGone, EngineStopped, EngineError):
                await self.engine.close_port(self.port)

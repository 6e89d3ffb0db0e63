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
import logging
from collections.abc import Callable
from typing import Any

from voice.engine import Engine
from voice.exceptions import CallGone, EngineError, EngineStopped

log = logging.getLogger("callcenter.desk")


def _rtc() -> tuple[Any, Any]:
    from voice.rtc import RtcPeer
    from voice.rtc_bridge import RtcBridge

    return RtcPeer, RtcBridge


class DeskMedia:
    def __init__(self, engine: Engine, *, label: str, on_state: Callable[[str], None]) -> None:
        self.engine = engine
        self.label = label
        self._on_state = on_state
        self.port: int | None = None
        self.state = "new"              # the current peer's: new, connecting, connected, disconnected, failed, closed
        self._peer: Any = None
        self._bridge: Any = None
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
        rtc_peer, rtc_bridge = _rtc()
        peer = rtc_peer()
        self._peer = peer
        self.state = "connecting"
        peer.on_state = lambda state, p=peer: self._peer_state(p, state)
        self._bridge = rtc_bridge(peer, self.engine.port_audio(port))
        sdp: str = await peer.offer()
        self.offers += 1
        return sdp

    async def accept_answer(self, sdp: str) -> None:
        if self._peer is None:
            raise ValueError("no SDP offer is waiting for an answer")
        await self._peer.accept_answer(sdp)

    def _peer_state(self, peer: Any, state: str) -> None:
        if peer is not self._peer or self.closed:
            return
        self.state = state
        try:
            self._on_state(state)
        except Exception:
            log.exception("desk media state handler failed", extra={"label": self.label, "state": state})

    def stats(self) -> dict[str, Any]:
        if self._bridge is None or not hasattr(self._bridge, "stats"):
            return {}
        return dict(self._bridge.stats())

    async def _drop_peer(self) -> None:
        peer, bridge = self._peer, self._bridge
        self._peer = self._bridge = None
        for obj in (bridge, peer):
            if obj is None:
                continue
            closer = getattr(obj, "close", None) or getattr(obj, "stop", None)
            if closer is None:
                continue
            try:
                result = closer()
                if hasattr(result, "__await__"):
                    await result
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

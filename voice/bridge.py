"""Two-way audio between two calls through pjsua's conference bridge (engine thread only).

``bridge(a, b)`` connects a's audio port to b's and b's to a's: each far end hears the other.
Nothing else changes: a call's recording port still listens to that call's port alone, so each
call's recording keeps what its own far end says (the caller leg and the agent leg are separate
files), and a player on one call is heard by that call's far end only (hold music for the
caller stays out of the agent's ear).

A link is remembered on both calls (``Call.bridges``), not only as bridge connections: a
re-INVITE (hold, resume, a new codec) replaces a call's port and drops its connections, and
``rewire`` (called by voice/media.py after every media change) connects the links again. A link
made while a call has no port yet (early in its life, or while its stream is being replaced)
is connected when the port comes. When a call ends its port leaves the bridge with every
connection; ``drop`` forgets its links, and the other call goes on (silence in its ear).
"""

from __future__ import annotations

import logging

import pjsua2 as pj

from .exceptions import EngineError
from .pj_objects import Call

log = logging.getLogger("voice.engine")

MAX_LINKS = 8  # per call: a conference of a few, not a fan-out


class Bridges:
    """The links between calls. ``calls`` is the engine core's dict of live calls (engine id -> Call)."""

    def __init__(self, calls: dict[int, Call]) -> None:
        self._calls = calls

    def bridge(self, a: Call, b: Call) -> None:
        if a is b:
            raise EngineError(f"call {a.cid} cannot be bridged with itself")
        if b.cid not in a.bridges and (len(a.bridges) >= MAX_LINKS or len(b.bridges) >= MAX_LINKS):
            raise EngineError(f"a call can be bridged with at most {MAX_LINKS} others")
        a.bridges.add(b.cid)
        b.bridges.add(a.cid)
        _connect(a, b)  # connecting twice is a no-op: bridge() is idempotent

    def unbridge(self, a: Call, b: Call) -> bool:
        if b.cid not in a.bridges:
            return False
        a.bridges.discard(b.cid)
        b.bridges.discard(a.cid)
        for src, dst in ((a, b), (b, a)):
            if src.audio is not None and dst.audio is not None:
                try:
                    src.audio.stopTransmit(dst.audio)
                except pj.Error:
                    pass  # a port that left the bridge took its connections with it
        return True

    def rewire(self, call: Call) -> None:
        """``call`` has a (new) port: connect its links again."""
        for cid in list(call.bridges):
            peer = self._calls.get(cid)
            if peer is None or peer.ended:
                call.bridges.discard(cid)
                continue
            _connect(call, peer)

    def drop(self, call: Call) -> None:
        """``call`` ended: forget its links (its port's connections vanished with the port)."""
        for cid in call.bridges:
            peer = self._calls.get(cid)
            if peer is not None:
                peer.bridges.discard(call.cid)
        call.bridges.clear()


def _connect(a: Call, b: Call) -> None:
    if a.audio is None or b.audio is None:
        return  # connected by rewire() when the port comes
    a.audio.startTransmit(b.audio)
    b.audio.startTransmit(a.audio)

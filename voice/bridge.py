"""Audio between calls and bridge ports through pjsua's conference bridge (engine thread only).

Members are calls and bridge ports (voice/ports.py): anything with an engine id, an ``audio``
port on the bridge (or None for now) and an ``ended`` flag. Connections are one way:
``connect(src, dst)`` lets dst's far end hear src's far end (src's port transmits to dst's
port). ``bridge(a, b)`` is both directions at once (each far end hears the other) and
``unbridge`` takes both away, so a supervisor's listen (caller -> supervisor, agent ->
supervisor), whisper (+ supervisor -> agent) and barge (+ supervisor -> caller) are one-way
connections beside the caller's and agent's bridge. The bridge mixes every source connected
to a port: a member hears the sum of what is connected to it.

Nothing else changes: a call's recording port still listens to that call's port alone, so each
call's recording keeps what its own far end says (the caller leg and the agent leg are separate
files), and a player on one call is heard by that call's far end only (hold music for the
caller stays out of the agent's ear).

Connections are remembered here (source -> destinations), not only as bridge connections: a
re-INVITE (hold, resume, a new codec) replaces a call's port and drops its connections, and
``rewire`` (called by voice/media.py after every media change) connects them again. One made
while a member has no port yet (early in its life, or while its stream is being replaced) is
connected when the port comes. When a member ends its port leaves the bridge with every
connection; ``drop`` forgets them, and the others go on (silence in their ears).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pjsua2 as pj

from .exceptions import EngineError

log = logging.getLogger("voice.engine")

MAX_LINKS = 8  # distinct peers per member: a conference of a few, not a fan-out


class Bridges:
    """The connections between members. ``members`` maps engine ids to the live calls and ports."""

    def __init__(self, members: Mapping[int, Any]) -> None:
        self._members = members
        self._out: dict[int, set[int]] = {}  # source id -> ids of the members that hear it
        self._in: dict[int, set[int]] = {}  # destination id -> ids of the members it hears

    def peers(self, cid: int) -> set[int]:
        """Ids of the members connected to ``cid`` either way."""
        return self._out.get(cid, set()) | self._in.get(cid, set())

    def hears(self, dst: int) -> set[int]:
        """Ids of the members ``dst`` hears."""
        return set(self._in.get(dst, ()))

    def connect(self, src: Any, dst: Any) -> None:
        """dst's far end hears src's far end. Idempotent."""
        if src is dst:
            raise EngineError(f"{src.cid} cannot be connected to itself")
        if dst.cid in self._out.get(src.cid, ()):
            _transmit(src, dst)  # (connecting twice is a no-op)
            return
        for m, other in ((src, dst), (dst, src)):
            if other.cid not in self.peers(m.cid) and len(self.peers(m.cid)) >= MAX_LINKS:
                raise EngineError(f"a call or port can be connected with at most {MAX_LINKS} others")
        self._out.setdefault(src.cid, set()).add(dst.cid)
        self._in.setdefault(dst.cid, set()).add(src.cid)
        _transmit(src, dst)

    def disconnect(self, src: Any, dst: Any) -> bool:
        """Undo ``connect(src, dst)``; False if they were not connected that way."""
        outs = self._out.get(src.cid)
        if outs is None or dst.cid not in outs:
            return False
        self._forget(src.cid, dst.cid)
        if src.audio is not None and dst.audio is not None:
            try:
                src.audio.stopTransmit(dst.audio)
            except pj.Error:
                pass  # a port that left the bridge took its connections with it
        return True

    def bridge(self, a: Any, b: Any) -> None:
        if a is b:
            raise EngineError(f"call {a.cid} cannot be bridged with itself")
        if b.cid not in self.peers(a.cid) and (len(self.peers(a.cid)) >= MAX_LINKS
                                               or len(self.peers(b.cid)) >= MAX_LINKS):
            raise EngineError(f"a call can be bridged with at most {MAX_LINKS} others")
        self.connect(a, b)
        self.connect(b, a)

    def unbridge(self, a: Any, b: Any) -> bool:
        """Both directions away; False if they were connected neither way."""
        one = self.disconnect(a, b)
        return self.disconnect(b, a) or one

    def rewire(self, member: Any) -> None:
        """``member`` has a (new) port: connect its connections again, both ways."""
        cid = member.cid
        for dst_id in list(self._out.get(cid, ())):
            peer = self._members.get(dst_id)
            if peer is None or peer.ended:
                self._forget(cid, dst_id)
            else:
                _transmit(member, peer)
        for src_id in list(self._in.get(cid, ())):
            peer = self._members.get(src_id)
            if peer is None or peer.ended:
                self._forget(src_id, cid)
            else:
                _transmit(peer, member)

    def drop(self, member: Any) -> None:
        """``member`` ended: forget its connections (they vanished with its port)."""
        cid = member.cid
        for dst_id in self._out.pop(cid, set()):
            self._in.get(dst_id, set()).discard(cid)
        for src_id in self._in.pop(cid, set()):
            self._out.get(src_id, set()).discard(cid)

    def _forget(self, src: int, dst: int) -> None:
        for table, key, value in ((self._out, src, dst), (self._in, dst, src)):
            ids = table.get(key)
            if ids is not None:
                ids.discard(value)
                if not ids:
                    del table[key]


def _transmit(src: Any, dst: Any) -> None:
    if src.audio is None or dst.audio is None:
        return  # connected by rewire() when the port comes
    src.audio.startTransmit(dst.audio)

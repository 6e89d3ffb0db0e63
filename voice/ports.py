"""Bridge ports: conference-bridge members with no SIP call (a browser agent, a supervisor).

A port is the project's own pjmedia port (``pjsua2.MediaTap``, native/pjsua2/tap/) created
with both rings: what the bridge delivers to it is what the port HEARS (the mix of every
member connected to it), what the application writes into it is what the port SAYS (members
connected from it hear that). So a port behaves like a call whose far end is the application::

    port = await engine.open_port(label="agent 7")          # an id in the call-id space
    await engine.bridge(caller, port)                       # caller <-> browser
    await engine.connect(caller, supervisor)                # one way: the supervisor listens
    audio = engine.port_audio(port)                         # PortAudio: 20 ms frames both ways
    await engine.record(port, "agent-leg.wav")              # what the port says (the browser)
    await engine.close_port(port)

Its id is never reused and is accepted wherever a call's is for media: bridge/unbridge,
connect/disconnect, play/stop_playback (the port hears the prompt), record/stop_recording and
pause/resume_recording (what the port says, as a call's recording is what the call says),
open_tap. Call control (answer, hangup, transfer, DTMF) refuses it. A port has no SIP events;
a playback's ``PlaybackDone`` goes to ``Engine.events`` with the port's id as ``call``.

Threads: ``Ports`` and ``BridgePort`` live on the engine thread (voice/core.py calls them);
``PortAudio`` and ``PortPump`` on the event loop. A port's audio reaches the loop like a
tap's (voice/tap.py): its stream hands each 20 ms chunk to one native hub per engine, and the
pump takes every port's chunk of a bridge tick with one binding call, so there is no asyncio
call per frame. A PortAudio with a ``sink`` (voice/rtc_bridge.py) gets each frame through a
plain function call from that pass; without one, frames queue (bounded) for ``async for``.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pjsua2 as pj

from .audio import Pcm
from .bridge import Bridges
from .exceptions import CallGone, EngineError
from .tap import HubPump, Tap, TapFrame, _frame, split_frames
from .text import clean

log = logging.getLogger("voice.engine")

PORT_FRAME_MS = 20  # the bridge's ptime: one frame per tick
MAX_PORTS = 1024


class BridgePort:
    """One port on the bridge (engine thread). Has the fields voice/media.py and voice/bridge.py
    use on a call: a port is a member whose ``audio`` is its own MediaTap."""

    def __init__(self, cid: int, label: str, tap: Any) -> None:
        self.cid = cid
        self.label = label
        self.created = time.monotonic()
        self.audio: Any = tap  # pj.MediaTap: the bridge port itself
        self.tap = tap
        self.media_started = True  # it has audio from the start (play and record accept it)
        self.ended = False
        self.recording_paused = False
        self.players: dict[int, Any] = {}
        self.recorders: dict[str, Any] = {}
        self.taps: dict[int, Any] = {}
        self.tap_modes: dict[int, tuple[bool, bool]] = {}
        self.port: Any = None  # its recording port (what the port says), made by the first record()
        self.port_recording = ""
        self.port_tap = 0
        self.port_speaks = False


class Ports:
    """The engine's bridge ports and the one-way connections between members (engine thread)."""

    def __init__(self, ports: dict[int, BridgePort], members: collections.ChainMap[int, Any],
                 ids: itertools.count[int], bridges: Bridges, media: Any, clock_rate: int) -> None:
        self.ports = ports
        self.members = members  # calls and ports by engine id
        self._ids = ids  # the engine's call ids: a port's id is never a call's, nor reused
        self._bridges = bridges
        self._media = media  # voice.media.CallMedia
        self._rate = clock_rate

    def member(self, cid: int) -> Any:
        """The live call or port ``cid``; CallGone if it has ended (or never existed)."""
        m = self.members.get(cid)
        if m is None or m.ended:
            raise CallGone(f"call or port {cid} has ended")
        return m

    def open(self, label: str, buffer_ms: int) -> tuple[int, Any]:
        """A new port; its id and its MediaTapStream (the loop side's handle on its rings)."""
        if not isinstance(label, str) or len(label) > 200:
            raise EngineError("a port's label is a string of at most 200 characters")
        if not 40 <= buffer_ms <= 10_000:
            raise EngineError(f"buffer_ms must be 40..10000, not {buffer_ms}")
        if len(self.ports) >= MAX_PORTS:
            raise EngineError(f"at most {MAX_PORTS} bridge ports")
        tap = pj.MediaTap()
        tap.createTap(self._rate, PORT_FRAME_MS, buffer_ms)
        cid = next(self._ids)
        self.ports[cid] = BridgePort(cid, clean(label, 200), tap)
        log.info("bridge port opened", extra={"call": cid, "label": clean(label, 80)})
        return cid, tap.getStream()

    def close(self, cid: int) -> bool:
        """Take the port off the bridge (its recordings are final); False if it was closed already."""
        port = self.ports.pop(cid, None)
        if port is None:
            return False
        self._release(port)
        log.info("bridge port closed", extra={"call": cid})
        return True

    def close_all(self) -> None:
        """Engine shutdown: every port leaves the bridge before libDestroy."""
        for cid in list(self.ports):
            self.close(cid)

    def _release(self, port: BridgePort) -> None:
        port.ended = True
        tap = port.tap
        self._media.release(port)  # its connections, players, recordings and taps
        tap.close()  # off the bridge now; its stream reports the end to the loop
        port.tap = None

    def connect(self, src: int, dst: int) -> None:
        self._bridges.connect(self.member(src), self.member(dst))

    def disconnect(self, src: int, dst: int) -> bool:
        a, b = self.members.get(src), self.members.get(dst)
        if a is None or b is None or a.ended or b.ended:
            return False  # an ended member's connections went with it
        return self._bridges.disconnect(a, b)

    def hears(self, dst: int) -> tuple[int, ...]:
        """Ids of the members ``dst`` hears (what is connected to it), sorted."""
        return tuple(sorted(self._bridges.hears(self.member(dst).cid)))


# -- the event loop's side --------------------------------------------------------------------------
class PortAudio(Tap):
    """What a bridge port hears and says, on the event loop. Made by ``Engine.port_audio``.

    Hearing: ``async for frame in audio`` (``TapFrame`` s of 20 ms, int16 at ``rate``), or give
    it a ``sink``: a function called with each frame as the pump takes it (one pass per bridge
    tick for every port), instead of queueing it. Saying: ``write_nowait(pcm)`` queues int16 PCM
    into the port's bounded speak ring (the oldest unplayed audio is dropped when it is full,
    and a ring that runs dry plays silence: both counted in ``stats()``); ``speak_buffered()``
    is what waits there. ``close()`` closes the port. Reading ends when the port is closed.
    """

    def __init__(self, port: int, stream: Any, max_pending_s: float,
                 closer: Callable[[int], Awaitable[bool]]) -> None:
        super().__init__(port, port, stream, PORT_FRAME_MS, max_pending_s, closer, True)
        self.port = port
        self.sink: Callable[[TapFrame], None] | None = None
        self.frame_samples = self.chunk_samples

    def speak_buffered(self) -> int:
        """Samples written and not yet played."""
        return int(self._stream.speakBuffered())

    def write_frame(self, pcm: Pcm) -> int:
        """``write_nowait`` of int16 samples already contiguous (no conversion)."""
        return max(0, int(self._stream.write(pcm)))


class PortPump(HubPump):
    """The engine's pump for port audio: each pass hands every port its frames."""

    def add_port(self, audio: PortAudio) -> PortAudio:
        return self.add(audio)  # type: ignore[return-value]

    def _take(self, rows: np.ndarray, audio: Pcm) -> None:
        ports = self._taps
        for key, at, n, pos, t_ns, ended in rows.tolist():
            port = ports.get(key)
            if port is None:
                continue
            try:
                if ended:
                    del ports[key]
                    port._end()
                    continue
                sink = port.sink  # type: ignore[attr-defined]
                frames = ([_frame((audio[at : at + n], port.rate, pos, t_ns * 1e-9))] if n == port.chunk_samples
                          else split_frames(audio, at, n, port.chunk_samples, port.rate, pos, t_ns * 1e-9))
                for frame in frames:
                    if sink is not None:
                        sink(frame)
                    else:
                        port._frames.put(frame)
            except Exception:  # never let one port stop the others
                log.exception("delivering audio of port %s failed", key)

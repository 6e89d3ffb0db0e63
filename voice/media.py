"""A call's media objects on the engine thread: prompt players, recordings, taps, bridges.

"A call" here is any member of the conference bridge: a SIP call, or a bridge port
(voice/ports.py), whose ``audio`` is its own MediaTap and whose far end is the application.

Everything here runs on the engine thread (voice/engine.py). A call's audio port on the
conference bridge can come and go during the call: a re-INVITE or UPDATE that changes the
stream (hold with ``a=inactive``, resume, a new codec) replaces it, and the bridge drops every
connection of the old port. ``rewire`` connects players, the recording port and the taps to the
new port after each media change, so a hold and resume never silences a prompt or a recording,
and reconnects the call's bridges to other calls (voice/bridge.py).
A player that nothing clocks (while the call has no port) never reaches its end, and pjmedia's
end-of-file event can be lost under load: each playback also has a deadline (its length plus
``EOF_SLACK_S``) after which it is finished anyway, and ``stop_playback`` ends one at once
(barge-in): whichever comes first reports it, so each playback gets exactly one PlaybackDone.
A looping playback (hold music) has no deadline and ignores its end of file (every pass has
one): only ``stop_playback`` ends it, or the call's end (then without a PlaybackDone).

Recording pauses (sensitive input): the call's own port (a ``MediaTap``) records silence while
its native pause flag is set, frame for frame, while a tap reading the same port still gets the
caller's audio; a further recording (an ``AudioMediaRecorder``, e.g. a voicemail) is muted at
its bridge input (pjsua2's ``adjustRxLevel(0)``: the bridge sends it zeros, still every tick).
Both keep real time, so a pause is a stretch of zeros in the file. Taps are never paused.
"""

from __future__ import annotations

import heapq
import logging
import queue
import time
import wave
from collections.abc import Callable, Mapping
from typing import Any

import pjsua2 as pj

from .bridge import Bridges
from .exceptions import EngineError
from .pj_objects import Call, Hooks, Player
from .ports import BridgePort

log = logging.getLogger("voice.engine")

Member = Call | BridgePort  # what media can be attached to
TAP_FRAME_MS = 20  # the conference bridge's ptime (pjsua's default audioFramePtime)
EOF_SLACK_S = 1.5


class CallMedia:
    """Players, recorders and taps of every call (engine thread only)."""

    def __init__(self, hooks: Hooks, clock_rate: int, retire: Callable[[Any], None],
                 playback_done: Callable[[int, int, bool], None], bridges: Bridges) -> None:
        self._hooks = hooks
        self.bridges = bridges
        self.clock_rate = clock_rate
        self._retire = retire  # objects to drop after the current callback returns
        self._playback_done = playback_done
        self._next_playback = 1
        self._next_tap = 1
        self._deadlines: list[tuple[float, int, int, Member]] = []  # (when, call id, playback, call)
        self.eofs: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()  # from pjmedia's thread

    # -- media changes ------------------------------------------------------------------------
    def rewire(self, call: Member) -> None:
        """Connect everything of ``call`` to its (new) audio port; connecting twice is a no-op."""
        a = call.audio
        if a is None:
            return
        for player in call.players.values():
            player.startTransmit(a)
        if call.port is not None:
            a.startTransmit(call.port)
            if call.port_speaks:
                call.port.startTransmit(a)
        for rec in call.recorders.values():
            a.startTransmit(rec)
        for tap_id, tap in call.taps.items():
            listen, speak = call.tap_modes.get(tap_id, (True, True))
            if listen:
                a.startTransmit(tap)
            if speak:
                tap.startTransmit(a)
        self.bridges.rewire(call)

    def release(self, call: Member) -> tuple[str, ...]:
        """The call ended: retire its objects (dropping a recorder closes its WAV); its recordings."""
        paths = ((call.port_recording,) if call.port_recording else ()) + tuple(call.recorders)
        self.bridges.drop(call)  # its port leaves the bridge with every connection; the peers go on
        for player in call.players.values():
            self._retire(player)
        if call.port is not None:  # (it records and may feed a tap)
            self._retire(call.port)
            call.port = None
        for obj in (*call.recorders.values(), *call.taps.values()):  # a dropped MediaTap leaves the bridge
            self._retire(obj)
        call.players.clear()
        call.recorders.clear()
        call.taps.clear()
        call.tap_modes.clear()
        call.audio = None
        return paths

    # -- playbacks ------------------------------------------------------------------------------
    def play(self, call: Member, path: str, loop: bool = False, start_s: float = 0.0) -> int:
        if not call.media_started:
            raise EngineError(f"call {call.cid} has no audio yet")
        playback = self._next_playback
        self._next_playback += 1
        player = Player(self._hooks, call.cid, playback, loop)
        player.createPlayer(path, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        rate = player.getPortInfo().format.clockRate  # the file's own rate
        total = player.getInfo().sizeSamples
        skip = min(int(max(start_s, 0.0) * rate), max(total - 1, 0))
        if skip:
            player.setPos(skip)  # (resuming hold music where an announcement interrupted it)
        if call.audio is not None:
            player.startTransmit(call.audio)
        call.players[playback] = player
        if loop:
            return playback  # no deadline: it plays until stop_playback or the call's end
        seconds = (total - skip) / rate
        deadline = time.monotonic() + seconds + EOF_SLACK_S
        heapq.heappush(self._deadlines, (deadline, call.cid, playback, call))
        return playback

    def finish_ended(self, calls: Mapping[int, Any]) -> None:
        """Playbacks whose end pjmedia reported (its event thread queued them)."""
        while True:
            try:
                cid, playback = self.eofs.get_nowait()
            except queue.Empty:
                return
            self._done(calls.get(cid), playback)

    def finish_overdue(self, now: float) -> None:
        """Playbacks past their deadline: nothing clocked them, or their end event was lost."""
        while self._deadlines and self._deadlines[0][0] <= now:
            _, cid, playback, call = heapq.heappop(self._deadlines)
            if playback in call.players and not call.ended:
                log.debug("playback finished by its deadline", extra={"call": cid, "playback": playback})
                self._done(call, playback)

    def position(self, call: Member, playback: int) -> float | None:
        """Seconds into the file a playback has reached (within the pass, when it loops); None if it ended."""
        player = call.players.get(playback)
        if player is None:
            return None
        return float(player.getPos()) / player.getPortInfo().format.clockRate

    def stop_playback(self, call: Member, playback: int) -> bool:
        """Stop a playback now (barge-in); False if it had already ended (its PlaybackDone is
        out or on its way). Otherwise its PlaybackDone (``stopped=True``) follows."""
        player = call.players.get(playback)
        if player is None:
            return False
        if call.audio is not None:
            try:
                player.stopTransmit(call.audio)  # silent from this tick on
            except pj.Error:
                pass  # the port left the bridge already (a media change): dropping it suffices
        self._done(call, playback, stopped=True)
        return True

    def _done(self, call: Member | None, playback: int, stopped: bool = False) -> None:
        player = call.players.pop(playback, None) if call is not None else None
        if call is not None and player is not None:
            self._retire(player)
            self._playback_done(call.cid, playback, stopped)

    # -- recordings -------------------------------------------------------------------------------
    def record(self, call: Member, path: str) -> None:
        if not call.media_started:
            raise EngineError(f"call {call.cid} has no audio yet")
        if call.port is None:  # the call's own port records it; a tap may read it later
            port = pj.MediaTap()
            port.createPort(self.clock_rate, TAP_FRAME_MS)
            if call.recording_paused:
                port.pauseRecording(True)
            call.port = port
            if call.audio is not None:
                call.audio.startTransmit(port)
        if path == call.port_recording or path in call.recorders:
            raise EngineError(f"call {call.cid} already records into {path}")
        if not call.port_recording:
            call.port.startRecording(path)  # (the port's pause flag, if set, applies to it)
            call.port_recording = path
            return
        rec = pj.AudioMediaRecorder()  # a second recording of the same call
        rec.createRecorder(path)
        if call.recording_paused:
            rec.adjustRxLevel(0.0)
        if call.audio is not None:
            call.audio.startTransmit(rec)
        call.recorders[path] = rec

    def stop_recording(self, call: Member, path: str) -> float:
        """Close the recording into ``path`` now (its WAV is final when this returns); its seconds."""
        if path == call.port_recording:
            call.port.stopRecording()  # the port stays: taps may read it
            call.port_recording = ""
        else:
            rec = call.recorders.pop(path, None)
            if rec is None:
                raise EngineError(f"call {call.cid} has no recording {path}")
            if call.audio is not None:
                try:
                    call.audio.stopTransmit(rec)
                except pj.Error:
                    pass
            del rec  # the last reference: its destructor writes the WAV header's sizes now
        return _wav_seconds(path)

    def set_recording_paused(self, call: Member, paused: bool) -> bool:
        """Pause (record silence) or resume every recording of ``call``; False if already so."""
        if call.recording_paused == paused:
            return False
        call.recording_paused = paused
        if call.port is not None:
            call.port.pauseRecording(paused)
        for rec in call.recorders.values():
            rec.adjustRxLevel(0.0 if paused else 1.0)  # pjsua2's name for the bridge's level into it
        return True

    # -- taps -------------------------------------------------------------------------------------
    def open_tap(self, call: Member, buffer_ms: int, listen: bool, speak: bool) -> tuple[int, Any]:
        if not call.media_started:
            raise EngineError(f"call {call.cid} has no audio yet")
        tap_id = self._next_tap
        self._next_tap += 1
        if listen and call.port is not None and not call.port_tap:
            # The recording port already hears the call: read its frames (no new bridge port).
            stream = call.port.openStream(buffer_ms)
            if speak and call.audio is not None:
                call.port.startTransmit(call.audio)
            call.port_tap, call.port_speaks = tap_id, speak
            return tap_id, stream
        tap = pj.MediaTap()  # the project's own port: native/pjsua2/tap/media_tap.hpp
        tap.createTap(self.clock_rate, TAP_FRAME_MS, buffer_ms)
        call.taps[tap_id] = tap
        call.tap_modes[tap_id] = (listen, speak)
        self.rewire(call)
        return tap_id, tap.getStream()

    def close_tap(self, calls: Mapping[int, Any], tap_id: int) -> bool:
        for call in calls.values():
            if call.port_tap == tap_id:  # the recording goes on
                if call.port_speaks and call.audio is not None:
                    call.port.stopTransmit(call.audio)
                call.port.closeStream()
                call.port_tap, call.port_speaks = 0, False
                return True
            tap = call.taps.pop(tap_id, None)
            if tap is not None:
                call.tap_modes.pop(tap_id, None)
                tap.close()  # leaves the bridge now; the pump then reports the end
                return True
        return False


def _wav_seconds(path: str) -> float:
    try:
        with wave.open(path, "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, EOFError, wave.Error) as exc:
        raise EngineError(f"recording {path} is unreadable: {exc}") from None

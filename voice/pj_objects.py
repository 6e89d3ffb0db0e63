"""pjsua2 subclasses whose callbacks turn pjsua2 state into frozen events.

Every object here lives on the engine thread (see voice/engine.py). A callback never touches
application state: it reads what it needs from pjsua2 and hands an event to ``sink``. An
exception escaping a pjsua2 director callback would abort the process, so each one is guarded.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from .events import IncomingCall

if TYPE_CHECKING:
    from .engine import _EngineCore

log = logging.getLogger("voice.engine")


def guarded(fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any) -> None:
        try:
            fn(self, *args)
        except Exception:
            log.exception("callback %s failed", fn.__qualname__)

    return wrapper


def configure_media(med: Any, clock_rate: int) -> None:
    """Media settings of a telephony server: one clock rate for bridge and (null) sound device,
    mono, no VAD, no echo canceller. Shared with the bench's bare-engine floor so both match."""
    med.clockRate = clock_rate
    med.sndClockRate = clock_rate
    med.channelCount = 1
    med.noVad = True
    med.ecTailLen = 0
    med.quality = 4


class PjLogWriter(pj.LogWriter):
    """Routes pjsip's log lines into Python logging (called from any pjsip thread)."""

    _LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}

    @guarded
    def write(self, entry: Any) -> None:
        # One line per event: pjsip appends whole packets to some messages (e.g. a parse error).
        lines = entry.msg.strip().splitlines() or [""]
        msg = lines[0][:500] + (f" [+{len(lines) - 1} lines]" if len(lines) > 1 else "")
        logging.getLogger("voice.pjsip").log(self._LEVELS.get(entry.level, logging.DEBUG), "%s", msg)


class Account(pj.Account):
    def __init__(self, core: _EngineCore) -> None:
        super().__init__()
        self._core = core

    @guarded
    def onIncomingCall(self, prm: Any) -> None:
        call = Call(self, prm.callId, self._core)
        if self._core.stopping:
            op = pj.CallOpParam()
            op.statusCode = 503
            op.reason = "Service Unavailable (shutting down)"
            call.hangup(op)
            return
        ci = call.getInfo()
        self._core.calls[prm.callId] = call
        self._core.post(
            IncomingCall(
                call=prm.callId,
                sip_call_id=ci.callIdString,
                caller=ci.remoteUri,
                callee=ci.localUri,
                remote_address=str(prm.rdata.srcAddress),
            )
        )


class Call(pj.Call):
    def __init__(self, acc: Account, call_id: int, core: _EngineCore) -> None:
        super().__init__(acc, call_id)
        self._core = core
        self.handle = call_id
        self.audio: Any = None  # pj.AudioMedia once media is active
        self.codec = ""
        self.confirmed = False
        self.ended = False
        self.local_hangup = False
        self.players: dict[int, Player] = {}
        self.recorders: dict[str, Any] = {}  # path -> pj.AudioMediaRecorder (recordings after the first)
        self.taps: dict[int, Any] = {}  # tap id -> pj.MediaTap of its own
        # The call's own port (pj.MediaTap): it records the call, and the first listening tap
        # reads the same frames from it instead of adding a port to the bridge.
        self.port: Any = None
        self.port_recording = ""  # its recording's path
        self.port_tap = 0  # the tap reading it (0: none)
        self.port_speaks = False  # ...which is also connected to the call's ear

    @guarded
    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not self.confirmed:
            self.confirmed = True
            self._core.on_call_confirmed(self)
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self._core.on_call_disconnected(self, ci.lastStatusCode, ci.lastReason)

    @guarded
    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                first = self.audio is None
                self.audio = self.getAudioMedia(mi.index)
                if first:
                    try:
                        self.codec = self.getStreamInfo(mi.index).codecName
                    except pj.Error:
                        self.codec = ""
                    self._core.on_media_ready(self)
                return


class Player(pj.AudioMediaPlayer):
    def __init__(self, core: _EngineCore, call: int, playback: int) -> None:
        super().__init__()
        self._core = core
        self.call = call
        self.playback = playback

    @guarded
    def onEof2(self) -> None:
        # Runs on pjmedia's event thread: hand the engine thread plain ids, never this object
        # (it must neither be touched nor freed here; the engine thread retires it).
        self._core.on_player_eof(self.call, self.playback)

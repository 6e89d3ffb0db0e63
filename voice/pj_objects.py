"""pjsua2 subclasses whose callbacks turn pjsua2 state into frozen events.

Every object here lives on the engine thread (see voice/engine.py). A callback never touches
application state: it reads what it needs from pjsua2 and hands it to its ``Hooks`` (the
engine core, which this module does not import). An exception escaping a pjsua2 director
callback would abort the process, so each one is guarded.

Lifetime: a ``Call`` is registered with its hooks before anything else happens in
``onIncomingCall``, so no failure can drop it inside the callback (its destructor would hang
the call up under pjsua's feet). Its engine id (``cid``) is never reused; ``handle`` is
pjsua's call id, which is.

A call the engine places (voice/outbound.py) is made with ``handle`` ``PJSUA_INVALID_ID`` and
registered before ``makeCall``; pjsua reports its CALLING state from inside ``makeCall``, before
pjsua2 knows the call's id, so ``onCallState`` ignores what comes before the id is set (and
voice/outbound.py checks the call's state once ``makeCall`` returns).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import pjsua2 as pj

from .liveness import CallLiveness

log = logging.getLogger("voice.engine")


class Hooks(Protocol):
    stopping: bool

    def new_call(self, call: Call, prm: Any) -> None: ...
    def on_call_confirmed(self, call: Call) -> None: ...
    def on_call_progress(self, call: Call, code: int) -> None: ...
    def on_call_disconnected(self, call: Call, code: int, reason: str) -> None: ...
    def on_media_state(self, call: Call) -> None: ...
    def on_refer(self, call: Call, target: str) -> None: ...
    def on_dtmf(self, call: Call, digit: str, method: int) -> None: ...
    def on_transfer_status(self, call: Call, code: int, reason: str, final: bool) -> bool: ...
    def on_player_eof(self, call: int, playback: int) -> None: ...


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


class Account(pj.Account):
    def __init__(self, hooks: Hooks) -> None:
        super().__init__()
        self._hooks = hooks

    @guarded
    def onIncomingCall(self, prm: Any) -> None:
        call = Call(self, prm.callId, self._hooks)
        self._hooks.new_call(call, prm)  # registers it first: see the module docstring


class Call(pj.Call):
    def __init__(self, acc: Account, handle: int, hooks: Hooks) -> None:
        super().__init__(acc, handle)
        self._hooks = hooks
        self.cid = 0  # the engine's id, set by the engine when it registers the call
        self.handle = handle
        self.created = time.monotonic()
        self.liveness = CallLiveness(started=self.created)  # voice/liveness.py decides when it must end
        self.sip_call_id = ""  # raw, for the SIP guard's per-source count
        self.outbound = False  # placed by the engine (Engine.dial): the guard never counted it
        self.progress = 0  # the last provisional status reported (CallProgress) of an outbound call
        self.bridges: set[int] = set()  # engine ids of the calls this one is bridged with (voice/bridge.py)
        self.audio: Any = None  # pj.AudioMedia while the call has an audio port on the bridge
        self.media_index = -1
        self.codec = ""
        self.media_started = False  # two-way audio was reached once (the IVR runs)
        self.held = False
        self.confirmed = False
        self.ended = False
        self.local_hangup = False
        self.ended_by = ""  # set when the engine ends the call itself (liveness)
        self.end_reason = ""
        self.refers = 0
        self.hold_changes = 0
        self.telephone_event = True  # the far end's SDP offers telephone-event (set at media start)
        self.transferring = False  # a REFER we sent awaits its outcome
        self.bad_keys = 0  # DTMF keys ignored (not 0-9 * # A-D)
        self.recording_paused = False  # the call's recordings record silence (Engine.pause_recording)
        self.players: dict[int, Player] = {}
        self.recorders: dict[str, Any] = {}  # path -> pj.AudioMediaRecorder (recordings after the first)
        self.taps: dict[int, Any] = {}  # tap id -> pj.MediaTap of its own
        self.tap_modes: dict[int, tuple[bool, bool]] = {}  # tap id -> (listen, speak)
        # The call's own port (pj.MediaTap): it records the call, and the first listening tap
        # reads the same frames from it instead of adding a port to the bridge.
        self.port: Any = None
        self.port_recording = ""  # its recording's path
        self.port_tap = 0  # the tap reading it (0: none)
        self.port_speaks = False  # ...which is also connected to the call's ear

    @guarded
    def onCallState(self, prm: Any) -> None:
        if self.getId() == pj.PJSUA_INVALID_ID:
            return  # inside makeCall (CALLING): voice/outbound.py reads the state after it returns
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_EARLY and self.outbound and not self.ended:
            code = int(ci.lastStatusCode)
            if 100 < code < 200 and code != self.progress:
                self.progress = code
                self._hooks.on_call_progress(self, code)
        elif ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not self.confirmed:
            self.confirmed = True
            self._hooks.on_call_confirmed(self)
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self._hooks.on_call_disconnected(self, ci.lastStatusCode, ci.lastReason)

    @guarded
    def onCallMediaState(self, prm: Any) -> None:
        self._hooks.on_media_state(self)

    @guarded
    def onCallTransferRequest(self, prm: Any) -> None:
        # pjsua would follow a REFER by default: dial whatever Refer-To names, as us. Refused:
        # transfers are the application's to start. (This is a REFER we receive; the ones we
        # send, Engine.transfer, report through onCallTransferStatus.)
        prm.statusCode = 403
        self._hooks.on_refer(self, prm.dstUri)

    @guarded
    def onCallTransferStatus(self, prm: Any) -> None:
        # The progress of a REFER we sent: its own response, then the far end's NOTIFYs.
        prm.cont = self._hooks.on_transfer_status(self, int(prm.statusCode), prm.reason, bool(prm.finalNotify))

    @guarded
    def onDtmfDigit(self, prm: Any) -> None:
        # Once per key (pjsua2 reports an RFC 4733 event's updates to onDtmfEvent only); SIP
        # INFO keys arrive here too, after native/pjsua2/guard normalized their body.
        self._hooks.on_dtmf(self, prm.digit, int(prm.method))

    @guarded
    def onCallReplaceRequest(self, prm: Any) -> None:
        # An INVITE with Replaces: would let anyone who learnt the dialog's tags take the call over.
        prm.statusCode = 403


class Player(pj.AudioMediaPlayer):
    def __init__(self, hooks: Hooks, call: int, playback: int, loop: bool = False) -> None:
        super().__init__()
        self._hooks = hooks
        self.call = call
        self.playback = playback
        self.loop = loop  # plays over and over: its end of file (every pass) is no news

    @guarded
    def onEof2(self) -> None:
        if self.loop:
            return
        # Runs on pjmedia's event thread: hand the engine thread plain ids, never this object
        # (it must neither be touched nor freed here; the engine thread retires it).
        self._hooks.on_player_eof(self.call, self.playback)

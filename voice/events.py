"""Typed events the SIP engine posts to the asyncio loop.

pjsua2 callbacks turn pjsua2 objects into these frozen dataclasses on the engine thread; the
application only ever sees these. ``call`` is the engine's id for the call: it is never reused
(pjsua's own call ids are, within seconds under load), so a command for an ended call fails
with ``CallGone`` instead of reaching a newer call. ``sip_call_id`` is the SIP Call-ID header.
Every string taken from the wire is cleaned (voice/text.py) before it is put in an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE. ``caller``/``callee`` are the raw From/To URIs; the identity fields are
    parsed (voice/identity.py): ``caller_number`` and ``caller_name`` from P-Asserted-Identity
    when the INVITE has one, else from From; ``dialled_number`` is the Request-URI's user part.
    Each is "" when absent."""

    call: int
    sip_call_id: str
    caller: str
    callee: str
    remote_address: str
    caller_number: str = ""
    caller_name: str = ""
    dialled_number: str = ""
    type: Literal["incoming_call"] = "incoming_call"


@dataclass(frozen=True, slots=True)
class CallProgress:
    """A provisional response to a call the engine placed (``Engine.dial``): 180 Ringing, 183
    Session Progress... once per change of status (a repeated 180 is not reported again)."""

    call: int
    status: int
    type: Literal["call_progress"] = "call_progress"


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call reached CONFIRMED: the ACK arrived (a call we answered), or the far end's 200 OK
    did and we sent the ACK (a call we placed)."""

    call: int
    type: Literal["call_answered"] = "call_answered"


@dataclass(frozen=True, slots=True)
class MediaReady:
    """The call's audio is flowing: prompts can be played and the caller recorded. For a call
    the engine placed, only after its answer (early media of a 183 is not reported)."""

    call: int
    codec: str
    # The far end's SDP offers RFC 4733 telephone-event: keys arrive as DtmfReceived without
    # in-band detection. False when it does not (or it could not be told): detect in-band.
    telephone_event: bool = True
    type: Literal["media_ready"] = "media_ready"


@dataclass(frozen=True, slots=True)
class CallHeld:
    """The far end put the call on hold (``held``: sendonly/inactive offer) or resumed it.

    While held, the call's prompts play on (unheard) and its recording records silence."""

    call: int
    held: bool
    type: Literal["call_held"] = "call_held"


@dataclass(frozen=True, slots=True)
class TransferRefused:
    """The far end sent a REFER (asked us to call ``target``); it was refused (403)."""

    call: int
    target: str
    type: Literal["transfer_refused"] = "transfer_refused"


@dataclass(frozen=True, slots=True)
class PlaybackDone:
    """A playback ended: exactly one per ``Engine.play``, whether it reached its end, was past
    its deadline, or was stopped (``stopped``: ``Engine.stop_playback``). None once the call
    has ended (CallEnded covers its playbacks)."""

    call: int
    playback: int
    stopped: bool = False
    type: Literal["playback_done"] = "playback_done"


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A key the caller pressed: ``digit`` is one of 0-9 * # A-D. ``source``: an RFC 4733
    telephone-event in the RTP stream, or a SIP INFO (application/dtmf-relay or
    application/dtmf). In-band tones are detected by the application from a tap."""

    call: int
    digit: str
    source: Literal["rfc4733", "info"] = "rfc4733"
    type: Literal["dtmf_received"] = "dtmf_received"


@dataclass(frozen=True, slots=True)
class TransferDone:
    """The outcome of ``Engine.transfer`` (a REFER we sent): ``ok`` when the far end reported
    a 2xx for the call it placed to the target (the final NOTIFY's sipfrag), else the REFER's
    own rejection or the target's failure. ``status`` is that SIP status code, ``reason`` its
    text. Once per transfer; none if the call ends first."""

    call: int
    ok: bool
    status: int
    reason: str = ""
    type: Literal["transfer_done"] = "transfer_done"


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over and every player and recorder of it is closed (recordings are final)."""

    call: int
    status_code: int
    reason: str
    local_hangup: bool
    recordings: tuple[str, ...]
    # Set when the engine itself ended the call (voice/liveness.py): no_media, rtp_timeout,
    # max_duration; ``reason`` then says why in words.
    ended_by: str = ""
    type: Literal["call_ended"] = "call_ended"


EngineEvent = (
    IncomingCall | CallProgress | CallAnswered | MediaReady | CallHeld | TransferRefused | PlaybackDone | DtmfReceived
    | TransferDone | CallEnded
)

"""Typed events the SIP engine posts to the asyncio loop.

pjsua2 callbacks turn pjsua2 objects into these frozen dataclasses on the engine thread; the
application only ever sees these. ``call`` is the engine's handle for the call (pjsua call id,
unique while the call lives); ``sip_call_id`` is the SIP Call-ID header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class IncomingCall:
    call: int
    sip_call_id: str
    caller: str
    callee: str
    remote_address: str
    type: Literal["incoming_call"] = "incoming_call"


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call reached CONFIRMED (the ACK arrived)."""

    call: int
    type: Literal["call_answered"] = "call_answered"


@dataclass(frozen=True, slots=True)
class MediaReady:
    """The call's audio is flowing: prompts can be played and the caller recorded."""

    call: int
    codec: str
    type: Literal["media_ready"] = "media_ready"


@dataclass(frozen=True, slots=True)
class PlaybackDone:
    call: int
    playback: int
    type: Literal["playback_done"] = "playback_done"


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over and every player and recorder of it is closed (recordings are final)."""

    call: int
    status_code: int
    reason: str
    local_hangup: bool
    recordings: tuple[str, ...]
    type: Literal["call_ended"] = "call_ended"


EngineEvent = IncomingCall | CallAnswered | MediaReady | PlaybackDone | CallEnded

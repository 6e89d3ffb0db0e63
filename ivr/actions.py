"""What the flow interpreter asks for: typed actions the driver (ivr/driver.py) carries out.

Ids (``prompt``, ``timer``, ``listen``, ``request``) are chosen by the interpreter, increasing per
call; the matching events carry them back. Actions of one ``receive`` are carried out in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Play:
    """Play TTS ``text`` (already templated) or the WAV ``audio``; then a ``PromptDone(prompt)``."""

    prompt: int
    node: str
    text: str | None = None
    audio: str | None = None          # an absolute path or one relative to the flow file
    language: str = "en"
    voice: str | None = None          # None: the driver's voice for ``language``
    rate: int | None = None
    barge_in: bool = False            # informational: the interpreter itself sends StopPlayback
    type: Literal["play"] = "play"


@dataclass(frozen=True, slots=True)
class StopPlayback:
    """Stop prompt ``prompt`` now (barge-in); its ``PromptDone`` still follows, and is ignored."""

    prompt: int
    type: Literal["stop_playback"] = "stop_playback"


@dataclass(frozen=True, slots=True)
class Beep:
    """A short tone (before a voicemail); then ``PromptDone(prompt)``."""

    prompt: int
    type: Literal["beep"] = "beep"


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: int
    deadline: float                   # UNIX seconds, on the clock of the events' ``now``
    type: Literal["start_timer"] = "start_timer"


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: int
    type: Literal["cancel_timer"] = "cancel_timer"


@dataclass(frozen=True, slots=True)
class Listen:
    """Start recognizing one of ``phrases`` on the caller's audio (grammar mode)."""

    listen: int
    phrases: tuple[str, ...]
    language: str = "en"
    type: Literal["listen"] = "listen"


@dataclass(frozen=True, slots=True)
class StopListening:
    listen: int
    type: Literal["stop_listening"] = "stop_listening"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    request: int
    method: Literal["GET", "POST"]
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    timeout: float = 3.0
    type: Literal["http_request"] = "http_request"


@dataclass(frozen=True, slots=True)
class RecordingPause:
    """Sensitive input starts: the call recording records silence until ``RecordingResume``."""

    type: Literal["recording_pause"] = "recording_pause"


@dataclass(frozen=True, slots=True)
class RecordingResume:
    type: Literal["recording_resume"] = "recording_resume"


@dataclass(frozen=True, slots=True)
class RecordVoicemail:
    """Record the caller for at most ``max_seconds`` ('#' or hanging up ends it); then VoicemailDone."""

    mailbox: str
    max_seconds: float
    node: str
    type: Literal["record_voicemail"] = "record_voicemail"


@dataclass(frozen=True, slots=True)
class StopVoicemail:
    type: Literal["stop_voicemail"] = "stop_voicemail"


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Hand the caller to the ACD; a ``QueueResult`` comes back."""

    queue: str
    skills: dict[str, int]
    priority: int
    variables: dict[str, Any]         # what the caller told the IVR (sensitive values masked)
    type: Literal["enqueue"] = "enqueue"


@dataclass(frozen=True, slots=True)
class Transfer:
    """Blind-transfer the caller to ``target`` (the driver checks the allow-list); TransferResult."""

    target: str
    type: Literal["transfer"] = "transfer"


@dataclass(frozen=True, slots=True)
class Trace:
    """One step of the call's IVR path, for the events table and the API.

    ``event`` is one of NODE (``node``), KEY (``digit``, ``source``; masked "*" when sensitive),
    SPEECH (``phrase``, ``confidence``), VAR (``name``, ``value``; masked when sensitive),
    HTTP (``url``, ``status``, ``error``), TIMEOUT, NOMATCH, ERROR (``message``).
    Also: QUEUE (``queue``, ``outcome``), TRANSFER (``target``, ``ok``, ``reason``), VOICEMAIL
    (``mailbox``, ``seconds``); NODE carries ``flow`` and ``from`` (the node that led here, None
    at a flow's start or the error target), TIMEOUT / NOMATCH ``attempt`` (and ``input``, masked
    when sensitive), ERROR ``version``.
    """

    event: str
    node: str
    data: dict[str, Any] = field(default_factory=dict)
    type: Literal["trace"] = "trace"


@dataclass(frozen=True, slots=True)
class EndCall:
    """The flow ended the call (a hangup node, or a node with nowhere to go)."""

    node: str
    reason: str = "flow_end"          # flow_end | no_input | error | no_agents | transfer_failed
    type: Literal["end_call"] = "end_call"


Action = (Play | StopPlayback | Beep | StartTimer | CancelTimer | Listen | StopListening | HttpRequest
          | RecordingPause | RecordingResume | RecordVoicemail | StopVoicemail | Enqueue | Transfer
          | Trace | EndCall)

"""What the flow interpreter hears: typed events, each with ``now`` (UNIX seconds, from the driver).

The interpreter (ivr/machine.py) never reads a clock: timers it asked for come back as
``TimerFired`` with the id it chose, results of its requests carry the request's id, and stale
ones (a prompt it already stopped, a timer it cancelled) are ignored by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DigitSource = Literal["rfc4733", "info", "inband", "test"]
QueueOutcome = Literal["no_agents", "answered", "abandoned", "overflowed", "called_back", "returned"]


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The call's audio is up. ``variables`` sets built-ins (caller_number, dialled_number ...)."""

    now: float
    variables: dict[str, Any] = field(default_factory=dict)
    type: Literal["call_started"] = "call_started"


@dataclass(frozen=True, slots=True)
class PromptDone:
    """A ``Play`` action's audio ended (played out, stopped, or it could not be rendered)."""

    now: float
    prompt: int
    type: Literal["prompt_done"] = "prompt_done"


@dataclass(frozen=True, slots=True)
class Digit:
    now: float
    digit: str                        # one of 0-9 * #
    source: DigitSource = "rfc4733"
    type: Literal["digit"] = "digit"


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The recognizer of ``listen`` heard the caller start speaking (for barge-in)."""

    now: float
    listen: int
    type: Literal["speech_started"] = "speech_started"


@dataclass(frozen=True, slots=True)
class SpeechResult:
    """The recognizer's final result for ``listen``: ``phrase`` None or "" means nothing matched."""

    now: float
    listen: int
    phrase: str | None
    confidence: float = 0.0
    type: Literal["speech_result"] = "speech_result"


@dataclass(frozen=True, slots=True)
class TimerFired:
    now: float
    timer: int
    type: Literal["timer_fired"] = "timer_fired"


@dataclass(frozen=True, slots=True)
class HttpResult:
    """The reply to ``HttpRequest`` ``request``: ``status`` None with ``error`` when none came."""

    now: float
    request: int
    status: int | None
    body: Any = None                  # the decoded JSON (None when not JSON)
    error: str = ""                   # "timeout", "connection refused", "not JSON" ...
    type: Literal["http_result"] = "http_result"


@dataclass(frozen=True, slots=True)
class QueueResult:
    """The ACD's answer to ``Enqueue``."""

    now: float
    outcome: QueueOutcome
    type: Literal["queue_result"] = "queue_result"


@dataclass(frozen=True, slots=True)
class VoicemailDone:
    """The voicemail recording of ``RecordVoicemail`` ended and is saved (``seconds`` long)."""

    now: float
    seconds: float
    type: Literal["voicemail_done"] = "voicemail_done"


@dataclass(frozen=True, slots=True)
class TransferResult:
    now: float
    ok: bool
    reason: str = ""
    type: Literal["transfer_result"] = "transfer_result"


@dataclass(frozen=True, slots=True)
class Hangup:
    """The caller hung up (or the call otherwise ended outside the flow)."""

    now: float
    type: Literal["hangup"] = "hangup"


Event = (CallStarted | PromptDone | Digit | SpeechStarted | SpeechResult | TimerFired | HttpResult
         | QueueResult | VoicemailDone | TransferResult | Hangup)

"""Errors raised by the voice layer.

VoiceError
├── EngineError          the SIP engine failed to start or a command failed on its thread
│   └── EngineStopped    a command was sent after the engine stopped (or while it stops)
├── CallGone             the call a command names has already ended
├── TapError             a live-audio tap was used in a way it cannot serve
├── RtcError             a WebRTC peer got unusable SDP (or none of its codecs), or is closed
└── AudioFormatError     a WAV file is truncated, not PCM, or otherwise unusable
"""


class VoiceError(Exception):
    """Base class of every error raised by voice/."""


class EngineError(VoiceError):
    """The SIP engine failed to start, or a command failed on the engine thread."""


class EngineStopped(EngineError):
    """The engine is stopped or stopping; the command was not run."""


class CallGone(VoiceError):
    """The call a command refers to has already ended."""


class TapError(VoiceError):
    """A live-audio tap cannot do this (e.g. writing into a tap opened with speak=False)."""


class AudioFormatError(VoiceError):
    """A WAV file cannot be used (truncated, not 16-bit PCM, wrong channel count...)."""


class RtcError(VoiceError):
    """A WebRTC peer cannot do this: unusable SDP, no common codec, a closed connection..."""

"""Errors raised by ivr/.

IvrError
├── FlowError        a flow file is unreadable or invalid (carries file and line)
└── PromptError      a prompt could not be rendered to audio
"""

from __future__ import annotations


class IvrError(Exception):
    """Base class of every error raised by ivr/."""


class FlowError(IvrError):
    """A flow file is unreadable or invalid. ``str()`` gives ``file:line: message``."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message


class PromptError(IvrError):
    """A prompt could not be rendered (text-to-speech engine missing or failed)."""

"""Errors raised by ivr/.

IvrError
├── FlowError        a flow file is unreadable or invalid (carries file, line and severity)
├── TemplateError    a ``{variable}`` template is malformed (carries the column)
├── ExpressionError  a branch condition is malformed (carries the column)
├── HoursError       a weekly business-hours table is malformed (carries the offending day key)
├── PromptError      a prompt could not be rendered to audio
├── CallGoneError    the call ended while the driver was acting on it (not a failure: the driver stops)
└── NotJsonReply     an `http` node's server answered with a body that is not JSON
"""

from __future__ import annotations

from typing import Literal

Severity = Literal["error", "warning"]


class IvrError(Exception):
    """Base class of every error raised by ivr/."""


class FlowError(IvrError):
    """A flow file is unreadable or invalid. ``str()`` gives ``file:line: message``.

    ``severity`` is "error" (the flow is refused) or "warning" (it loads, but something looks wrong);
    a warning prints as ``file:line: warning: message``, the form compilers and editors recognise.
    """

    def __init__(self, file: str, line: int, message: str, severity: Severity = "error") -> None:
        prefix = "warning: " if severity == "warning" else ""
        super().__init__(f"{file}:{line}: {prefix}{message}")
        self.file = file
        self.line = line
        self.message = message
        self.severity: Severity = severity


class _ColumnError(IvrError):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (column {column})")
        self.message = message
        self.column = column          # 1-based, in the template or expression text


class TemplateError(_ColumnError):
    """A template is malformed: an unclosed ``{``, a lone ``}``, or a placeholder that is not a name."""


class ExpressionError(_ColumnError):
    """A condition does not parse (or names a bad regular expression); ``column`` points at the problem."""


class HoursError(IvrError, ValueError):
    """A weekly schedule is malformed; ``key`` is the day key (e.g. "mon-fri") whose entry is wrong."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


class PromptError(IvrError):
    """A prompt could not be rendered (text-to-speech engine missing or failed)."""


class CallGoneError(IvrError):
    """The call ended (or the engine stopped) under the driver: what it was doing no longer matters."""


class NotJsonReply(IvrError):
    """An `http` node's reply had a body, and it is not JSON (``status``: the HTTP status)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}: the reply is not JSON")
        self.status = status

"""The state and the small helpers of the flow interpreter (ivr/machine.py), and typed values.

``MachineBase`` holds what one call's interpreter knows (variables with their types and which are
sensitive, the current node, what it has going: a prompt, a timer, a recognizer, a request, a
paused recording, a voicemail) and the helpers that start and stop those, each emitting its
action. It decides nothing about the flow: ivr/machine_input.py runs the input nodes, ivr/machine.py
everything else.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import actions as act
from . import events as ev
from .exceptions import IvrError
from .nodes import BUILTIN_VARIABLES, Flow, Node, Prompt, VarType
from .template import MASK, render

Action = act.Action
Event = ev.Event

MAX_STEPS = 1000          # node entries within one event before the flow counts as runaway
MAX_DEPTH = 16            # nested subflows
HTTP_MARGIN = 1.0         # the guard timer of an http node: its timeout plus this
VOICEMAIL_MARGIN = 5.0    # after StopVoicemail, how long to wait for VoicemailDone
APOLOGY = {"en": "Sorry, something went wrong.", "zh": "对不起，系统出了点问题。"}
_ZERO: dict[str, Any] = {"string": "", "number": 0, "boolean": False}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


class FlowRuntimeError(IvrError):
    """The flow cannot go on (runaway loop, missing subflow or node, a failing condition)."""


def convert(value: Any, vtype: VarType) -> Any:
    """``value`` as a ``vtype`` variable holds it; ValueError when it has no such reading."""
    if vtype == "string":
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return str(int(value))
        if isinstance(value, list | dict):
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return str(value)
    if vtype == "number":
        if isinstance(value, bool) or value is None:
            raise ValueError(f"{value!r} is not a number")
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return int(number) if number.is_integer() else number
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no)")


def dig(body: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(body, dict) and part in body:
            body = body[part]
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            raise KeyError(path)
    return body


@dataclass(slots=True)
class Frame:
    flow: Flow      # the calling flow
    node: str       # its subflow node


class MachineBase:
    """What one call's interpreter knows, and the helpers that start and stop what a node has going."""

    def __init__(self, flow: Flow, subflows: Mapping[str, Flow] | None = None, *, version: str = "") -> None:
        self.flow = flow
        self.subflows: Mapping[str, Flow] = subflows or {}
        self.version = version
        self.node: str | None = None
        self.finished = False
        self.finish_reason = ""
        self.variables: dict[str, Any] = {}
        self.path: list[act.Trace] = []
        self._types: dict[str, VarType] = dict(BUILTIN_VARIABLES)
        self._sensitive: set[str] = set()
        for name, vtype in BUILTIN_VARIABLES.items():
            self.variables[name] = _ZERO[vtype]
        self.variables["language"] = flow.language
        self._declare(flow)
        self._current = flow                 # the flow self.node belongs to
        self._here: Node | None = None
        self._stack: list[Frame] = []
        self._visits: dict[tuple[str, str], int] = {}
        self._ids = 0
        self._now = 0.0
        self._out: list[Action] = []
        self._pending: tuple[str, str | None] | None = None
        self._steps = 0
        self._started = False
        self._error = ""                     # "" | "apology" | "recovering"
        self._typeahead: list[tuple[str, str]] = []   # (digit, source) pressed into a play node
        # what the current node has going
        self._prompt: int | None = None
        self._queue: list[Prompt] = []
        self._timer: int | None = None
        self._listen: int | None = None
        self._request: int | None = None
        self._request_url = ""
        self._paused = False
        self._voicemail = False
        self._open = False
        self._failures = 0
        self._buffer = ""
        self._phase = ""

    def visible_variables(self) -> dict[str, Any]:
        """The variables with sensitive values masked, for events, the API and the agent's screen."""
        return {k: MASK if k in self._sensitive else v for k, v in self.variables.items()}

    @property
    def sensitive(self) -> frozenset[str]:
        return frozenset(self._sensitive)

    # -- helpers -----------------------------------------------------------------------------------
    def _go(self, target: str, src: str | None) -> None:
        self._pending = (target, src)

    def _end_call(self, reason: str) -> None:
        self._leave()
        self._emit(act.EndCall(node=self.node or "", reason=reason))
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        self.finished = True
        self.finish_reason = reason
        self._pending = None

    def _leave(self) -> None:
        """The current node is done: stop what it still has going."""
        self._stop_prompt()
        self._cancel_timer()
        self._stop_listen()
        if self._paused:
            self._paused = False
            self._emit(act.RecordingResume())
        self._open = False
        self._buffer = ""
        self._phase = ""
        self._request = None

    def _release(self, stop_prompt: bool) -> None:
        """The call ends or fails: release everything that is live (the driver does it safely)."""
        if stop_prompt:
            self._stop_prompt()
        self._prompt = None
        self._queue = []
        self._cancel_timer()
        self._stop_listen()
        if self._paused:
            self._paused = False
            self._emit(act.RecordingResume())
        if self._voicemail:
            self._voicemail = False
            self._emit(act.StopVoicemail())
        self._open = False
        self._buffer = ""
        self._phase = ""
        self._request = None

    def _play(self, prompt: Prompt, barge_in: bool = False) -> None:
        audio = prompt.audio
        if audio and not os.path.isabs(audio):
            base = self._current.base_dir or os.path.dirname(self._current.source)
            if base:
                audio = os.path.abspath(os.path.join(base, audio))
        self._prompt = self._id()
        self._emit(act.Play(
            self._prompt, self.node or "", text=render(prompt.say, self.variables) if prompt.say else None,
            audio=audio, language=prompt.language or str(self.variables["language"]),
            voice=prompt.voice or self._current.voice, rate=prompt.rate, barge_in=barge_in))

    def _stop_prompt(self) -> None:
        self._queue = []
        if self._prompt is not None:
            self._emit(act.StopPlayback(self._prompt))
            self._prompt = None

    def _start_timer(self, deadline: float) -> None:
        self._cancel_timer()
        self._timer = self._id()
        self._emit(act.StartTimer(self._timer, deadline))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._emit(act.CancelTimer(self._timer))
            self._timer = None

    def _stop_listen(self) -> None:
        if self._listen is not None:
            self._emit(act.StopListening(self._listen))
            self._listen = None

    def _declare(self, flow: Flow) -> None:
        for var in flow.variables.values():
            if var.name in self._types:
                continue
            self._types[var.name] = var.type
            try:
                self.variables[var.name] = _ZERO[var.type] if var.default is None else convert(var.default, var.type)
            except ValueError as exc:
                raise FlowRuntimeError(f"flow {flow.name!r}: variable {var.name!r}: default {exc}") from exc
            if var.sensitive:
                self._sensitive.add(var.name)

    def _assign(self, name: str, value: Any, sensitive: bool = False, trace: bool = True) -> bool:
        """Convert ``value`` to ``name``'s type and set it; a value that does not convert is traced."""
        try:
            typed = convert(value, self._types.get(name, "string"))
        except (TypeError, ValueError) as exc:
            self._trace("ERROR", message=f"variable {name!r} not set: {exc}", version=self.version)
            return False
        if sensitive:
            self._sensitive.add(name)
        if trace:
            self._set(name, typed)
        else:
            self.variables[name] = typed
        return True

    def _set(self, name: str, value: Any) -> None:
        self.variables[name] = value
        self._trace("VAR", name=name, value=MASK if name in self._sensitive else value)

    def _trace(self, event: str, **data: Any) -> None:
        step = act.Trace(event, self.node or "", data)
        self.path.append(step)
        self._out.append(step)

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _id(self) -> int:
        self._ids += 1
        return self._ids



"""The input nodes of the flow interpreter: menu (keys), collect (digits into a variable), speech.

All three share one shape: play the prompt(s), listen (keys; a recognizer for speech), time out,
and on a failure re-prompt until ``retry.retries`` is used up, then leave by ``no_match`` /
``no_input`` / ``fallback`` or hang up. See ivr/machine.py for the rules chosen.
"""

from __future__ import annotations

import re
from typing import Any

from . import actions as act
from . import events as ev
from .machine_base import MachineBase
from .nodes import CollectNode, MenuNode, Prompt, SpeechNode
from .template import MASK

InputNode = MenuNode | CollectNode | SpeechNode


class InputNodes(MachineBase):
    """Menu, collect and speech nodes (mixed into FlowMachine)."""

    def _enter_input(self, node: MenuNode | CollectNode | SpeechNode) -> None:
        self._failures = 0
        if isinstance(node, CollectNode) and (node.sensitive or node.variable in self._sensitive):
            self._sensitive.add(node.variable)
            self._paused = True
            self._emit(act.RecordingPause())
        if self._typeahead:
            digits, self._typeahead = self._typeahead, []
            self._open = True
            for digit, source in digits:
                if self._here is not node or not self._open or self.finished:
                    break
                self._input_digit(node, digit, source)
        else:
            self._attempt(node, [node.prompt])

    def _attempt(self, node: MenuNode | CollectNode | SpeechNode, prompts: list[Prompt]) -> None:
        self._queue = prompts
        self._open = False
        if isinstance(node, SpeechNode) and node.barge_in:
            self._start_listen(node)
        self._play_next(node)

    def _play_next(self, node: MenuNode | CollectNode | SpeechNode) -> None:
        if self._queue:
            self._play(self._queue.pop(0), node.barge_in)
            return
        self._open = True
        if isinstance(node, SpeechNode) and self._listen is None:
            self._start_listen(node)
        self._start_timer(self._now + node.retry.timeout)

    def _input_digit(self, node: MenuNode | CollectNode | SpeechNode, digit: str, source: str) -> None:
        if isinstance(node, CollectNode):
            self._collect_digit(node, digit, source)
            return
        self._trace("KEY", digit=digit, source=source)
        target = node.options.get(digit)
        if target is None:
            self._failure(node, "nomatch", input=digit)
            return
        if isinstance(node, SpeechNode) and node.variable:
            self._assign(node.variable, digit)
        self._assign("last_input", digit)
        self._leave()
        self._go(target, node.id)

    def _collect_digit(self, node: CollectNode, digit: str, source: str) -> None:
        secret = node.variable in self._sensitive
        self._trace("KEY", digit="*" if secret else digit, source=source)
        self._cancel_timer()
        if node.terminator and digit == node.terminator:
            self._collect_end(node)
            return
        self._buffer += digit
        if len(self._buffer) >= node.max_length:
            self._collect_end(node)
        else:
            self._start_timer(self._now + node.inter_digit_timeout)

    def _collect_end(self, node: CollectNode) -> None:
        value, self._buffer = self._buffer, ""
        secret = node.variable in self._sensitive
        if not node.min_length <= len(value) <= node.max_length or (
                node.pattern is not None and re.fullmatch(node.pattern, value) is None):
            self._failure(node, "nomatch", input=MASK if secret else value)
            return
        self._assign(node.variable, value)
        self._assign("last_input", MASK if secret else value)
        self._leave()
        self._go(node.next, node.id)

    def _speech(self, node: SpeechNode, e: ev.SpeechStarted | ev.SpeechResult) -> None:
        if self._prompt is not None:
            self._stop_prompt()
        self._open = True
        if isinstance(e, ev.SpeechStarted):
            self._start_timer(self._now + node.retry.timeout)
            return
        self._listen = None                   # a result is final: the recognizer is done
        phrase = " ".join(re.findall(r"[\w']+", (e.phrase or "").lower()))   # as ivr/flow.py writes phrases
        self._trace("SPEECH", phrase=phrase, confidence=e.confidence)
        target = node.phrases.get(phrase)
        if target is None or e.confidence < node.confidence:
            self._failure(node, "nomatch", input=phrase)
            return
        if node.variable:
            self._assign(node.variable, phrase)
        self._assign("last_input", phrase)
        self._leave()
        self._go(target, node.id)

    def _failure(self, node: MenuNode | CollectNode | SpeechNode, kind: str, **data: Any) -> None:
        self._cancel_timer()
        self._stop_listen()
        self._stop_prompt()
        self._buffer = ""
        self._open = False
        self._trace("TIMEOUT" if kind == "timeout" else "NOMATCH", attempt=self._failures + 1, **data)
        self._failures += 1
        retry = node.retry
        if self._failures <= retry.retries:
            extra = retry.timeout_prompt if kind == "timeout" else retry.invalid_prompt
            self._attempt(node, [p for p in (extra, node.prompt) if p is not None])
            return
        target = (retry.no_input if kind == "timeout" else retry.no_match) or retry.fallback
        if target:
            self._leave()
            self._go(target, node.id)
        else:
            self._end_call("no_input")

    def _start_listen(self, node: SpeechNode) -> None:
        self._stop_listen()
        self._listen = self._id()
        self._emit(act.Listen(self._listen, tuple(node.phrases), node.language or str(self.variables["language"])))


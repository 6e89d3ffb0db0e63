"""The sans-I/O flow interpreter: ``FlowMachine(flow).receive(event) -> list[Action]``.

No sockets, threads, clocks or randomness: time arrives inside events (``now``, UNIX seconds),
timers are ``StartTimer(deadline)`` / ``CancelTimer`` actions, and every effect leaves as an
action for the driver (ivr/driver.py) or the test harness (ivr/testing.py) to carry out. Each
prompt, timer, recognizer and HTTP request gets a fresh id; an event naming any other id (a
``PromptDone`` of a stopped prompt, a cancelled timer, an old request) is stale and ignored, and
so is a digit while nothing listens.

State for the API and the driver: ``node`` (current node id), ``finished`` / ``finish_reason``
("flow_end", "caller_hangup", "no_input", "error", "transfer", "queue", "no_agents",
"transfer_failed"), ``variables`` (typed values), ``visible_variables()`` (sensitive ones
"****"), ``path`` (every ``Trace`` so far: NODE, KEY, VAR ... see ivr/actions.py).

Errors: a flow that cannot go on (``IvrError``: a runaway loop of more than MAX_STEPS node entries
inside one event, a missing subflow or node, a failing condition) is handled inside ``receive``
like ``fail``: Trace ERROR, an apology, then ``on_error`` (else EndCall reason "error"); a second
failure before the flow is back on its feet ends the call. Anything else propagates: the driver
logs it with the call id and calls ``fail``.

The node kinds are split by responsibility: ivr/machine_base.py (state, variables and typed
values, starting and stopping prompts / timers / recognizers), ivr/machine_input.py (menu,
collect, speech), and this module (event dispatch, the path through nodes and subflows, the
other nodes, errors).

Decisions the node docs (ivr/nodes.py) leave open:

* Type-ahead: a key that barges into a ``play`` node's prompt skips to ``next`` and is kept: the
  next input node (menu, collect, speech) takes it as if pressed during its own prompt, and does
  not play that prompt. Entering any node that plays or waits for something else drops it.
* ``speech`` with ``barge_in`` listens from the start of its prompt; without it, once the prompt
  has ended. Speech starting (``SpeechStarted``) restarts the no-input timer.
* Retries: ``retries`` re-prompts (the invalid / timeout prompt, then the node's prompt) after the
  first attempt; one more failure leaves by ``no_match`` / ``no_input``, else ``fallback``, else
  ``EndCall(reason="no_input")``.
* Values are converted to the variable's declared type (number: int when integral, else float).
  A ``set`` whose value does not convert leaves the variable unchanged and traces an ERROR; the
  call goes on (a flow bug should not drop a caller). An ``http`` reply that lacks a mapped path
  or whose value does not convert takes the ``error`` branch; then no variable is set.
* Subflows share the caller's one namespace of variables (a subflow's declarations are added on
  entry when the name is new). An internal error goes to the innermost flow's ``on_error``.
* ``queue`` outcomes: ``no_agents`` -> ``no_agents`` node (else EndCall reason "no_agents");
  ``answered`` -> finished (reason "queue", the ACD owns the call); ``abandoned`` -> finished
  (reason "caller_hangup"); any other -> ``next`` (else EndCall).
* Sensitive values: a collect with ``sensitive`` (or into a variable declared sensitive) marks
  its variable sensitive for the rest of the call; ``last_input`` then holds "****". A ``set``
  whose template reads a sensitive variable makes its target sensitive too. Prompts are rendered
  with real values (the caller may hear them back); traces and ``visible_variables`` mask them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

from . import actions as act
from . import events as ev
from .exceptions import IvrError
from .expressions import compile_expr
from .hours import is_open as hours_open
from .machine_base import (
    APOLOGY,
    HTTP_MARGIN,
    MAX_DEPTH,
    MAX_STEPS,
    VOICEMAIL_MARGIN,
    Action,
    Event,
    FlowRuntimeError,
    Frame,
    convert,
    dig,
)
from .machine_input import InputNodes
from .nodes import (
    BranchNode,
    CollectNode,
    GotoNode,
    HangupNode,
    HttpNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    ReturnNode,
    SetNode,
    SpeechNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
)
from .template import format_value, render
from .template import names as template_names

__all__ = ["APOLOGY", "MAX_STEPS", "Action", "Event", "FlowMachine", "FlowRuntimeError", "convert"]

_LINGER = (BranchNode, SetNode, GotoNode, SubflowNode, ReturnNode, MenuNode, CollectNode, SpeechNode)


class FlowMachine(InputNodes):
    """One call's interpreter. Feed it events in order; carry out the actions it returns in order."""

    # -- public ------------------------------------------------------------------------------------
    def receive(self, event: Event) -> list[Action]:
        """Handle one event; returns the actions it causes (stale events cause none)."""
        if self.finished:
            return []
        self._out = []
        self._now = event.now
        self._steps = 0
        recovering = self._error == "recovering"
        try:
            self._dispatch(event)
            self._run()
        except IvrError as exc:
            self._fail(str(exc))
        if recovering and self._error == "recovering":
            self._error = ""
        return self._out

    def fail(self, now: float, message: str) -> list[Action]:
        """Carrying out an action (or the machine itself) failed: apologise, go to ``on_error``.

        A second failure while the first is being handled ends the call (reason "error").
        """
        if self.finished:
            return []
        self._out = []
        self._now = now
        self._steps = 0
        self._fail(message)
        return self._out

    # -- events ------------------------------------------------------------------------------------
    def _dispatch(self, e: Event) -> None:
        if isinstance(e, ev.Hangup):
            self._release(stop_prompt=False)
            self._finish("caller_hangup")
            return
        if isinstance(e, ev.CallStarted):
            if not self._started:
                self._started = True
                for name, value in e.variables.items():  # the call's built-ins: state, not steps of its path
                    self._assign(name, value, trace=False)
                self._go(self.flow.start, None)
            return
        if not self._started:
            return
        if self._error == "apology":
            if isinstance(e, ev.PromptDone) and e.prompt == self._prompt:
                self._prompt = None
                self._after_apology()
            return
        node = self._here
        if isinstance(e, ev.PromptDone):
            if e.prompt == self._prompt:
                self._prompt = None
                self._prompt_done(node)
        elif isinstance(e, ev.Digit):
            self._digit(node, e)
        elif isinstance(e, ev.TimerFired):
            if e.timer == self._timer:
                self._timer = None
                self._timer_fired(node)
        elif isinstance(e, ev.SpeechStarted | ev.SpeechResult):
            if e.listen == self._listen and isinstance(node, SpeechNode):
                self._speech(node, e)
        elif isinstance(e, ev.HttpResult):
            if e.request == self._request and isinstance(node, HttpNode):
                self._http_result(node, e)
        elif isinstance(e, ev.QueueResult):
            if self._phase == "queued" and isinstance(node, QueueNode):
                self._queue_result(node, e)
        elif isinstance(e, ev.VoicemailDone):
            if self._phase in ("recording", "stopping") and isinstance(node, VoicemailNode):
                self._voicemail_done(node, e.seconds)
        elif isinstance(e, ev.TransferResult):
            if self._phase == "transferring" and isinstance(node, TransferNode):
                self._transfer_result(node, e)
        else:
            raise TypeError(f"unknown event {e!r}")

    def _prompt_done(self, node: Node | None) -> None:
        if isinstance(node, MenuNode | CollectNode | SpeechNode):
            self._play_next(node)
        elif isinstance(node, PlayNode):
            self._next(node.next)
        elif isinstance(node, HangupNode):
            self._end_call("flow_end")
        elif isinstance(node, TransferNode):
            self._transfer(node)
        elif isinstance(node, VoicemailNode):
            if self._phase == "greeting" and node.beep:
                self._phase = "beep"
                self._prompt = self._id()
                self._emit(act.Beep(self._prompt))
            else:
                self._record(node)

    def _digit(self, node: Node | None, e: ev.Digit) -> None:
        if isinstance(node, PlayNode):
            if node.barge_in and self._prompt is not None:
                self._typeahead.append((e.digit, e.source))
                self._next(node.next)
        elif isinstance(node, MenuNode | CollectNode | SpeechNode):
            if self._prompt is not None:
                if not node.barge_in:
                    return
                self._stop_prompt()
                self._open = True
            if self._open:
                self._input_digit(node, e.digit, e.source)
        elif isinstance(node, VoicemailNode):
            if self._phase == "recording" and e.digit == "#":
                self._stop_voicemail(node)

    def _timer_fired(self, node: Node | None) -> None:
        if isinstance(node, CollectNode) and self._buffer:
            self._collect_end(node)
        elif isinstance(node, MenuNode | CollectNode | SpeechNode):
            self._failure(node, "timeout")
        elif isinstance(node, HttpNode):
            self._request = None
            self._trace("HTTP", url=self._request_url, status=None, error="no reply (guard timer)")
            self._leave()
            self._go(node.error, node.id)
        elif isinstance(node, VoicemailNode):
            if self._phase == "recording":
                self._stop_voicemail(node)
            else:
                self._trace("ERROR", message="the voicemail recording did not report its end")
                self._voicemail_done(node, node.max_length)

    # -- the flow's path -----------------------------------------------------------------------------
    def _run(self) -> None:
        while self._pending is not None and not self.finished:
            target, src = self._pending
            self._pending = None
            self._steps += 1
            if self._steps > MAX_STEPS:
                raise FlowRuntimeError(f"runaway flow: {MAX_STEPS} nodes entered without waiting for the caller "
                                       f"(last {target!r}); is there a loop with no input in it?")
            self._enter(target, src)

    def _enter(self, target: str, src: str | None) -> None:
        node = self._current.nodes.get(target)
        if node is None:
            raise FlowRuntimeError(f"flow {self._current.name!r} has no node {target!r}")
        self.node, self._here = target, node
        self._trace("NODE", flow=self._current.name, **{"from": src})
        if not isinstance(node, _LINGER):
            self._typeahead = []
        if isinstance(node, PlayNode):
            self._play(node.prompt, node.barge_in)
        elif isinstance(node, MenuNode | CollectNode | SpeechNode):
            self._enter_input(node)
        elif isinstance(node, BranchNode):
            self._go(self._branch(node), node.id)
        elif isinstance(node, HttpNode):
            self._http(node)
        elif isinstance(node, SetNode):
            for name, text in node.values.items():
                tainted = any(n in self._sensitive for n in template_names(text))
                self._assign(name, render(text, self.variables), sensitive=tainted)
            self._go(node.next, node.id)
        elif isinstance(node, GotoNode):
            key = (self._current.name, node.id)
            taken = self._visits.get(key, 0)
            if node.max_visits is None or taken < node.max_visits:
                self._visits[key] = taken + 1
                self._go(node.target, node.id)
            else:
                self._next(node.otherwise)
        elif isinstance(node, SubflowNode):
            self._subflow(node)
        elif isinstance(node, ReturnNode):
            self._end_of_flow()
        elif isinstance(node, QueueNode):
            self._phase = "queued"
            self._emit(act.Enqueue(node.queue, dict(node.skills), node.priority, self.visible_variables()))
        elif isinstance(node, VoicemailNode):
            if node.prompt is not None:
                self._phase = "greeting"
                self._play(node.prompt)
            else:
                self._phase = "greeting"
                self._prompt_done(node)
        elif isinstance(node, TransferNode | HangupNode):
            if node.prompt is not None:
                self._play(node.prompt)
            else:
                self._prompt_done(node)
        else:
            raise TypeError(f"unknown node {node!r}")

    def _next(self, target: str | None) -> None:
        """Leave the current node for ``target``; None: this flow ends here."""
        self._leave()
        if target:
            self._go(target, self.node)
        else:
            self._end_of_flow()

    def _end_of_flow(self) -> None:
        if not self._stack:
            self._end_call("flow_end")
            return
        frame = self._stack.pop()
        self._leave()
        self._current = frame.flow
        node = frame.flow.nodes[frame.node]
        self.node, self._here = frame.node, node
        self._next(getattr(node, "next", None))

    def _subflow(self, node: SubflowNode) -> None:
        sub = self.subflows.get(node.flow)
        if sub is None:
            raise FlowRuntimeError(f"node {node.id!r}: subflow {node.flow!r} is not available")
        if len(self._stack) >= MAX_DEPTH:
            raise FlowRuntimeError(f"node {node.id!r}: subflows nested more than {MAX_DEPTH} deep")
        self._stack.append(Frame(self._current, node.id))
        self._current = sub
        self._declare(sub)
        self._go(sub.start, None)

    # -- other nodes -------------------------------------------------------------------------------
    def _branch(self, node: BranchNode) -> str:
        for rule in node.rules:
            try:
                holds = compile_expr(rule.condition).evaluate(self.variables, self._is_open)
            except FlowRuntimeError:
                raise
            except Exception as exc:
                raise FlowRuntimeError(f"node {node.id!r}: condition {rule.condition!r} failed: {exc}") from exc
            if holds:
                return rule.next
        return node.otherwise

    def _is_open(self, name: str) -> bool:
        schedule = self._current.hours.get(name) or self.flow.hours.get(name)
        if schedule is None:
            raise FlowRuntimeError(f"no business hours named {name!r}")
        return hours_open(schedule, self._now)

    def _http(self, node: HttpNode) -> None:
        values = self.variables
        self._request = self._id()
        self._request_url = _render_url(node.url, values, self._sensitive)
        body = {k: render(v, values) for k, v in node.body.items()} if node.method == "POST" else None
        self._emit(act.HttpRequest(self._request, node.method, _render_url(node.url, values),
                                   {k: render(v, values) for k, v in node.headers.items()}, body, node.timeout))
        self._start_timer(self._now + node.timeout + HTTP_MARGIN)

    def _http_result(self, node: HttpNode, e: ev.HttpResult) -> None:
        self._request = None
        self._cancel_timer()
        error = e.error
        if not error and (e.status is None or not 200 <= e.status < 300):
            error = f"HTTP status {e.status}"
        found: dict[str, Any] = {}
        if not error and node.results:
            if e.body is None:
                error = "the reply is not JSON"
            for name, path in node.results.items():
                if error:
                    break
                try:
                    found[name] = convert(dig(e.body, path), self._types.get(name, "string"))
                except KeyError:
                    error = f"the reply has no {path!r}"
                except (TypeError, ValueError) as exc:
                    error = f"{path!r} for {name}: {exc}"
        self._trace("HTTP", url=self._request_url, status=e.status, error=error)
        self._leave()
        if error:
            self._go(node.error, node.id)
            return
        for name, value in found.items():
            self._set(name, value)
        self._go(node.next, node.id)

    def _queue_result(self, node: QueueNode, e: ev.QueueResult) -> None:
        self._trace("QUEUE", queue=node.queue, outcome=e.outcome)
        self._leave()
        if e.outcome == "no_agents":
            if node.no_agents:
                self._go(node.no_agents, node.id)
            else:
                self._end_call("no_agents")
        elif e.outcome == "answered":
            self._finish("queue")
        elif e.outcome == "abandoned":
            self._finish("caller_hangup")
        else:
            self._next(node.next)

    def _record(self, node: VoicemailNode) -> None:
        self._phase = "recording"
        self._voicemail = True
        self._emit(act.RecordVoicemail(node.mailbox, node.max_length, node.id))
        self._start_timer(self._now + node.max_length)

    def _stop_voicemail(self, node: VoicemailNode) -> None:
        self._phase = "stopping"
        self._voicemail = False
        self._emit(act.StopVoicemail())
        self._start_timer(self._now + VOICEMAIL_MARGIN)

    def _voicemail_done(self, node: VoicemailNode, seconds: float) -> None:
        if self._voicemail:
            self._voicemail = False
            self._emit(act.StopVoicemail())
        self._trace("VOICEMAIL", mailbox=node.mailbox, seconds=seconds)
        self._next(node.next)

    def _transfer(self, node: TransferNode) -> None:
        self._phase = "transferring"
        self._emit(act.Transfer(render(node.target, self.variables)))

    def _transfer_result(self, node: TransferNode, e: ev.TransferResult) -> None:
        self._trace("TRANSFER", target=render(node.target, self.variables, self._sensitive), ok=e.ok,
                    reason=e.reason)
        self._leave()
        if e.ok:
            self._finish("transfer")
        elif node.error:
            self._go(node.error, node.id)
        else:
            self._end_call("transfer_failed")

    # -- errors ------------------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        if self.finished:
            return
        self._trace("ERROR", message=message, version=self.version)
        self._pending = None
        self._release(stop_prompt=True)
        if self._error or self.node is None:
            self._emit(act.EndCall(node=self.node or "", reason="error"))
            self._finish("error")
            return
        self._error = "apology"
        language = str(self.variables.get("language") or self.flow.language)
        self._prompt = self._id()
        self._emit(act.Play(self._prompt, self.node, text=APOLOGY.get(language, APOLOGY["en"]),
                            language=language, voice=self._current.voice))

    def _after_apology(self) -> None:
        self._error = "recovering"
        while not self._current.on_error and self._stack:
            self._current = self._stack.pop().flow
        if self._current.on_error:
            self._go(self._current.on_error, None)
        else:
            self._emit(act.EndCall(node=self.node or "", reason="error"))
            self._finish("error")



_BASE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _render_url(url: str, values: Mapping[str, Any], masked: Collection[str] = ()) -> str:
    """An `http` node's URL: values percent-encoded (a caller number's "+", a "/" or "?" typed or
    said cannot change the request), except a variable the URL starts with, which is its base
    (``{server_url}/demo/crm``, ``{crm}/customers/{caller_number}``)."""
    base = ""
    m = _BASE.match(url)
    if m:
        base = render(m.group(0), values, masked)
        url = url[m.end():]
    quoted = {k: quote(format_value(v), safe="") for k, v in values.items()}
    return base + render(url, quoted, masked)

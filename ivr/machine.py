"""The sans-I/O flow interpreter: ``machine.receive(event) -> list[Action]``.

No sockets, threads or clocks: time arrives inside events (``now``, seconds), and every effect
leaves as an action for the driver to carry out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .flow import Flow, HangupNode, PlayNode

# -- events (inputs) -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStarted:
    now: float
    type: Literal["call_started"] = "call_started"


@dataclass(frozen=True, slots=True)
class PromptDone:
    now: float
    type: Literal["prompt_done"] = "prompt_done"


@dataclass(frozen=True, slots=True)
class Hangup:
    """The caller hung up (or the call otherwise ended outside the flow)."""

    now: float
    type: Literal["hangup"] = "hangup"


Event = CallStarted | PromptDone | Hangup

# -- actions (outputs) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    text: str
    node: str
    type: Literal["play"] = "play"


@dataclass(frozen=True, slots=True)
class EndCall:
    """The flow ended the call (a hangup node, or a node with nowhere to go)."""

    node: str
    type: Literal["end_call"] = "end_call"


Action = Play | EndCall


class FlowMachine:
    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.node: str | None = None
        self.finished = False
        self.finish_reason: Literal["", "flow_end", "caller_hangup"] = ""

    def receive(self, event: Event) -> list[Action]:
        if self.finished:
            return []
        if isinstance(event, Hangup):
            self._finish("caller_hangup")
            return []
        if isinstance(event, CallStarted):
            if self.node is not None:
                return []
            return self._enter(self.flow.start)
        if isinstance(event, PromptDone):
            node = self.flow.nodes.get(self.node or "")
            if isinstance(node, PlayNode):
                return self._enter(node.next) if node.next else self._end(node.id)
            return []
        raise TypeError(f"unknown event {event!r}")

    def _enter(self, node_id: str) -> list[Action]:
        self.node = node_id
        node = self.flow.nodes[node_id]
        if isinstance(node, PlayNode):
            return [Play(text=node.say, node=node.id)]
        if isinstance(node, HangupNode):
            return self._end(node.id)
        raise TypeError(f"unknown node {node!r}")

    def _end(self, node_id: str) -> list[Action]:
        self._finish("flow_end")
        return [EndCall(node=node_id)]

    def _finish(self, reason: Literal["flow_end", "caller_hangup"]) -> None:
        self.finished = True
        self.finish_reason = reason

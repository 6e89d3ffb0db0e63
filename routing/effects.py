"""What the router asks its driver to do: typed effects with a ``type`` discriminator.

Every router method returns a list of these, in the order they must be carried out. The driver
(callcenter/acd.py) rings agents, stops ringing, bridges calls, takes contacts out of its own
books and writes ``Log`` effects into the events table, exactly as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .model import AgentState, Outcome


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring ``agent`` for ``contact``; ``accepted``, ``rejected`` or the deadline answer it."""

    reservation: str
    contact: str
    agent: str
    queue: str
    deadline: float                     # epoch seconds: the router times the offer out itself then
    callback: bool = False              # the customer is not on the line: dial them once the agent answers
    type: Literal["offer"] = "offer"


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Stop ringing: ``reason`` is timeout, taken (ring-all: another agent answered), abandoned
    (the caller hung up), overflowed, logged_out."""

    reservation: str
    contact: str
    agent: str
    reason: str
    type: Literal["cancel_offer"] = "cancel_offer"


@dataclass(frozen=True, slots=True)
class Connect:
    """The agent accepted: bridge caller and agent (a callback: dial the customer now)."""

    reservation: str
    contact: str
    agent: str
    queue: str
    callback: bool = False
    type: Literal["connect"] = "connect"


@dataclass(frozen=True, slots=True)
class Exit:
    """The contact leaves the ACD, exactly once: ``outcome`` answered, abandoned, overflowed or
    called_back. ``target`` is the overflow target when overflowed ("" : back to the flow)."""

    contact: str
    queue: str
    outcome: Outcome
    reason: str = ""                    # e.g. max_wait, full, no_agents, callback_unreachable
    target: str = ""
    agent: str = ""
    type: Literal["exit"] = "exit"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """An agent's state changed (every change, with its time)."""

    agent: str
    state: AgentState
    previous: AgentState
    reason: str                         # the break reason code ("" otherwise)
    at: float
    type: Literal["state_changed"] = "state_changed"


@dataclass(frozen=True, slots=True)
class Log:
    """One row for the events table (queue_log style; the names are in docs/events.md)."""

    event: str                          # ENTERQUEUE, OFFER, RINGNOANSWER, CONNECT, ABANDON, ...
    at: float
    contact: str = ""                   # the call id
    queue: str = ""
    agent: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    type: Literal["log"] = "log"


Effect = Offer | CancelOffer | Connect | Exit | StateChanged | Log

"""What the ACD routes: agents, queues and waiting contacts, as plain frozen data.

The router (routing/router.py) keeps the live state (who is available, who waits where); these
are the specifications it is given and the contacts handed to it. Times are seconds since the
epoch (``time.time()``), passed in by the caller: the core never reads a clock, and a callback
persisted across a restart keeps its place in line because its ``entered_at`` is absolute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

AgentState = Literal["logged_out", "available", "reserved", "on_call", "wrap_up", "break"]
AGENT_STATES: tuple[AgentState, ...] = ("logged_out", "available", "reserved", "on_call", "wrap_up", "break")

Strategy = Literal["ring-all", "longest-idle", "fewest-calls", "round-robin", "linear", "random",
                   "weighted-random", "best-proficiency"]
STRATEGIES: tuple[Strategy, ...] = ("ring-all", "longest-idle", "fewest-calls", "round-robin", "linear", "random",
                                    "weighted-random", "best-proficiency")

# How a contact leaves the ACD: exactly one of these, exactly once (routing.effects.Exit).
Outcome = Literal["answered", "abandoned", "overflowed", "called_back"]

MIN_PROFICIENCY, MAX_PROFICIENCY = 1, 5


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An agent as configured (callcenter's ``agents`` table)."""

    id: str
    name: str = ""
    team: str = ""
    uri: str = ""                       # how to reach them: a SIP URI (softphone); WebRTC with the agent desk
    skills: Mapping[str, int] = field(default_factory=dict)   # skill -> proficiency 1..5
    wrap_up_s: float = 10.0             # after each call, unless the queue says otherwise
    max_offers: int = 1                 # offers ringing at once (see docs/routing.md); never more than one call
    weight: int = 1                     # weighted-random's weight (>= 1)
    order: int = 0                      # linear's order (lower first; ties by id)
    user: str = ""                      # the API / page user who is this agent ("" : none)


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """After ``after_s`` of waiting, a contact's requirements change (Amazon Connect's routing
    steps, TaskRouter's targets with timeouts). Steps apply in order of ``after_s``."""

    after_s: float
    skills: Mapping[str, int] | None = None     # the required skills from then on (None: unchanged)
    add_queues: tuple[str, ...] = ()            # agents who serve these queues become candidates too


Overflow = str  # "" (back to the flow: outcome overflowed) | "queue:NAME" | "voicemail:MAILBOX" | "callback"


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue as configured (callcenter's ``queues`` table)."""

    name: str
    skills: Mapping[str, int] = field(default_factory=dict)   # required skill -> minimum proficiency
    strategy: Strategy = "longest-idle"
    priority: int = 0                   # an agent who serves several queues takes from the highest first
    service_level_s: float = 20.0       # "answered within T" for the service level
    max_wait_s: float = 0.0             # 0: no limit; then -> overflow
    max_length: int = 0                 # waiting contacts; 0: no limit; a full queue -> overflow at once
    ring_timeout_s: float = 15.0        # an offer not accepted by then moves on to the next agent
    max_no_answer: int = 3              # consecutive no-answers that put the agent on break (0: never)
    no_answer_reason: str = "no-answer"  # ...with this break reason
    wrap_up_s: float | None = None      # None: each agent's own
    hold_music: str = ""                # a WAV file or a folder of them ("": Debian's asterisk-moh-opsound-wav)
    announce_every_s: float = 30.0      # position / estimated-wait announcements (0: none)
    announce_position: bool = True
    announce_wait: bool = True
    callback: bool = True               # offer "press 1 to be called back"
    overflow: Overflow = ""
    escalation: tuple[EscalationStep, ...] = ()
    aging_per_min: float = 1.0          # priority points a contact gains per minute of waiting
    vip_boost: int = 10                 # priority points per VIP tier of the customer
    preferred_agent_s: float = 0.0      # keep the caller for their last agent this long, if that agent is logged in
    short_abandon_s: float = 5.0        # abandons sooner than this are left out of the service level


@dataclass(frozen=True, slots=True)
class Contact:
    """A caller (or a callback request) handed to the ACD."""

    id: str                             # the call id (calls.id); a callback keeps its call's id
    queue: str
    entered_at: float                   # epoch seconds: the place in line
    skills: Mapping[str, int] = field(default_factory=dict)   # the flow's extra requirements (max with the queue's)
    priority: int = 0                   # the flow's 0..100
    vip_tier: int = 0                   # the customer's (0: none)
    preferred_agent: str = ""           # the customer's last agent
    caller: str = ""                    # the caller's number (for the agent's screen and callbacks)
    callback: bool = False              # a callback request: the customer is not on the line
    attempts: int = 0                   # callback attempts made so far
    not_before: float = 0.0             # a callback retried after a failed attempt waits until then

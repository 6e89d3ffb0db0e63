"""The router's live record of each agent: state, offers, counters, and the checks on specs.

``AgentRec`` is mutable and private to the router (routing/router.py changes it and emits the
effects). It answers the questions dispatch asks many times per second: does the agent meet a
set of required skills (``meets``), may they take one more offer now (``has_capacity``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import InvalidSpec
from .model import MAX_PROFICIENCY, MIN_PROFICIENCY, AgentSpec, AgentState

# States in which the agent counts as staffed (logged in and not on a break).
STAFFED: frozenset[AgentState] = frozenset({"available", "reserved", "on_call", "wrap_up"})


def meets(skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
    """Whether ``skills`` reach every minimum in ``required``."""
    for name, minimum in required.items():
        if skills.get(name, 0) < minimum:
            return False
    return True


def check_skills(skills: Mapping[str, int], what: str) -> None:
    for name, level in skills.items():
        if not isinstance(name, str) or not name:
            raise InvalidSpec(f"{what}: a skill name must be a non-empty string, not {name!r}")
        if isinstance(level, bool) or not isinstance(level, int) or not MIN_PROFICIENCY <= level <= MAX_PROFICIENCY:
            raise InvalidSpec(f"{what}: skill {name!r} proficiency must be an integer "
                              f"{MIN_PROFICIENCY}..{MAX_PROFICIENCY}, not {level!r}")


def check_agent(spec: AgentSpec) -> None:
    """Raise InvalidSpec for an agent spec the router cannot work with."""
    if not isinstance(spec.id, str) or not spec.id:
        raise InvalidSpec(f"agent id must be a non-empty string, not {spec.id!r}")
    check_skills(spec.skills, f"agent {spec.id!r}")
    if spec.wrap_up_s < 0:
        raise InvalidSpec(f"agent {spec.id!r}: wrap_up_s must be >= 0, not {spec.wrap_up_s!r}")
    if spec.max_offers < 1:
        raise InvalidSpec(f"agent {spec.id!r}: max_offers must be >= 1, not {spec.max_offers!r}")
    if spec.weight < 1:
        raise InvalidSpec(f"agent {spec.id!r}: weight must be >= 1, not {spec.weight!r}")


@dataclass(slots=True, eq=False)
class AgentRec:
    """One configured agent's live state (see docs/routing.md, "Agent states")."""

    spec: AgentSpec
    state: AgentState = "logged_out"
    reason: str = ""                    # the break reason
    since: float = 0.0                  # when ``state`` began
    pending: str = ""                   # "" | "break" | "logged_out" | "removed": applies when the call ends
    pending_reason: str = ""
    call: str = ""                      # the contact on the call / in wrap-up
    call_queue: str = ""
    offers: dict[str, str] = field(default_factory=dict)   # reservation -> contact, while ringing
    idle_since: float = 0.0             # the last call's end, or the login
    calls: int = 0                      # calls answered since login
    no_answer: int = 0                  # consecutive offers not answered
    wrap_until: float | None = None
    queues: frozenset[str] = frozenset()   # queues whose minimums the agent meets
    free: bool = False                  # listed in the free indexes
    free_epoch: int = 0                 # bumped each time the agent is (re)listed: older index entries are stale

    @property
    def id(self) -> str:
        return self.spec.id

    def has_capacity(self) -> bool:
        """May take one more offer now: available, or ringing below max_offers; no call, nothing pending."""
        if self.pending:
            return False
        if self.state == "available":
            return True
        return self.state == "reserved" and len(self.offers) < self.spec.max_offers

    def status(self) -> dict[str, Any]:
        """The AcdControl.agent_status dict (plus ``pending_reason``, ``offers``, ``calls``)."""
        contact = self.call or next(iter(self.offers.values()), "")
        return {"id": self.id, "state": self.state, "reason": self.reason, "since": self.since,
                "pending": "logged_out" if self.pending == "removed" else self.pending,
                "pending_reason": self.pending_reason, "contact": contact,
                "offers": sorted(set(self.offers.values())), "calls": self.calls}

"""The ACD core: agents, skills, queues, strategies and reservations (pure standard library).

``Router`` (routing/router.py) is the whole API: configuration, agent states, contacts, offer
answers and time go in, effects (routing/effects.py) come out. ``routing.testing`` drives it on a
scripted clock. The semantics are in docs/routing.md.
"""

from .effects import CancelOffer, Connect, Effect, Exit, Log, Offer, StateChanged
from .exceptions import (
    DuplicateContact,
    InvalidSpec,
    InvalidTransition,
    RoutingError,
    UnknownAgent,
    UnknownContact,
    UnknownQueue,
    UnknownReservation,
)
from .model import AgentSpec, AgentState, Contact, EscalationStep, Outcome, QueueSpec, Strategy
from .router import Router

__all__ = [
    "AgentSpec", "AgentState", "CancelOffer", "Connect", "Contact", "DuplicateContact", "Effect", "EscalationStep",
    "Exit", "InvalidSpec", "InvalidTransition", "Log", "Offer", "Outcome", "QueueSpec", "Router", "RoutingError",
    "StateChanged", "Strategy", "UnknownAgent", "UnknownContact", "UnknownQueue", "UnknownReservation",
]

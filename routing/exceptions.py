"""Errors raised by routing/.

RoutingError            base class of every error raised by routing/
├── UnknownAgent        no agent with that id is configured (also a LookupError)
├── UnknownQueue        no queue with that name is configured (also a LookupError)
├── UnknownContact      no contact with that id is in the ACD (also a LookupError)
├── UnknownReservation  no offer with that id is outstanding (answered, canceled or timed out already)
├── DuplicateContact    a contact with that id is already in the ACD
├── InvalidTransition   the operation does not apply in the current state (e.g. pausing a logged-out agent)
└── InvalidSpec         an AgentSpec / QueueSpec / Contact with a bad value (also a ValueError)
    └── ConfigInvalid   an agent or queue configuration dict (routing/config.py) is invalid; ``problems``
                        lists every bad field as "field: message"

A method that raises has changed nothing.
"""


class RoutingError(Exception):
    """Base class of every error raised by routing/."""


class UnknownAgent(RoutingError, LookupError):
    """No agent with that id is configured."""


class UnknownQueue(RoutingError, LookupError):
    """No queue with that name is configured."""


class UnknownContact(RoutingError, LookupError):
    """No contact with that id is in the ACD."""


class UnknownReservation(RoutingError, LookupError):
    """No offer with that id is outstanding."""


class DuplicateContact(RoutingError):
    """A contact with that id is already in the ACD."""


class InvalidTransition(RoutingError):
    """The operation does not apply to the agent or contact in its current state."""


class InvalidSpec(RoutingError, ValueError):
    """A specification or contact with a bad value; the message names the field."""


class ConfigInvalid(InvalidSpec):
    """An agent or queue configuration is invalid: ``problems`` holds one "field: message" per bad field."""

    def __init__(self, what: str, problems: list[str]) -> None:
        super().__init__(f"{what}: " + "; ".join(problems))
        self.what = what
        self.problems = problems

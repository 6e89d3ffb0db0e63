"""Errors raised by routing/.

RoutingError     base class (the package's concrete errors arrive with its features)
"""


class RoutingError(Exception):
    """Base class of every error raised by routing/."""

"""Errors raised by callcenter/.

CallCenterError
├── ConfigError      the config file, a flag or the data directory is unusable (exit code 2)
├── StartupError     a resource the server needs cannot be had: a port in use, a flow that fails (exit 2)
├── AuthError        a bearer token is missing/unknown (401) or its role may not do this (403)
│   └── TooManySignIns   too many failed sign-ins from this user/address (429; callcenter/auth.py)
├── UnknownAgent     no agent with that id is configured (404)
└── UnknownQueue     no queue with that name is configured (404)
"""


class CallCenterError(Exception):
    """Base class of every error raised by callcenter/."""


class ConfigError(CallCenterError):
    """The configuration or the data directory is unusable."""


class StartupError(CallCenterError):
    """The server cannot start: a port in use, a broken flow, a failed engine start."""


class AuthError(CallCenterError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UnknownAgent(CallCenterError):
    """No agent with that id is configured."""


class UnknownQueue(CallCenterError):
    """No queue with that name is configured."""

"""What the HTTP API and the CLI may ask of the live ACD (implemented by callcenter/acd.py).

The API module for agents and queues (callcenter/acd_api.py) and the stats route talk to the
running ACD only through this protocol, so they can be read without the call path.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

StateAction = Literal["login", "logout", "pause", "resume"]


class AcdControl(Protocol):
    async def reload_agent(self, agent_id: str) -> None:
        """The agent's row was added, changed or deleted: apply it (a deleted agent is logged out)."""

    async def reload_queue(self, name: str) -> None:
        """The queue's row was added or changed: apply it to the live router."""

    async def set_state(self, agent_id: str, action: StateAction, reason: str = "", *, by: str = "") -> dict[str, Any]:
        """Log in, log out, pause (with a reason code) or resume an agent; returns ``agent_status``.

        Raises ``callcenter.exceptions.UnknownAgent`` for an agent that is not configured. A
        pause or logout while the agent is on a call takes effect when the call (and its wrap-up)
        ends; the returned status says so (``pending``)."""

    def agent_status(self, agent_id: str) -> dict[str, Any]:
        """{"id", "state", "reason", "since" (epoch s), "pending" (state after the call or ""),
        "contact" (the call id being offered or handled, or "")}; UnknownAgent if not configured."""

    def snapshot(self) -> dict[str, Any]:
        """Live figures: {"at": epoch s, "queues": {name: {"waiting": int, "longest_wait_s": float,
        "agents": {state: count}}}, "agents": {id: agent_status}}."""

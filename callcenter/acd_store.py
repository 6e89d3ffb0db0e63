"""What the ACD reads and writes in the database, over the repositories of callcenter/storage/acd.py.

A failure to write is logged with the call or agent id and never stops a call: the ACD's live
state is in memory (the router); the rows are what a restart restores (requested agent states,
callback requests with their place in line).
"""

from __future__ import annotations

import logging
from typing import Any

from routing.model import AgentSpec, Contact, QueueSpec

from .storage.acd import AgentRepo, CallbackRepo, CustomerRepo, QueueRepo
from .storage.db import Database

log = logging.getLogger("callcenter.acd")


class AcdStore:
    def __init__(self, db: Database) -> None:
        self.agent_rows = AgentRepo(db)
        self.queue_rows = QueueRepo(db)
        self.customers = CustomerRepo(db)
        self.callbacks = CallbackRepo(db)

    async def queues(self) -> list[QueueSpec]:
        return [r.spec for r in await self.queue_rows.all()]

    async def queue(self, name: str) -> QueueSpec | None:
        r = await self.queue_rows.get(name)
        return r.spec if r else None

    async def agents(self) -> list[tuple[AgentSpec, str, str]]:
        """(spec, requested state, break reason) of every agent."""
        return [(r.spec, r.state, r.reason) for r in await self.agent_rows.all()]

    async def agent(self, agent_id: str) -> tuple[AgentSpec, str, str] | None:
        r = await self.agent_rows.get(agent_id)
        return (r.spec, r.state, r.reason) if r else None

    async def set_requested_state(self, agent_id: str, state: str, reason: str) -> None:
        try:
            await self.agent_rows.set_state(agent_id, state, reason)  # type: ignore[arg-type]
        except Exception as exc:
            log.error("could not store the agent's state", extra={"agent": agent_id, "error": repr(exc)})

    async def customer(self, phone: str) -> dict[str, Any] | None:
        try:
            return await self.customers.get(phone)
        except Exception as exc:
            log.error("customer lookup failed", extra={"caller": phone, "error": repr(exc)})
            return None

    async def set_last_agent(self, phone: str, agent: str) -> None:
        try:
            await self.customers.set_last_agent(phone, agent)
        except Exception as exc:
            log.error("could not store the customer's last agent", extra={"caller": phone, "error": repr(exc)})

    async def open_callbacks(self) -> list[tuple[Contact, str]]:
        return [(r.contact(), r.number) for r in await self.callbacks.open()]

    async def add_callback(self, contact: Contact, number: str) -> None:
        try:
            await self.callbacks.add(contact, number)
        except Exception as exc:
            log.error("could not store the callback request", extra={"call_id": contact.id, "error": repr(exc)})

    async def callback_dialling(self, call_id: str, *, agent: str, result_call: str, attempts: int) -> None:
        await self._guard(self.callbacks.dialling(call_id, agent=agent, result_call=result_call, attempts=attempts),
                          call_id)

    async def callback_retry(self, call_id: str, *, attempts: int, not_before: float) -> None:
        await self._guard(self.callbacks.retry(call_id, attempts=attempts, not_before=not_before), call_id)

    async def callback_done(self, call_id: str) -> None:
        await self._guard(self.callbacks.done(call_id), call_id)

    async def callback_failed(self, call_id: str, *, attempts: int) -> None:
        await self._guard(self.callbacks.failed(call_id, attempts=attempts), call_id)

    @staticmethod
    async def _guard(write: Any, call_id: str) -> None:
        try:
            await write
        except Exception as exc:
            log.error("could not update the callback request", extra={"call_id": call_id, "error": repr(exc)})

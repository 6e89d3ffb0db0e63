"""Callback requests for the ACD: "press 1 to be called back", kept in line and across restarts.

A caller who asks (or whose queue overflows to ``callback``) leaves the line but not the queue:
the request is a row in ``callbacks`` with the caller's original ``entered_at``, and the
router keeps the contact in its place. When an agent answers the offer for it, the customer is
dialled through the trunk (callcenter/trunk.py: an allowed number, or nothing is dialled); the
customer answering -> both are bridged and the contact ends ``called_back``; a customer who
cannot be reached -> the request waits ``callback_retry_s`` and is offered again, up to
``callback_attempts`` calls. The call to the customer gets its own row in ``calls``
(``direction = 'callback'``) with both legs' recordings.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ivr import events as ivr_ev
from routing import effects as fx
from routing.model import Contact
from voice.exceptions import CallGone, EngineStopped

from .agent_leg import LegEnd, OutboundLeg
from .storage.db import iso_utc

if TYPE_CHECKING:
    from .acd import AcdService, AgentLeg, _Held

log = logging.getLogger("callcenter.acd")


@dataclass
class _Request:
    contact: Contact
    number: str
    agent_leg: AgentLeg | None = None
    customer_leg: OutboundLeg | None = None
    call_id: str = ""                   # the outbound call's own row
    answered: bool = False
    completed: bool = False
    agent_end: LegEnd | None = None
    customer_end: LegEnd | None = None


class Callbacks:
    def __init__(self, acd: AcdService) -> None:
        self.acd = acd
        self.requests: dict[str, _Request] = {}   # contact id -> request

    def __contains__(self, contact_id: str) -> bool:
        return contact_id in self.requests

    def restore(self, contact: Contact, number: str) -> None:
        """A request read back at start-up: in line again, in its old place."""
        self.requests[contact.id] = _Request(contact, number)
        self.acd._apply(self.acd.router.enqueue(contact, self.acd.clock()))

    async def request(self, held: _Held) -> None:
        """The waiting caller pressed 1: store the request, keep the place, let the flow say goodbye."""
        acd = self.acd
        if held.state != "waiting" or held.ref.call_id not in acd._held:
            return
        contact = held.contact
        await acd.store.add_callback(contact, held.ref.caller_number)
        held.state = "callback"
        self.requests[contact.id] = _Request(contact, held.ref.caller_number)
        acd._apply(acd.router.request_callback(contact.id, acd.clock()))
        acd._publish("callback_requested", call_id=contact.id, queue=held.queue, number=held.ref.caller_number)
        if held.qc is not None:
            await held.qc.stop()
            held.qc.close()
        acd._held.pop(contact.id, None)
        held.ref.post(ivr_ev.QueueResult(now=acd.clock(), outcome="called_back"))

    async def overflow(self, held: _Held) -> None:
        """The queue's max wait sent the caller to ``callback``: a new request with the same place in line."""
        acd = self.acd
        contact = replace(held.contact, callback=True)
        self.requests[contact.id] = _Request(contact, held.ref.caller_number)
        await acd.store.add_callback(contact, held.ref.caller_number)
        acd._apply(acd.router.enqueue(contact, acd.clock()))
        held.ref.post(ivr_ev.QueueResult(now=acd.clock(), outcome="called_back"))

    def exited(self, e: fx.Exit) -> bool:
        """A callback contact left the ACD (called back, or given up); False if ``e`` is not one."""
        req = self.requests.get(e.contact)
        if req is None:
            return False
        if e.outcome == "called_back":
            self.acd._spawn(self.acd.store.callback_done(e.contact), "callback-row")
        else:
            self.acd._spawn(self.acd.store.callback_failed(e.contact, attempts=req.contact.attempts), "callback-row")
            self.requests.pop(e.contact, None)
        return True

    # -- an agent answered for a request: dial the customer --------------------------------------------------
    def connect(self, e: fx.Connect, agent_leg: AgentLeg) -> None:
        acd = self.acd
        req = self.requests.get(e.contact)
        if req is None:
            agent_leg.cancel()
            return
        req.agent_leg = agent_leg
        uri = acd.trunk.uri_for(req.number)
        if uri is None:
            log.warning("callback number not allowed by [trunk] allow", extra={"call_id": e.contact})
            agent_leg.cancel()
            req.contact = replace(req.contact, attempts=acd.callback_attempts - 1)  # no retry can help
            self._failed(req, status=403)
            return
        req.call_id = uuid.uuid4().hex
        acd.calls.create_nowait(req.call_id, "", req.number, e.queue, "", "")
        acd.calls.update_nowait(req.call_id, direction="callback", queue=e.queue, agent=e.agent)
        acd._spawn(acd.store.callback_dialling(e.contact, agent=e.agent, result_call=req.call_id,
                                               attempts=req.contact.attempts + 1), "callback-row")
        leg = OutboundLeg(acd.engine, uri=uri, role="customer", call_id=e.contact, reservation=e.reservation,
                          agent=e.agent, data_dir=acd.data_dir, from_uri=acd.trunk.from_uri,
                          on_answered=self._customer_answered, on_ended=self._customer_ended)
        req.customer_leg = leg
        acd._track(leg.start())

    def _customer_answered(self, leg: OutboundLeg) -> None:
        acd = self.acd
        req = self.requests.get(leg.call_id)
        if req is None or req.agent_leg is None or req.agent_leg.handle is None or leg.handle is None:
            leg.cancel()
            return
        req.answered = True
        acd.calls.update_nowait(req.call_id, answered_at=iso_utc(acd.clock()))
        acd._spawn(self._bridge(req, leg.handle), "bridge-callback")
        acd._apply(acd.router.callback_answered(leg.call_id, acd.clock()))

    async def _bridge(self, req: _Request, customer: int) -> None:
        with contextlib.suppress(CallGone, EngineStopped):
            connect = getattr(req.agent_leg, "connect", None)  # a browser agent: the desk leg bridges itself
            if connect is not None:
                await connect(customer)
            elif req.agent_leg is not None and req.agent_leg.handle is not None:
                await self.acd.engine.bridge(req.agent_leg.handle, customer)

    def _customer_ended(self, leg: OutboundLeg, end: LegEnd) -> None:
        req = self.requests.get(leg.call_id)
        if req is None or req.customer_leg is not leg:
            return
        req.customer_end = end
        if not req.answered:  # no answer, busy, refused: try again later (or give up)
            if req.agent_leg is not None:
                req.agent_leg.cancel()
            self._failed(req, status=end.status)
            return
        self._complete(req, by="caller")
        if req.agent_leg is not None:
            req.agent_leg.cancel()
        self._finish(req)

    def agent_leg_ended(self, leg: AgentLeg, end: LegEnd) -> bool:
        """The agent's leg of a callback ended; False if ``leg`` is not one."""
        req = self.requests.get(leg.call_id)
        if req is None or req.agent_leg is not leg:
            return False
        req.agent_end = end
        if req.answered:
            self._complete(req, by="agent")
            if req.customer_leg is not None:
                req.customer_leg.cancel()
            self._finish(req)
        elif req.customer_leg is not None:  # the agent gave up while the customer's phone rang
            req.customer_leg.cancel()
        else:
            self._failed(req, status=end.status)
        return True

    def _complete(self, req: _Request, *, by: str) -> None:
        if not req.completed:
            req.completed = True
            self.acd._apply(self.acd.router.completed(req.contact.id, self.acd.clock(), by=by))

    def _failed(self, req: _Request, *, status: int) -> None:
        acd = self.acd
        attempts = req.contact.attempts + 1  # (the router logs CALLBACKFAIL)
        now = acd.clock()
        retry_at = None if attempts >= acd.callback_attempts else now + acd.callback_retry_s
        req.contact = replace(req.contact, attempts=attempts, not_before=retry_at or 0.0)
        req.agent_leg = req.customer_leg = None
        if req.call_id:
            acd.calls.update_nowait(req.call_id, ended_at=iso_utc(now), disposition="missed")
            req.call_id = ""
        if retry_at is not None:
            acd._spawn(acd.store.callback_retry(req.contact.id, attempts=attempts, not_before=retry_at),
                       "callback-row")
        acd._apply(acd.router.callback_failed(req.contact.id, now, retry_at, status=str(status)))

    def _finish(self, req: _Request) -> None:
        """Both legs are over (or going): the callback call's row gets its end and its recordings."""
        acd = self.acd
        self.requests.pop(req.contact.id, None)
        if not req.call_id:
            return
        fields: dict[str, Any] = {"ended_at": iso_utc(acd.clock()), "disposition": "completed"}
        for end, column in ((req.customer_end, "recording_path"), (req.agent_end, "agent_recording_path")):
            if end is not None and end.recording is not None:
                fields[column] = str(end.recording.relative_to(acd.data_dir))
        acd.calls.update_nowait(req.call_id, **fields)

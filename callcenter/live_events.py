"""The in-process publish/subscribe of live events: the ACD and the call path publish, the event
stream (callcenter/events_api.py), the agent desk and the wallboard subscribe.

Producers never know their consumers and never wait for them: :meth:`EventBus.publish` appends the
event to each matching subscriber's bounded buffer and returns. A subscriber that falls
``max_pending`` events behind loses what it had not read, gets one ``{"type": "overflow",
"dropped": N}`` event and is then closed (it should reconnect and re-read the live snapshot). No
task is started for anyone: a subscriber's ``get`` waits on a future that ``publish`` resolves.

Events are dicts with a ``type`` (one of :data:`WIRE_TYPES`) and ``at`` (epoch seconds; added if
missing). Subscribers share the published dict: treat it as read-only. Everything here runs on the
event loop; another thread publishes with ``loop.call_soon_threadsafe(bus.publish, event)``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

Event = dict[str, Any]
MAX_PENDING = 1000
# The wire types (docs/agents.md has their fields). "overflow" only ever comes from the bus itself.
WIRE_TYPES = ("call_started", "call_answered", "call_ended", "queue_joined", "queue_left", "offer",
              "offer_canceled", "connected", "agent_state", "callback_requested", "heartbeat", "overflow")

log = logging.getLogger("callcenter.events")


class Subscription:
    """One consumer's bounded view of the bus: ``async for event in sub`` or ``await sub.get(wait_s)``."""

    def __init__(self, bus: EventBus, types: frozenset[str] | None, max_pending: int,
                 accept: Callable[[Event], bool] | None) -> None:
        self._bus = bus
        self.types = types
        self.max_pending = max_pending
        self._accept = accept
        self._pending: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False         # nothing more will be added (closed, overflowed or the bus closed)
        self.overflowed = False
        self.delivered = 0

    # -- the bus's side ------------------------------------------------------------------------------
    def _offer(self, event: Event) -> None:
        if self._ended or (self.types is not None and event["type"] not in self.types):
            return
        if self._accept is not None:
            try:
                if not self._accept(event):
                    return
            except Exception:  # a consumer's filter must never break a producer
                log.exception("event filter failed", extra={"event_type": event.get("type")})
                return
        if len(self._pending) >= self.max_pending:
            dropped = len(self._pending) + 1
            self._pending.clear()
            self._pending.append({"type": "overflow", "at": event["at"], "dropped": dropped})
            self.overflowed = True
            self._end()
            self._bus.overflows += 1
            log.warning("a live event subscriber fell %d events behind and was closed", dropped)
        else:
            self._pending.append(event)
        self._wake()

    def _end(self) -> None:
        self._ended = True
        self._bus._subs.discard(self)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the consumer's side -------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the subscription has ended and everything buffered has been read."""
        return self._ended and not self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def get(self, wait_s: float | None = None) -> Event | None:
        """The next event; None when ``wait_s`` seconds pass first, or when the subscription is
        :attr:`finished` (check it to tell the two apart)."""
        if not self._pending and not self._ended:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(wait_s, self._wake) if wait_s is not None else None
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None
        if not self._pending:
            return None
        self.delivered += 1
        return self._pending.popleft()

    def close(self) -> None:
        """Stop receiving: what is buffered is dropped, iteration ends. Idempotent."""
        self._pending.clear()
        self._end()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class EventBus:
    """Fan-out of live events to bounded subscribers; ``publish`` never blocks (see the module docstring)."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._closed = False
        self.published = 0
        self.overflows = 0

    def __len__(self) -> int:
        """Subscribers now."""
        return len(self._subs)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every matching subscriber. ValueError if it has no string ``type``."""
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a live event needs a 'type' (got {event!r:.200})")
        if self._closed:
            return
        if "at" not in event:
            event = {"type": kind, "at": time.time(), **event}
        self.published += 1
        for sub in list(self._subs):
            sub._offer(event)

    def subscribe(self, types: Iterable[str] | None = None, max_pending: int = MAX_PENDING, *,
                  accept: Callable[[Event], bool] | None = None) -> Subscription:
        """A new subscription to events of ``types`` (None: all) that ``accept`` (if given) lets through.

        A bus already closed gives a subscription that is finished at once.
        """
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1 (got {max_pending})")
        sub = Subscription(self, frozenset(types) if types is not None else None, max_pending, accept)
        if self._closed:
            sub._ended = True
        else:
            self._subs.add(sub)
        return sub

    def close(self) -> None:
        """Server shutdown: every subscriber reads what it has buffered, then its iteration ends."""
        self._closed = True
        for sub in list(self._subs):
            sub._end()

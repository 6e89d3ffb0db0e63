"""Offers outstanding (reservations) and the router's deadlines.

A ``Reservation`` is one ringing offer of one contact to one agent; the router keeps them by id
and times them out itself (``deadline``). ``Timers`` is the single deadline heap behind
``Router.advance`` / ``Router.next_deadline``: ring timeouts, wrap-up ends, escalation steps,
max waits, preferred-agent windows and callback retry times. Entries are never removed: each
carries what it is for, and the router checks on the way out that it still applies (lazy
deletion), so rescheduling is a push and cancelling is free.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

TimerKind = Literal["ring", "wrap", "escalate", "max_wait", "preferred", "retry"]


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    contact: str
    agent: str
    queue: str
    offered_at: float
    deadline: float
    callback: bool
    ring_all: bool


class Timers:
    """A heap of (when, seq, kind, ident); ``valid(kind, ident, when)`` says whether an entry still applies."""

    def __init__(self, valid: Callable[[TimerKind, str, float], bool]) -> None:
        self._heap: list[tuple[float, int, TimerKind, str]] = []
        self._seq = itertools.count()
        self._valid = valid

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, when: float, kind: TimerKind, ident: str) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), kind, ident))

    def next(self) -> float | None:
        """The earliest deadline that still applies."""
        heap = self._heap
        while heap:
            when, _, kind, ident = heap[0]
            if self._valid(kind, ident, when):
                return when
            heapq.heappop(heap)
        return None

    def due(self, now: float) -> Iterator[tuple[TimerKind, str, float]]:
        """Pop the entries due by ``now`` in time order, valid ones only; entries added meanwhile count too."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, kind, ident = heapq.heappop(heap)
            if self._valid(kind, ident, when):
                yield kind, ident, when

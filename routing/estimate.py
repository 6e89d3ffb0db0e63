"""Estimated wait (the "your expected wait is..." announcement) from recent handle times.

    AHT  = mean of the queue's last ``HANDLE_WINDOW`` handle times (talk + wrap-up, seconds),
           DEFAULT_HANDLE_S while the queue has none yet
    N    = staffed agents eligible for the queue (logged in, not on a break: available,
           reserved, on a call or in wrap-up)
    EWT  = position * AHT / N              (None when N == 0: nobody to wait for)

and a callback waiting for its retry time waits at least until then. The reasoning: N agents
working at AHT seconds per contact free up one agent every AHT / N seconds on average, and the
contact at ``position`` is served when ``position`` agents have freed up. It ignores agents shared
with other queues (they count fully for each) and abandons ahead (which shorten the wait), so it
leans pessimistic, which callers forgive more readily than an optimistic one.
"""

from __future__ import annotations

from collections.abc import Iterable

HANDLE_WINDOW = 50
DEFAULT_HANDLE_S = 180.0


def average_handle(times: Iterable[float]) -> float:
    values = list(times)
    return sum(values) / len(values) if values else DEFAULT_HANDLE_S


def estimated_wait(position: int, staffed: int, handle_times: Iterable[float],
                   not_before: float = 0.0, now: float = 0.0) -> float | None:
    """Seconds until the contact at ``position`` (1-based) is likely offered; None with no staffed agent."""
    if staffed <= 0:
        return None
    wait = position * average_handle(handle_times) / staffed
    return max(wait, not_before - now, 0.0)

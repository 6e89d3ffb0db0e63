"""Free ports on loopback for a SIP server (UDP and TCP on the same number) and HTTP."""

from __future__ import annotations

import os
import random
import socket


def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _worker_range(low: int = 20000, high: int = 29999) -> tuple[int, int]:
    """Each pytest-xdist worker draws from its own slice of the range, so two workers never pick
    the same port between one's check and its server's bind."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return low, high
    index = int(worker[2:]) % count
    size = (high - low + 1) // count
    return low + index * size, low + (index + 1) * size - 1


def free_port() -> int:
    """A port free for both UDP and TCP (20000..29999: below the test RTP ranges)."""
    low, high = _worker_range()
    for _ in range(200):
        port = random.randint(low, high)
        if _free(port):
            return port
    raise RuntimeError("no free port found")

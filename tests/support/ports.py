"""Free ports on loopback for a SIP server (UDP and TCP on the same number) and HTTP."""

from __future__ import annotations

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


def free_port() -> int:
    """A port free for both UDP and TCP (20000..29999: below the test RTP ranges)."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        if _free(port):
            return port
    raise RuntimeError("no free port found")

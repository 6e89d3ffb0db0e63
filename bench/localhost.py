"""What the benchmarks share: free loopback ports for SIPp, child-process set-up, a process's RSS.

Ports handed out stay clear of the ranges the servers under test use: SIP and HTTP ports of
tests/support/ports.py (20000..29999) and the RTP ranges of bench/capacity.toml (10000..19999),
the engine floor (20000..29999) and tests/support/server.py (30000..38999).
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
import signal
import socket

HOST = "127.0.0.1"
_TAKEN = range(10000, 39000)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def free_udp_port(avoid: set[int]) -> int:
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in avoid and port not in _TAKEN:
            avoid.add(port)
            return port
    raise RuntimeError("no free UDP port")


def free_tcp_port(avoid: set[int]) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port = int(s.getsockname()[1])
    avoid.add(port)
    return port


def free_media_port(avoid: set[int]) -> int:
    """SIPp's media takes -mp and -mp+2 (audio and video echo): a free pair in 6000..9999."""
    for port in range(6000, 10000, 4):
        if {port, port + 2} & avoid:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind((HOST, port))
                b.bind((HOST, port + 2))
        except OSError:
            continue
        avoid.update({port, port + 2})
        return port
    raise RuntimeError("no free UDP port pair for SIPp's media in 6000..9999")


def child_setup() -> None:
    """In each child: the file-descriptor limit up to the hard limit; die with the benchmark."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None

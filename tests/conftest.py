"""Shared fixtures. The autouse ``no_leaks`` fixture fails any test that leaves tasks or threads behind."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
                  and not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> object:
    yield
    current = asyncio.current_task()
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"test left tasks running: {[t.get_name() for t in leaked]}"

"""The app served by uvicorn on a thread of the test process, with its own event loop (page tests).

A subclass builds its database and app in ``serve`` and ends with ``await self.run_app(app)``;
``start()`` returns once uvicorn listens (or raises what went wrong), ``stop()`` asks it to exit,
joins the thread and re-raises an error the thread met.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from .ports import free_port

S = TypeVar("S", bound="ThreadedSite")


class ThreadedSite:
    label = "test server"                   # (named in start/stop errors and the thread's name)
    stop_wait_s = 15.0

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.server: uvicorn.Server | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"{self.label.split()[0]}-uvicorn")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self) -> None:
        raise NotImplementedError

    async def run_app(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        await self.server.serve()

    def _run(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as exc:  # reported by start()/stop()
            self.error = exc

    def start(self: S) -> S:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server and self.server.started):
            if self.error or not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.label} did not start: {self.error!r}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.server:
            self.server.should_exit = True
        self.thread.join(self.stop_wait_s)
        assert not self.thread.is_alive(), f"the {self.label} did not stop"
        if self.error:
            raise self.error

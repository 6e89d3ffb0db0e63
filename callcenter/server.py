"""`callcenter serve`: wire storage, the SIP engine, the call service and the HTTP API; stop cleanly.

Start order: data directory, database, flow, prompts, HTTP socket, SIP engine, then accept.
Stop order (SIGINT/SIGTERM): stop accepting, hang up every call, finalize recordings, tear
pjsua2 down on its thread, close HTTP, close the database. Exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from ivr.exceptions import FlowError, IvrError
from ivr.flow import Flow, load_flow
from ivr.prompts import PromptCache
from voice.audio import read_wav, resample, write_wav
from voice.engine import Engine
from voice.exceptions import EngineError

from .api import ApiContext, create_app
from .calls import CallService
from .exceptions import StartupError
from .recovery import recover
from .settings import Settings, check_data_dir
from .storage.db import Database
from .storage.repos import CallRepo, EventRepo, UserRepo

log = logging.getLogger("callcenter.server")


def convert_prompt(src: Path, dst: Path, rate: int) -> None:
    write_wav(dst, resample(read_wav(src), rate))


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the server owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn
        pass


def _bind_http(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise StartupError(f"HTTP port {host}:{port} {why}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve(settings: Settings) -> int:
    data_dir = check_data_dir(settings.data_dir)
    if settings.flow is None:
        raise StartupError("no IVR flow configured: set [ivr] flow in the config file")
    try:
        flow = load_flow(settings.flow)
    except FlowError as exc:
        raise StartupError(f"flow {exc}") from None

    db = await Database.open(data_dir)
    try:
        return await _serve(settings, data_dir, db, flow)
    finally:
        await db.close()


async def _serve(settings: Settings, data_dir: Path, db: Database, flow: Flow) -> int:
    calls, events, users = CallRepo(db), EventRepo(db), UserRepo(db)
    stale = await recover(calls, events, data_dir)  # a previous run killed during calls
    if stale:
        log.warning("closed calls left open by a previous run", extra={"count": stale})

    prompts = PromptCache(data_dir / "prompts", settings.engine.clock_rate, convert_prompt,
                          settings.prompt_voice, settings.prompt_wpm)
    try:
        await prompts.render_all(flow.prompts())
    except IvrError as exc:
        raise StartupError(str(exc)) from None

    http_sock = _bind_http(settings.http_host, settings.http_port)
    engine = Engine(settings.engine)
    try:
        await engine.start()
    except EngineError as exc:
        http_sock.close()
        raise StartupError(str(exc)) from None

    service = CallService(engine, calls, events, flow, prompts, data_dir)
    app = create_app(ApiContext(calls=calls, users=users, data_dir=data_dir, active_calls=lambda: service.active))
    http = _Uvicorn(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dispatcher = asyncio.create_task(service.run(), name="call-dispatch")
    http_task = asyncio.create_task(http.serve(sockets=[http_sock]), name="http")
    log.info("serving", extra={
        "sip": f"{settings.engine.host}:{settings.engine.sip_port}/{'+'.join(settings.engine.transports)}",
        "http": f"{settings.http_host}:{settings.http_port}", "flow": flow.name, "data_dir": str(data_dir),
    })
    stop_task = asyncio.create_task(stop.wait(), name="wait-for-signal")
    try:
        await asyncio.wait({stop_task, http_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        log.info("shutting down", extra={"active_calls": service.active})
        service.stopping = True
        await engine.stop()          # hangs up, finalizes recordings, libDestroy on its thread
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
        await service.drain()        # write the final call rows
        http.should_exit = True
        await http_task
        http_sock.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0

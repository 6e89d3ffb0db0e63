"""`callcenter serve`: wire storage, the SIP engine, the call service and the HTTP API; stop cleanly.

Start order: data directory, database, flow, prompts, HTTP socket, SIP engine, then accept.
Stop order (SIGINT/SIGTERM): stop accepting, hang up every call, finalize recordings, tear
pjsua2 down on its thread, close HTTP, close the database. Exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from ivr.exceptions import FlowError
from ivr.flow import load_flow
from ivr.http import FlowHttpClient
from ivr.nodes import Flow
from ivr.prompts import PromptCache
from voice import tones
from voice.audio import Audio, read_wav, resample, write_wav
from voice.engine import Engine
from voice.exceptions import AudioFormatError, EngineError

from .acd import AcdService
from .acd_store import AcdStore
from .api import ApiContext, create_app
from .calls import CallService, IvrOptions
from .desk import DeskHub
from .desk import build_router as desk_router
from .exceptions import StartupError
from .flow_directory import FlowDirectory
from .live_events import EventBus
from .post_call import PostCall
from .recognizer import open_recognizer, phrase_checker
from .recovery import recover
from .settings import Settings, check_data_dir
from .storage.db import Database
from .storage.flows import VoicemailRepo
from .storage.repos import CallRepo, EventRepo, UserRepo
from .transcription_jobs import JobRunner
from .trunk import Trunk

log = logging.getLogger("callcenter.server")


def convert_prompt(src: Path, dst: Path, rate: int) -> None:
    """Any WAV (or other sound file sox reads) -> 16-bit mono PCM at the engine's ``rate``."""
    try:
        audio = read_wav(src)
    except AudioFormatError:  # 8/24/32-bit, float, G.711, ADPCM...: sox converts what read_wav does not
        out = subprocess.run(["sox", str(src), "-t", "wav", "-e", "signed-integer", "-b", "16", "-c", "1",
                              "-r", str(rate), str(dst)], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AudioFormatError(f"{src}: not a sound file sox can read ({out.stderr.strip()[-200:]})") from None
        return
    write_wav(dst, resample(audio, rate))


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


def write_tones(prompts: PromptCache, rate: int) -> None:
    """The beep before a voicemail and the tone played when a prompt cannot be rendered."""
    prompts.directory.mkdir(parents=True, exist_ok=True)
    write_wav(prompts.beep_path, Audio(tones.beep(rate=rate), rate))
    write_wav(prompts.fallback_path, Audio(tones.fallback_tone(rate=rate), rate))


def static_prompts(flows: list[Flow]) -> list[tuple[str, str, str | None, int | None]]:
    """The TTS prompts of ``flows`` that hold no {variable}: rendered before the first call."""
    out = []
    for flow in flows:
        for p in flow.prompts():
            if p.say and "{" not in p.say:
                out.append((p.say, p.language or flow.language, p.voice or flow.voice, p.rate))
    return out


def _job_runner(settings: Settings, db: Database, data_dir: Path) -> JobRunner:
    def existing(path: Path | None) -> Path | None:
        if path is not None and not path.exists():
            log.warning("transcription: no such file, its part of the analysis is skipped", extra={"path": str(path)})
            return None
        return path

    return JobRunner(db, data_dir, workers=settings.transcribe_workers or None, engine=settings.asr_engine,
                     vosk_model=settings.vosk_model, rules_path=existing(settings.keywords),
                     scorecards_path=existing(settings.scorecards))


RETENTION_EVERY_S = 24 * 3600.0


async def _retention(settings: Settings, db: Database, data_dir: Path) -> None:
    """Delete recordings and transcripts past their retention, at start and then daily (logged)."""
    from recordings.retention import purge

    from .storage.transcripts import RecordingRepo

    while True:
        try:
            report = await purge(RecordingRepo(db), data_dir, default_days=settings.retention_days,
                                 per_queue=settings.retention_per_queue)
            log.info("retention: %s", report.summary())
        except Exception:
            log.exception("retention: purge failed")
        await asyncio.sleep(RETENTION_EVERY_S)


async def serve(settings: Settings) -> int:
    data_dir = check_data_dir(settings.data_dir)
    default_flow = None
    if settings.default_flow is not None:
        try:
            default_flow = load_flow(settings.default_flow)
        except FlowError as exc:
            raise StartupError(f"default flow {exc}") from None

    db = await Database.open(data_dir)
    try:
        return await _serve(settings, data_dir, db, default_flow)
    finally:
        await db.close()


async def _serve(settings: Settings, data_dir: Path, db: Database, default_flow: Flow | None) -> int:
    calls, events, users = CallRepo(db), EventRepo(db), UserRepo(db)
    stale = await recover(calls, events, data_dir)  # a previous run killed during calls
    if stale:
        log.warning("closed calls left open by a previous run", extra={"count": stale})

    directory = FlowDirectory(db)
    await directory.set_default(default_flow)
    rate = settings.engine.clock_rate
    prompts = PromptCache(settings.prompt_cache or data_dir / "prompts", rate, convert_prompt,
                          settings.prompt_voice, settings.prompt_wpm,
                          voices=settings.prompt_voices)
    write_tones(prompts, rate)
    await prompts.render_all(static_prompts(directory.flows()))  # (a prompt that fails is logged: calls hear a tone)

    http_sock = _bind_http(settings.http_host, settings.http_port)
    engine = Engine(settings.engine)
    try:
        await engine.start()
    except EngineError as exc:
        http_sock.close()
        raise StartupError(str(exc)) from None

    http_client = FlowHttpClient()
    recognizer = open_recognizer(settings)
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host
    options = IvrOptions(transfer_allow=settings.transfer_allow, inband_dtmf=settings.inband_dtmf, clock_rate=rate,
                         server_url=f"http://{host}:{settings.http_port}")
    bus = EventBus()
    acd = AcdService(engine, AcdStore(db), events, calls, prompts, data_dir, hold_music=settings.hold_music,
                     trunk=Trunk(settings.trunk_uri, settings.trunk_allow, settings.trunk_from),
                     callback_attempts=settings.callback_attempts, callback_retry_s=settings.callback_retry_s,
                     bus=bus)
    await acd.start()
    jobs = _job_runner(settings, db, data_dir) if settings.transcribe else None
    post_call = PostCall(db, data_dir, on_enqueued=jobs.wake if jobs else None, transcribe=jobs is not None)
    await post_call.resume_recovered()  # the calls recover() closed above: legs, stereo mix, job
    service = CallService(engine, calls, events, VoicemailRepo(db), directory, prompts, http_client, recognizer,
                          data_dir, options, acd=acd, post_call=post_call, bus=bus)
    ctx = ApiContext(calls=calls, users=users, data_dir=data_dir, active_calls=lambda: service.active, db=db,
                     sip_load=lambda: (engine.calls_up, engine.config.max_calls),
                     flows=directory, phrase_check=phrase_checker(settings), acd=acd, bus=bus)
    hub = DeskHub(ctx, engine=engine, grace_s=settings.desk_grace_s, heartbeat_s=settings.desk_heartbeat_s,
                  transfer_allow=settings.transfer_allow, hold_music=settings.hold_music)
    acd.desk = hub
    service.desk = hub
    app = create_app(ctx, demo_crm=settings.demo_crm)
    app.include_router(desk_router(ctx, hub))
    http = _Uvicorn(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dispatcher = asyncio.create_task(service.run(), name="call-dispatch")
    refresher = asyncio.create_task(directory.run(), name="flow-refresh")
    acd_timer = asyncio.create_task(acd.run(), name="acd")
    job_task = asyncio.create_task(jobs.run(), name="transcription") if jobs else None
    keeps = settings.retention_days or any(settings.retention_per_queue.values())
    retention = asyncio.create_task(_retention(settings, db, data_dir), name="retention") if keeps else None
    http_task = asyncio.create_task(http.serve(sockets=[http_sock]), name="http")
    log.info("serving", extra={
        "sip": f"{settings.engine.host}:{settings.engine.sip_port}/{'+'.join(settings.engine.transports)}",
        "http": f"{settings.http_host}:{settings.http_port}", "numbers": len(directory.numbers),
        "default_flow": default_flow.name if default_flow else "-", "data_dir": str(data_dir),
    })
    gc.freeze()  # what start-up built (modules, flows, the app) lives forever: keep it out of every collection
    stop_task = asyncio.create_task(stop.wait(), name="wait-for-signal")
    try:
        await asyncio.wait({stop_task, http_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        log.info("shutting down", extra={"active_calls": service.active})
        service.stopping = True
        await hub.close()            # the desks hear the server go; their peers close
        await engine.stop()          # hangs up, finalizes recordings, libDestroy on its thread
        for task in (dispatcher, refresher, acd_timer, *([retention] if retention else [])):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.drain()        # write the final call rows
        await acd.stop()
        await post_call.close()      # recording rows and transcription jobs of the last calls
        if jobs is not None and job_task is not None:
            await jobs.stop()        # unfinished jobs are given back (the next start takes them)
            with contextlib.suppress(asyncio.CancelledError):
                await job_task
        bus.close()
        if recognizer is not None:
            await recognizer.aclose()
        await http_client.aclose()
        http.should_exit = True
        await http_task
        http_sock.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0

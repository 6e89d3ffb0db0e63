"""The SIP engine: one thread that owns the pjsua2 Endpoint and every pjsua2 object.

Threading (see ARCHITECTURE.md): pjsua2 runs with ``threadCnt = 0`` and ``mainThreadOnly``; the
engine thread loops over ``libHandleEvents`` and a command queue. ``Engine`` is the asyncio face:
each public coroutine marshals one command onto the engine thread and awaits its result. Results
and events go back in order, batched into one ``call_soon_threadsafe`` per loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pjsua2 as pj

from . import pj_objects
from .config import EngineConfig
from .events import CallAnswered, CallEnded, EngineEvent, MediaReady, PlaybackDone
from .exceptions import CallGone, EngineError, EngineStopped, TapError
from .tap import Tap, TapPump
from .tap_group import TapGroup

log = logging.getLogger("voice.engine")
T = TypeVar("T")

_TAP_FRAME_MS = 20  # the conference bridge's ptime (pjsua's default audioFramePtime)
_TRANSPORTS = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pj.Error):
        return f"{exc.title}: {exc.reason}" if getattr(exc, "title", "") else str(exc.reason)
    return str(exc)


class _EngineCore:
    """Engine-thread state. Only the engine thread calls these methods or touches these dicts."""

    def __init__(self, config: EngineConfig, emit: Callable[[Callable[[], None]], None]) -> None:
        self.config = config
        self._emit = emit
        self.stopping = False
        self.ep: Any = None
        self.account: pj_objects.Account | None = None
        self.log_writer: pj_objects.PjLogWriter | None = None
        self.calls: dict[int, pj_objects.Call] = {}
        self._next_playback = 1
        self._next_tap = 1
        self._graveyard: list[Any] = []  # objects to drop after the current callback returns
        self._eofs: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()  # from pjmedia's thread

    # -- events -----------------------------------------------------------------------------
    def post(self, event: EngineEvent) -> None:
        self._emit(functools.partial(self.deliver, event))

    deliver: Callable[[EngineEvent], None]

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        self.ep = pj.Endpoint()
        with _quiet_stdout():  # pjlib logs its start-up to stdout before our log writer exists
            self.ep.libCreate()
        ep_cfg = pj.EpConfig()
        ua = ep_cfg.uaConfig
        ua.threadCnt = 0
        ua.mainThreadOnly = True
        ua.maxCalls = cfg.max_calls
        ua.userAgent = cfg.user_agent
        self.log_writer = pj_objects.PjLogWriter()
        ep_cfg.logConfig.writer = self.log_writer
        ep_cfg.logConfig.level = cfg.pjsip_log_level
        ep_cfg.logConfig.consoleLevel = cfg.pjsip_log_level
        ep_cfg.logConfig.decor = 0
        pj_objects.configure_media(ep_cfg.medConfig, cfg.clock_rate)
        self.ep.libInit(ep_cfg)
        self.ep.audDevManager().setNullDev()
        for name in cfg.transports:
            tcfg = pj.TransportConfig()
            tcfg.port = cfg.sip_port
            if cfg.host not in ("0.0.0.0", ""):
                tcfg.boundAddress = cfg.host
            if cfg.public_address:
                tcfg.publicAddress = cfg.public_address
            try:
                self.ep.transportCreate(_TRANSPORTS[name], tcfg)
            except pj.Error as exc:
                raise EngineError(
                    f"cannot listen for SIP on {name.upper()} {cfg.host}:{cfg.sip_port}: {_describe(exc)}"
                ) from None
        self.ep.libStart()
        self._set_codecs()
        acc_cfg = pj.AccountConfig()
        acc_cfg.idUri = f"sip:callcenter@{cfg.public_address or cfg.host}:{cfg.sip_port}"
        acc_cfg.mediaConfig.transportConfig.port = cfg.rtp_port
        acc_cfg.mediaConfig.transportConfig.portRange = cfg.rtp_port_range
        if cfg.host not in ("0.0.0.0", ""):
            acc_cfg.mediaConfig.transportConfig.boundAddress = cfg.host
        self.account = pj_objects.Account(self)
        self.account.create(acc_cfg, True)

    def _set_codecs(self) -> None:
        wanted = [c.upper() for c in self.config.codecs]
        available = [c.codecId for c in self.ep.codecEnum2()]
        for codec_id in available:
            prio = 0
            for rank, name in enumerate(wanted):
                if codec_id.upper().startswith(name):
                    prio = 255 - rank
            self.ep.codecSetPriority(codec_id, prio)
        if not any(c.upper().startswith(w) for c in available for w in wanted):
            raise EngineError(f"none of the configured codecs {wanted} is available in {available}")

    def handle_events(self, timeout_ms: int) -> None:
        self.ep.libHandleEvents(timeout_ms)
        self._finish_playbacks()
        self.reap()

    def reap(self) -> None:
        """Drop the objects callbacks retired (outside any callback; closes recordings)."""
        if self._graveyard:
            self._graveyard.clear()

    def shutdown(self, grace_s: float = 2.0) -> None:
        """Hang up, drop every pjsua2 object, then ``libDestroy`` (engine thread only)."""
        self.stopping = True
        if self.ep is None:
            return
        try:
            self.ep.hangupAllCalls()
        except pj.Error as exc:
            log.warning("hangupAllCalls failed: %s", _describe(exc))
        deadline = grace_s * 1000
        while self.calls and deadline > 0:
            self.handle_events(10)
            deadline -= 10
        for call in list(self.calls.values()):  # calls that never confirmed their BYE
            self._close_call(call, 0, "engine shutdown")
        self.reap()
        if self.account is not None:
            self.account.shutdown()
            self.account = None
        self.ep.libDestroy()
        self.ep = None
        self.log_writer = None

    # -- callbacks from pj_objects ----------------------------------------------------------------
    def on_call_confirmed(self, call: pj_objects.Call) -> None:
        self.post(CallAnswered(call=call.handle))

    def on_media_ready(self, call: pj_objects.Call) -> None:
        self.post(MediaReady(call=call.handle, codec=call.codec))

    def on_player_eof(self, call: int, playback: int) -> None:
        """Called on pjmedia's event thread, not the engine thread: only queue the news."""
        self._eofs.put((call, playback))

    def _finish_playbacks(self) -> None:
        while True:
            try:
                handle, playback = self._eofs.get_nowait()
            except queue.Empty:
                return
            call = self.calls.get(handle)
            player = call.players.pop(playback, None) if call is not None else None
            if player is not None:
                self._graveyard.append(player)
                self.post(PlaybackDone(call=handle, playback=playback))

    def on_call_disconnected(self, call: pj_objects.Call, code: int, reason: str) -> None:
        self._close_call(call, code, reason)

    def _close_call(self, call: pj_objects.Call, code: int, reason: str) -> None:
        self.calls.pop(call.handle, None)
        paths = ((call.port_recording,) if call.port_recording else ()) + tuple(call.recorders)
        # Dropped after this callback returns; dropping a recorder closes its WAV with a valid header.
        self._graveyard.extend(call.players.values())
        if call.port is not None:  # (it records and may feed a tap)
            self._graveyard.append(call.port)
            call.port = None
        self._graveyard.extend(call.recorders.values())
        call.players.clear()
        call.recorders.clear()
        self._graveyard.extend(call.taps.values())  # dropping a MediaTap leaves the bridge
        call.taps.clear()
        call.audio = None
        self._graveyard.append(call)
        self.post(
            CallEnded(
                call=call.handle,
                status_code=code,
                reason=reason,
                local_hangup=call.local_hangup,
                recordings=paths,
            )
        )

    # -- commands (run on the engine thread) --------------------------------------------------------
    def _call(self, handle: int) -> pj_objects.Call:
        call = self.calls.get(handle)
        if call is None or call.ended:
            raise CallGone(f"call {handle} has ended")
        return call

    def answer(self, handle: int, code: int) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        self._call(handle).answer(prm)

    def hangup(self, handle: int, code: int) -> None:
        call = self._call(handle)
        call.local_hangup = True
        prm = pj.CallOpParam()
        prm.statusCode = code
        call.hangup(prm)

    def play(self, handle: int, path: str) -> int:
        call = self._call(handle)
        if call.audio is None:
            raise EngineError(f"call {handle} has no active audio yet")
        playback = self._next_playback
        self._next_playback += 1
        player = pj_objects.Player(self, handle, playback)
        player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(call.audio)
        call.players[playback] = player
        return playback

    def record(self, handle: int, path: str) -> None:
        call = self._call(handle)
        if call.audio is None:
            raise EngineError(f"call {handle} has no active audio yet")
        if call.port is None:  # the call's own port records it; a tap may read it later
            port = pj.MediaTap()
            port.createPort(self.config.clock_rate, _TAP_FRAME_MS)
            call.audio.startTransmit(port)
            call.port = port
        if not call.port_recording:
            call.port.startRecording(path)
            call.port_recording = path
            return
        rec = pj.AudioMediaRecorder()  # a second recording of the same call
        rec.createRecorder(path)
        call.audio.startTransmit(rec)
        call.recorders[path] = rec

    def open_tap(self, handle: int, buffer_ms: int, listen: bool, speak: bool) -> tuple[int, Any]:
        call = self._call(handle)
        if call.audio is None:
            raise EngineError(f"call {handle} has no active audio yet")
        tap_id = self._next_tap
        self._next_tap += 1
        if listen and call.port is not None and not call.port_tap:
            # The recording port already hears the call: read its frames (no new bridge port).
            stream = call.port.openStream(buffer_ms)
            if speak:
                call.port.startTransmit(call.audio)
            call.port_tap, call.port_speaks = tap_id, speak
            return tap_id, stream
        tap = pj.MediaTap()  # the project's own port: native/pjsua2/tap/media_tap.hpp
        tap.createTap(self.config.clock_rate, _TAP_FRAME_MS, buffer_ms)
        if listen:
            call.audio.startTransmit(tap)
        if speak:
            tap.startTransmit(call.audio)
        call.taps[tap_id] = tap
        return tap_id, tap.getStream()

    def close_tap(self, tap_id: int) -> bool:
        for call in self.calls.values():
            if call.port_tap == tap_id:  # the recording goes on
                if call.port_speaks and call.audio is not None:
                    call.port.stopTransmit(call.audio)
                call.port.closeStream()
                call.port_tap, call.port_speaks = 0, False
                return True
            tap = call.taps.pop(tap_id, None)
            if tap is not None:
                tap.close()  # leaves the bridge now; the pump then reports the end
                return True
        return False


class Engine:
    """The asyncio face of the engine thread."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.events: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._outbox: list[Callable[[], None]] = []
        self._outbox_lock = threading.Lock()
        self._core = _EngineCore(config, self._emit)
        self._core.deliver = self.events.put_nowait
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self._tap_pump: TapPump | None = None
        self._tap_groups: list[TapGroup] = []

    # -- thread side ---------------------------------------------------------------------------
    def _emit(self, item: Callable[[], None]) -> None:
        with self._outbox_lock:
            self._outbox.append(item)

    def _flush(self) -> None:
        with self._outbox_lock:
            batch, self._outbox = self._outbox, []
        if batch:
            self._loop.call_soon_threadsafe(_run_all, batch)

    def _run(self, started: asyncio.Future[None]) -> None:
        try:
            self._core.start()
        except BaseException as exc:
            err = exc if isinstance(exc, EngineError) else EngineError(_describe(exc))
            try:
                self._core.shutdown(0)
            except Exception:
                log.exception("cleanup after a failed start")
            self._loop.call_soon_threadsafe(_settle, started, None, err)
            return
        self._loop.call_soon_threadsafe(_settle, started, None, None)
        try:
            while not self._stop.is_set():
                self._core.handle_events(0 if not self._commands.empty() else 10)
                self._run_commands()
                # A command can end a call synchronously (hangup): close its files before the
                # CallEnded event leaves, so the application finds final recordings.
                self._core.reap()
                self._flush()
        except BaseException:
            log.exception("engine loop crashed")
        finally:
            try:
                self._run_commands()
                self._core.shutdown()
            except Exception:
                log.exception("engine shutdown failed")
            self._refuse_commands()
            self._flush()
            self._emit(lambda: _settle(self._stopped, None, None))
            self._flush()

    def _refuse_commands(self) -> None:
        while True:
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._emit(functools.partial(_settle, item[1], None, EngineStopped("the SIP engine stopped")))

    def _run_commands(self) -> None:
        while True:
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                return
            if item is None:
                continue
            fn, fut = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except pj.Error as exc:
                error = EngineError(_describe(exc))
            except Exception as exc:
                error = exc
            self._emit(functools.partial(_settle, fut, result, error))

    # -- asyncio side --------------------------------------------------------------------------
    async def start(self) -> None:
        started: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="sip-engine", daemon=True)
        self._thread.start()
        try:
            await started
        except BaseException:
            await asyncio.to_thread(self._thread.join)
            raise

    async def _submit(self, fn: Callable[..., T], *args: Any) -> T:
        if self._stop.is_set() or self._thread is None:
            raise EngineStopped("the SIP engine is stopped")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._commands.put((lambda: fn(*args), fut))
        return await fut

    async def answer(self, call: int, code: int = 200) -> None:
        await self._submit(self._core.answer, call, code)

    async def hangup(self, call: int, code: int = 603) -> None:
        await self._submit(self._core.hangup, call, code)

    async def play(self, call: int, path: str) -> int:
        return await self._submit(self._core.play, call, path)

    async def record(self, call: int, path: str) -> None:
        await self._submit(self._core.record, call, path)

    async def open_tap(
        self,
        call: int,
        *,
        chunk_ms: int = 40,
        buffer_ms: int = 2000,
        listen: bool = True,
        speak: bool = True,
        max_pending_s: float = 2.0,
        group: TapGroup | None = None,
    ) -> Tap:
        """Attach a live-audio tap to ``call`` (see voice/tap.py); ``tap.id`` names it.

        ``listen``: frames of ``chunk_ms`` of what the call says; ``speak``: the call hears what
        is written. ``buffer_ms`` bounds each native ring, ``max_pending_s`` the frames waiting
        for a slow reader. The tap closes by itself when the call ends or the engine stops.
        With ``group`` (see ``tap_group``), the group's reader gets its audio, in the group's
        chunks, instead of the tap's own iterator. On a recorded call the first listening tap
        reads the recording port's frames (no second bridge port). A call that nothing listens
        to (no recording, no tap) is not read by the bridge meanwhile: its jitter buffer fills,
        and a tap attached later starts about half a second behind, catching up over seconds.
        """
        if group is not None and group not in self._tap_groups:
            raise TapError("that TapGroup belongs to another engine")
        tap_id, stream = await self._submit(self._core.open_tap, call, buffer_ms, listen, speak)
        if group is not None:
            return group._add(Tap(tap_id, call, stream, group.chunk_ms, 0, self.close_tap, speak, group))
        if self._tap_pump is None:
            self._tap_pump = TapPump(self._loop)
        return self._tap_pump.add(Tap(tap_id, call, stream, chunk_ms, max_pending_s, self.close_tap, speak))

    def tap_group(self, *, chunk_ms: int = 40, max_pending_s: float = 2.0) -> TapGroup:
        """A reader for many taps at once: one ``TapBatch`` per bridge tick (voice/tap_group.py).

        ``max_pending_s`` bounds the batches waiting for a slow reader. The group ends when it
        is closed (which closes its taps) or the engine stops.
        """
        if self._thread is None:
            raise EngineStopped("the engine is not running")
        group = TapGroup(self._loop, self.config.clock_rate, chunk_ms, max_pending_s)
        self._tap_groups.append(group)
        return group

    async def close_tap(self, tap: int) -> bool:
        """Detach a tap (the call goes on); False if it was already gone."""
        return await self._submit(self._core.close_tap, tap)

    async def stop(self) -> None:
        """Hang up every call, finalize recordings, destroy pjsua2 on its thread, join it."""
        if self._thread is None:
            return
        if not self._stop.is_set():
            self._core.stopping = True
            self._stop.set()
            self._commands.put(None)
        await asyncio.shield(self._stopped)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        if self._tap_pump is not None:  # every tap is closed now: deliver their ends
            await self._tap_pump.stop()
            self._tap_pump = None
        for group in self._tap_groups:
            await group._stop()
        self._tap_groups.clear()


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _run_all(batch: list[Callable[[], None]]) -> None:
    for item in batch:
        item()

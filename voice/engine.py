"""The SIP engine: one thread that owns the pjsua2 Endpoint and every pjsua2 object.

Threading (see ARCHITECTURE.md): pjsua2 runs with ``threadCnt = 0`` and ``mainThreadOnly``; the
engine thread loops over ``libHandleEvents`` and a command queue. ``Engine`` is the asyncio face:
each public coroutine marshals one command onto the engine thread and awaits its result. Results
and events go back in order, batched into one ``call_soon_threadsafe`` per loop turn. The
thread's state and call control live in voice/core.py, a call's media objects in voice/media.py,
bridge ports (conference members with no SIP call: browser agents, supervisors) and one-way
connections in voice/ports.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pjsua2 as pj

from .config import EngineConfig
from .core import EngineCore, describe
from .events import EngineEvent
from .exceptions import CallGone, EngineError, EngineStopped, TapError
from .ports import PortAudio, PortPump
from .tap import Tap, TapPump
from .tap_group import TapGroup

log = logging.getLogger("voice.engine")
T = TypeVar("T")


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
        self._core = EngineCore(config, self._emit)
        self._core.deliver = self.events.put_nowait
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self._tap_pump: TapPump | None = None
        self._tap_groups: list[TapGroup] = []
        self._port_streams: dict[int, Any] = {}  # open ports' MediaTapStreams (loop side)
        self._port_audio: dict[int, PortAudio] = {}
        self._port_pump: PortPump | None = None

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
            err = exc if isinstance(exc, EngineError) else EngineError(describe(exc))
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
                self._core.ports.close_all()  # (before the calls: nothing of a port outlives the bridge)
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
                error = EngineError(describe(exc))
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
        """``call`` is the engine's id from ``IncomingCall.call``; an ended call raises CallGone."""
        await self._submit(self._core.answer, call, code)

    async def hangup(self, call: int, code: int = 603) -> None:
        """End the call with ``code`` (a final response before the answer of an incoming call,
        else a BYE). A placed call not answered yet is CANCELled instead (CallEnded: 487)."""
        await self._submit(self._core.hangup, call, code)

    @property
    def calls_up(self) -> int:
        """SIP calls the engine holds now, both ways (callers, agents' legs, callbacks), against
        ``config.max_calls``. (A length read of the engine thread's table: a snapshot, never a lock.)"""
        return len(self._core.calls)

    async def play(self, call: int, path: str, *, loop: bool = False, start_s: float = 0.0) -> int:
        """Play a WAV to the call; the playback's id. Exactly one ``PlaybackDone`` follows
        (none if the call ends first). ``loop``: over and over (hold music), with no deadline,
        until ``stop_playback``. ``start_s``: begin that far into the file (see
        ``playback_position``), e.g. to resume music where an announcement stopped it."""
        return await self._submit(self._core.play, call, path, loop, start_s)

    async def playback_position(self, call: int, playback: int) -> float | None:
        """Seconds into its file a playback has reached (within the current pass of a looping
        one); None if it has ended. An ended call raises CallGone."""
        return await self._submit(self._core.playback_position, call, playback)

    async def dial(self, uri: str, *, from_uri: str = "", headers: Mapping[str, str] | None = None,
                   sink: Callable[[EngineEvent], None]) -> int:
        """Place a call to ``uri`` (sip:/sips:, printable ASCII, an IP host) from the server's
        account, or with ``from_uri`` as its From; ``headers`` are added to the INVITE. Returns
        the call's engine id (never reused). Bad input raises EngineError, and so does pjsua
        refusing to place it (every line busy...): then no event of it is ever delivered.

        Every event of the call goes to ``sink`` (called on the loop, in order), never to
        ``events``: CallProgress (180/183), CallAnswered, MediaReady (after the answer),
        CallHeld, DtmfReceived, PlaybackDone, TransferRefused, CallEnded (its ``status_code``
        the final response: 486, 480, 408, 487 after a cancel, 603...). Events can reach the sink
        before this coroutine returns (a quick rejection even its CallEnded): key them by
        the id only once it is known, or let the sink queue them. ``hangup`` before the answer
        CANCELs (whatever its code). The media timeout counts from the answer; the maximum
        call duration from the INVITE (see voice/outbound.py)."""
        return await self._submit(self._core.dial, uri, from_uri, dict(headers or {}), sink)

    async def bridge(self, a: int, b: int) -> None:
        """Two-way audio between calls (or bridge ports) ``a`` and ``b``: each far end hears the
        other (``connect`` both ways; ``unbridge`` removes both). Idempotent; kept across hold,
        resume and re-INVITEs of either call; when either ends, the other goes on. Each call's
        recording keeps its own far end only (voice/bridge.py). An ended call raises CallGone."""
        await self._submit(self._core.bridge, a, b)

    async def unbridge(self, a: int, b: int) -> bool:
        """Undo ``bridge``; False if they were not bridged (or one has ended)."""
        return await self._submit(self._core.unbridge, a, b)

    async def stop_playback(self, call: int, playback: int) -> bool:
        """Stop a playback now (barge-in). True if it was playing: its ``PlaybackDone``
        (``stopped=True``) follows. False if it had ended already (its PlaybackDone is out)."""
        return await self._submit(self._core.stop_playback, call, playback)

    async def record(self, call: int, path: str) -> None:
        """Record what the call says into a WAV at ``path``. The first recording is the call's
        own (final when ``CallEnded`` arrives, listed in its ``recordings``); more can run at
        once (a voicemail), each ended by ``stop_recording`` or by the call's end."""
        await self._submit(self._core.record, call, path)

    async def stop_recording(self, call: int, path: str) -> float:
        """Close the recording into ``path`` now; its length in seconds. The file is final when
        this returns, and is no longer listed in ``CallEnded.recordings``."""
        return await self._submit(self._core.stop_recording, call, path)

    async def pause_recording(self, call: int) -> bool:
        """From now on every recording of the call records silence (real time goes on: the
        pause is a stretch of zeros), including recordings started while paused; taps still
        hear the caller. False if it was paused already."""
        return await self._submit(self._core.set_recording_paused, call, True)

    async def resume_recording(self, call: int) -> bool:
        """Record the caller again; False if it was not paused."""
        return await self._submit(self._core.set_recording_paused, call, False)

    async def transfer(self, call: int, uri: str) -> None:
        """Blind transfer: send the caller a REFER to ``uri`` (sip:, sips: or tel:). The
        outcome arrives as ``TransferDone`` (its rejection of the REFER, or the status of the
        call it placed); the call stays up meanwhile, and after a successful transfer it is
        the application's to hang up. Whether ``uri`` is allowed is the application's
        decision. Raises EngineError for a malformed URI or while a transfer is pending."""
        await self._submit(self._core.transfer, call, uri)

    async def send_dtmf(self, call: int, digits: str, method: str = "rfc4733") -> None:
        """Send keys (1-64 of 0-9 * # A-D) to the far end: ``rfc4733`` telephone-events (the
        far end must have offered them) or ``info`` (SIP INFO, application/dtmf-relay)."""
        await self._submit(self._core.send_dtmf, call, digits, method)

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

    # -- bridge ports and one-way connections (voice/ports.py) ----------------------------------------
    async def open_port(self, *, label: str = "", buffer_ms: int = 500) -> int:
        """A conference-bridge member with no SIP call (a browser agent, a supervisor); its id,
        in the call-id space and never reused. bridge/unbridge, connect/disconnect, play,
        stop_playback, record/stop_recording (what the port says), pause/resume_recording and
        open_tap accept it like a call; call control refuses it. ``buffer_ms`` bounds each of
        its rings (what it hears, what it says). No SIP event ever names it."""
        port, stream = await self._submit(self._core.ports.open, label, buffer_ms)
        self._port_streams[port] = stream
        return port

    async def close_port(self, port: int) -> bool:
        """Take the port off the bridge: its connections go, its recordings are final, its
        PortAudio ends once drained. False if it was closed already (or is not a port)."""
        closed = await self._submit(self._core.ports.close, port)
        self._port_streams.pop(port, None)
        audio = self._port_audio.pop(port, None)
        if audio is not None:
            await audio.wait_closed()
        return closed

    async def connect(self, src: int, dst: int) -> None:
        """One way: ``dst``'s far end hears ``src``'s far end (``bridge`` is both ways). Calls or
        ports; idempotent; kept across media changes like a bridge. A member hears the mix of
        everything connected to it. An ended member raises CallGone."""
        await self._submit(self._core.ports.connect, src, dst)

    async def disconnect(self, src: int, dst: int) -> bool:
        """Undo ``connect(src, dst)``; False if not connected that way (or either has ended)."""
        return await self._submit(self._core.ports.disconnect, src, dst)

    async def hears(self, dst: int) -> tuple[int, ...]:
        """Ids of the calls and ports connected to ``dst`` (what its far end hears)."""
        return await self._submit(self._core.ports.hears, dst)

    def port_audio(self, port: int, *, max_pending_s: float = 1.0) -> PortAudio:
        """The port's audio on the loop (voice/ports.py): 20 ms frames of what it hears (the mix of
        what is connected to it) and a bounded ring for what it says. One per port: asking again
        returns the same object. CallGone if the port is not open."""
        audio = self._port_audio.get(port)
        if audio is not None:
            return audio
        stream = self._port_streams.get(port)
        if stream is None or self._thread is None:
            raise CallGone(f"no open bridge port {port}")
        if self._port_pump is None:
            self._port_pump = PortPump(self._loop)
        audio = PortAudio(port, stream, max_pending_s, self.close_port)
        self._port_audio[port] = audio
        return self._port_pump.add_port(audio)

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
        if self._port_pump is not None:
            await self._port_pump.stop()
            self._port_pump = None
        self._port_streams.clear()
        self._port_audio.clear()


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

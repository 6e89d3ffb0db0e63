"""Live call audio in Python: asyncio readers and writers over the engine's media taps.

A tap is the project's own pjmedia port (``pjsua2.MediaTap``, native/pjsua2/tap/) on the
conference bridge, connected to one call: it keeps what the call says in one bounded ring and
plays what the application writes into another. This module is its asyncio face::

    tap = await engine.open_tap(call, chunk_ms=40)
    async for frame in tap:            # TapFrame: 40 ms of int16 PCM, position, time
        ...
    await tap.write(pcm)               # the caller hears it (paced to real time)
    await tap.close()                  # or it closes when the call ends / the engine stops

Threads: the ``MediaTap`` itself lives on the engine thread (created, connected and destroyed
there). What it hears reaches the event loop through one native ``MediaTapHub`` per
``TapPump`` (one per engine): the chunks of every tap are aligned to the bridge's clock, each
tap hands its chunk to the hub as the bridge completes it, and the hub signals an eventfd once
that tick is complete; the pump then takes them all with one binding call (``HubPump``). No
thread hand-off, no timer and no binding call per tap. The media clock never waits on Python:
the native buffers are bounded, drop their oldest audio when full and play silence when
empty, counting both (``Tap.stats()``). A consumer that stops reading only loses its own oldest
frames (``TapStats.frames_dropped``); other calls are unaffected.

A recorded call already has a port of ours on the bridge (``Engine.record``): the first
listening tap reads that port's frames instead of adding a port. For a tap on every call, one
reader for all of them (``voice.tap_group``) costs a fraction of a coroutine per tap.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np
import pjsua2 as pj

from .audio import Pcm
from .exceptions import EngineStopped, TapError

log = logging.getLogger("voice.tap")

_PASS_MIN, _PASS_MAX = 16000, 1 << 20  # samples a pass may read, at first and at most
_PASS_RECORDS = 64  # chunks a pass may read, at first (then twice the biggest pass so far)
_POOL = 8  # pass buffers kept for reuse: a buffer is reused once no frame or batch refers to it
_FIELDS = pj.MediaTapHub.READY_FIELDS  # key, offset, samples, position, time (ns), ended
T = TypeVar("T")


class TapFrame(NamedTuple):
    """A chunk of what the call says, as the conference bridge delivered it to the tap."""

    pcm: Pcm  # int16 mono samples at ``rate`` (read-only use: frames may share one array)
    rate: int
    position: int  # index of the first sample since the tap opened (a jump = audio dropped)
    time: float  # time.monotonic() at which the bridge delivered the first sample

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.rate

    @property
    def end_position(self) -> int:
        return self.position + len(self.pcm)


# TapFrame((pcm, rate, position, time)) without the Python-level __new__ of a NamedTuple: one of
# these per chunk of every tap.
_frame = functools.partial(tuple.__new__, TapFrame)


def split_frames(audio: Pcm, start: int, n: int, chunk: int, rate: int, pos: int, t0: float) -> Iterator[TapFrame]:
    """``audio[start : start + n]``, one tap's samples from ``pos`` (delivered at ``t0``), as
    frames of ``chunk`` samples (the last one shorter if ``n`` is not a multiple)."""
    for off in range(0, n, chunk):
        yield _frame((audio[start + off : start + min(n, off + chunk)], rate, pos + off, t0 + off / rate))


class Handoff(Generic[T]):
    """Items for one reader on the event loop, handed over without a coroutine per item.

    ``next()`` is its ``__anext__``: a reader that has to wait awaits the very future ``put``
    resolves with its item. Otherwise items queue, at most ``limit``: a reader that falls
    behind loses the oldest ones (``dropped``). After ``end()`` the queue drains, then stops.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, owner: str) -> None:
        self.items: collections.deque[T] = collections.deque()
        self.limit = max(1, limit)
        self.dropped = 0
        self.ended = False
        self._loop = loop
        self._owner = owner
        self._waiter: asyncio.Future[T] | None = None

    def __aiter__(self) -> Handoff[T]:
        return self

    def next(self) -> asyncio.Future[T]:
        if self.items:
            done = self._loop.create_future()
            done.set_result(self.items.popleft())
            return done
        if self.ended:
            raise StopAsyncIteration
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError(f"{self._owner} already has a reader waiting")
        self._waiter = self._loop.create_future()
        return self._waiter

    __anext__ = next  # `async for item in handoff`, with no frame in between

    async def read(self) -> T | None:
        """The next item; None once ended and drained."""
        try:
            return await self.next()
        except StopAsyncIteration:
            return None

    def put(self, item: T) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # (a cancelled reader leaves a cancelled future)
                waiter.set_result(item)
                return
        items = self.items
        items.append(item)
        if len(items) > self.limit:
            items.popleft()
            self.dropped += 1

    def end(self) -> None:
        self.ended = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(StopAsyncIteration())


@dataclass(frozen=True, slots=True)
class TapStats:
    """Counters of one tap, in samples unless named otherwise (see media_tap.hpp)."""

    rate: int
    heard: int  # samples the bridge delivered (what the call said)
    read: int  # ...that the pump read
    dropped: int  # ...dropped because the native listen ring was full
    overflows: int  # bridge frames that had to drop older samples
    buffered: int  # samples waiting in the native listen ring
    frames_dropped: int  # frames dropped because the Python reader fell behind
    written: int  # samples the application wrote (for the call to hear)
    played: int  # ...that the bridge took
    write_dropped: int  # ...dropped because the speak ring was full
    write_overflows: int  # writes that had to drop older samples
    flushed: int  # samples discarded by flush()
    underflows: int  # times a written stream ran dry before end_write()
    silence: int  # silence samples played inside those gaps
    write_buffered: int  # samples waiting to be played
    write_started_at: float  # time.monotonic() the call began to hear the latest written stream
    closed: bool


class Tap:
    """One live-audio tap on one call. Created by ``Engine.open_tap``; use on the event loop.

    Iterate it (``async for frame in tap``) or ``await tap.read()`` to hear the call; ``write``
    to speak into it. Iteration ends once the tap is closed and everything buffered is read.
    """

    def __init__(
        self,
        tap_id: int,
        call: int,
        stream: Any,
        chunk_ms: int,
        max_pending_s: float,
        closer: Callable[[int], Awaitable[bool]],
        speaks: bool = True,
        group: object | None = None,
    ) -> None:
        self.id = tap_id
        self.group = group  # a voice.tap_group.TapGroup reads this tap's audio instead
        self.call = call
        self.speaks = speaks  # connected to the call's ear: writes are heard
        self.rate: int = stream.getClockRate()
        self.chunk_samples = max(1, self.rate * chunk_ms // 1000)
        self._stream = stream  # pjsua2.MediaTapStream: safe on any thread, outlives the tap
        self._closer = closer
        max_frames = int(max_pending_s * self.rate / self.chunk_samples)
        self._frames: Handoff[TapFrame] = Handoff(asyncio.get_running_loop(), max_frames, f"tap {tap_id}")
        self._ended_evt = asyncio.Event()

    # -- hearing the call -----------------------------------------------------------------------
    def __aiter__(self) -> Handoff[TapFrame]:
        # The frames' own hand-off (see Handoff): no Python frame of ours between the reader and
        # its next chunk, the per-frame cost that dominates a tap on every call.
        return self._own_frames()

    def __anext__(self) -> asyncio.Future[TapFrame]:
        return self._own_frames().next()

    async def read(self) -> TapFrame | None:
        """The next chunk of what the call says; None once the tap is closed and drained."""
        return await self._own_frames().read()

    def _own_frames(self) -> Handoff[TapFrame]:
        if self.group is not None:
            raise TapError(f"tap {self.id} is read through its TapGroup, not on its own")
        return self._frames

    def read_nowait(self) -> list[TapFrame]:
        """Every frame already delivered (possibly none), oldest first."""
        frames = list(self._frames.items)
        self._frames.items.clear()
        return frames

    # -- speaking into the call -----------------------------------------------------------------
    def write_nowait(self, pcm: Pcm | bytes) -> int:
        """Queue int16 PCM at ``rate`` for the call to hear, without waiting.

        If more than the native ring holds is queued, the oldest unplayed audio is dropped (and
        counted). Returns the samples queued, 0 if the tap is closed.
        """
        if not self.speaks:
            raise TapError(f"tap {self.id} was opened with speak=False: nobody would hear this")
        data = np.ascontiguousarray(pcm, dtype=np.int16) if not isinstance(pcm, bytes) else pcm
        return max(0, int(self._stream.write(data)))

    async def write(self, pcm: Pcm | bytes, lead_s: float = 0.1) -> int:
        """Queue PCM paced to real time: wait while more than ``lead_s`` is still unplayed.

        Long audio is fed in chunks, so it never overflows the ring. Returns the samples queued
        (fewer if the tap closed meanwhile).
        """
        samples = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, bytes) else pcm
        lead = max(self.chunk_samples, int(lead_s * self.rate))
        step = max(lead, self.chunk_samples)
        queued = 0
        for start in range(0, len(samples), step):
            ahead = int(self._stream.speakBuffered())
            if ahead > lead:  # the ring drains at exactly `rate` samples per second
                await asyncio.sleep((ahead - lead) / self.rate)
            n = self.write_nowait(samples[start : start + step])
            if n == 0:
                break
            queued += n
        return queued

    def end_write(self) -> None:
        """The written audio is complete: silence after it is not counted as an underflow."""
        self._stream.endWrite()

    def flush(self) -> int:
        """Drop the audio written but not yet played (barge-in); returns the samples dropped."""
        return int(self._stream.flushSpeak())

    # -- life cycle -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the tap has left the bridge and every frame was delivered to this object."""
        return self._frames.ended

    async def wait_closed(self) -> None:
        await self._ended_evt.wait()

    async def close(self) -> None:
        """Detach the tap from its call (the call goes on). Frames already read stay readable."""
        if not self._frames.ended:
            with contextlib.suppress(EngineStopped):  # stopping: Engine.stop() ends every tap
                await self._closer(self.id)
            await self._ended_evt.wait()

    def stats(self) -> TapStats:
        s = self._stream.getStats()
        return TapStats(
            rate=s.clockRate,
            heard=s.listenSamples,
            read=s.listenRead,
            dropped=s.listenDropped,
            overflows=s.listenOverflows,
            buffered=s.listenBuffered,
            frames_dropped=self._frames.dropped,
            written=s.speakWritten,
            played=s.speakPlayed,
            write_dropped=s.speakDropped,
            write_overflows=s.speakOverflows,
            flushed=s.speakFlushed,
            underflows=s.speakUnderflows,
            silence=s.speakSilence,
            write_buffered=s.speakBuffered,
            write_started_at=s.speakStartedAt,
            closed=bool(s.closed),
        )

    # -- called by the pump, on the event loop --------------------------------------------------
    def _end(self) -> None:
        self._frames.end()
        self._ended_evt.set()


class HubPump:
    """One native ``MediaTapHub`` on the event loop: takes its taps' chunks once per chunk period.

    No thread: the taps' chunks are aligned to the bridge's clock, so all of them complete on
    the same tick. The hub's eventfd wakes the loop once that tick is complete, and the pump
    reads them all with one binding call (``MediaTapHub.readReady``) into one fresh buffer that
    the frames then share. What happens to that pass is ``_take``'s business: ``TapPump``
    hands frames to each tap's reader, ``voice.tap_group`` hands the whole pass to one reader.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._hub = pj.MediaTapHub()
        self._fd: int = self._hub.fileno()
        self._taps: dict[int, Tap] = {}
        self.passes = self.records = 0  # what the pump did
        self._room = _PASS_MIN  # samples a pass reads at most: twice the biggest pass so far
        self._room_records = _PASS_RECORDS  # ...and taps
        self._pool: list[Pcm] = []  # pass buffers, reused when nothing refers to them any more
        if self._fd < 0:
            raise TapError("cannot create the tap hub's eventfd")
        loop.add_reader(self._fd, self._on_signal)

    def add(self, tap: Tap) -> Tap:
        """Start pumping ``tap`` (event loop thread)."""
        self._taps[tap.id] = tap
        # From here on the native stream posts tap.id to the hub when a chunk is ready.
        tap._stream.setHub(self._hub, tap.id, tap.chunk_samples)
        return tap

    async def stop(self) -> None:
        """Deliver what the (already closed) taps still hold and end every reader."""
        self._loop.remove_reader(self._fd)
        while self._pump():
            pass
        for tap in list(self._taps.values()):  # not reported closed: the engine is gone anyway
            tap._end()
        self._taps.clear()

    def _on_signal(self) -> None:
        try:
            os.read(self._fd, 8)  # level-triggered: drain it, then read every ready tap
        except BlockingIOError:
            pass
        self._pump()

    def _pump(self) -> int:
        """One pass: read every ready tap (what does not fit is signalled again); their count."""
        pcm = self._buffer()
        meta = np.empty(self._room_records * _FIELDS, dtype=np.int64)  # the pass's rows: kept by _take
        records = self._hub.readReady(pcm, meta)
        if records:
            rows = meta[: records * _FIELDS].reshape(records, _FIELDS)
            used = int(rows[-1, 1]) + int(rows[-1, 2])
            # Room for twice the biggest pass so far: a pass that does not fit costs another one.
            self._room = min(_PASS_MAX, max(self._room, 2 * used))
            self._room_records = max(self._room_records, 2 * records)
            self._take(rows, pcm[:used])
            self.records += records
        self.passes += 1
        return records

    def _buffer(self) -> Pcm:
        """A buffer of ``_room`` samples for a pass: a pooled one that no frame or batch refers
        to any more (the same few buffers pass after pass stay in the CPU's caches)."""
        for buf in self._pool:
            if len(buf) >= self._room and sys.getrefcount(buf) == 3:  # the pool, buf, the argument
                return buf
        buf = np.empty(self._room, dtype=np.int16)
        if len(self._pool) < _POOL:
            self._pool.append(buf)
        else:  # readers keep many passes: replace the oldest (frames keep it alive as long as they need)
            self._pool = [*self._pool[1:], buf]
        return buf

    def _take(self, rows: np.ndarray, audio: Pcm) -> None:
        """One pass: int64 ``rows`` of [tap id, offset in audio, samples, position, time in ns,
        ended], ``audio`` the samples of all of them."""
        raise NotImplementedError


class TapPump(HubPump):
    """The engine's pump for taps read one by one (``async for frame in tap``)."""

    def _take(self, rows: np.ndarray, audio: Pcm) -> None:
        taps = self._taps
        for key, at, n, pos, t_ns, ended in rows.tolist():
            tap = taps.get(key)
            if tap is None:
                continue
            try:
                if ended:
                    del taps[key]
                    tap._end()
                elif n == tap.chunk_samples:
                    tap._frames.put(_frame((audio[at : at + n], tap.rate, pos, t_ns * 1e-9)))
                else:  # the short tail of a closed tap
                    for frame in split_frames(audio, at, n, tap.chunk_samples, tap.rate, pos, t_ns * 1e-9):
                        tap._frames.put(frame)
            except Exception:  # never let one tap stop the others
                log.exception("delivering audio of tap %s (call %s) failed", tap.id, tap.call)

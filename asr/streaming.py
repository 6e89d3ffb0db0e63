"""The asyncio face of grammar recognition: many listeners, one worker thread doing the decoding.

    recognizer = StreamingRecognizer(config)
    await recognizer.start()                                   # loads the model on the worker
    listener = await recognizer.open(("sales", "billing"), "en", rate=8000)
    listener.feed(pcm)                                         # from the loop, per media frame: never blocks
    async for event in listener: ...                           # SpeechBegan, then PhraseHeard; then it ends
    await listener.close()                                     # the final result if speech was cut short
    await recognizer.aclose()

Threading. Every engine call (model load, decoder creation, decoding) happens on the recognizer's one worker
thread, so the event loop never runs a decoder. ``feed`` appends the chunk to the listener's own bounded
backlog (``AsrConfig.listener_backlog`` seconds; when the worker lags, the oldest chunks are dropped and
counted in ``listener.dropped``) and marks the listener ready, without waking the worker: every 20 ms tick the
worker decodes each ready listener's whole backlog in one call (waking it per frame cost a GIL hand-over per
frame, which stalled the loop by tens of ms with only ten listeners). Events come back with one
``loop.call_soon_threadsafe`` per chunk that produced any (at most two per listen), never a future per frame.
pocketsphinx holds the GIL while it decodes (measured: two threads decode no faster than one), so this thread
shares one core with the loop; bench/asr_stream.py measures how many listeners that core sustains.
``close()`` waits at most ``AsrConfig.close_timeout``: a stuck engine never holds a call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np

from asr.config import AsrConfig
from asr.engines import load_engine
from asr.exceptions import AsrError, RecognizerClosed
from asr.session import PhraseHeard, PhraseSession, SpeechEvent, open_phrase_session

log = logging.getLogger(__name__)

_END = object()
_TICK = 0.02        # the worker decodes queued audio once per tick: one GIL hand-over per tick, not per frame


class Listener:
    """One listen on a StreamingRecognizer: ``feed`` audio, read events, ``close``."""

    def __init__(self, recognizer: StreamingRecognizer, session: PhraseSession,
                 on_event: Callable[[SpeechEvent], None] | None) -> None:
        self._recognizer = recognizer
        self._session = session
        self._on_event = on_event
        self._lock = threading.Lock()
        self._chunks: deque[np.ndarray] = deque()
        self._pending = 0
        self._limit = int(recognizer.config.listener_backlog * session.rate)
        self._scheduled = False
        self._closed = False                # no more audio accepted (set on the loop or by the worker)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ended = False
        self.dropped = 0                    # chunks dropped because the worker lagged
        self.result: PhraseHeard | None = None
        self.rate = session.rate

    # --- loop side -------------------------------------------------------------------------------------------
    def feed(self, pcm: np.ndarray) -> None:
        """Queue one chunk of int16 mono PCM; never blocks. Ignored once the listener finished or closed."""
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise AsrError("feed() takes a 1-D numpy int16 array of mono PCM")
        with self._lock:
            if self._closed:
                return
            self._chunks.append(pcm)
            self._pending += len(pcm)
            while self._pending > self._limit and len(self._chunks) > 1:
                self._pending -= len(self._chunks.popleft())
                self.dropped += 1
            if self._scheduled:
                return
            self._scheduled = True
        self._recognizer._submit(self)

    @property
    def finished(self) -> bool:
        """True once the final PhraseHeard came (or the listener was closed)."""
        return self._closed

    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[SpeechEvent]:
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)      # later iterations end at once too
                return
            yield item

    async def close(self) -> PhraseHeard | None:
        """Stop listening: the final result of an utterance in progress, else None. Returns within
        ``close_timeout`` even if the engine is stuck (then None). Idempotent."""
        with self._lock:
            already = self._closed
            self._closed = True
            self._chunks.clear()
            self._pending = 0
        if already:
            return None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[PhraseHeard | None] = loop.create_future()
        self._recognizer._submit_call(self._session.close, fut)
        try:
            result = await asyncio.wait_for(fut, self._recognizer.config.close_timeout)
        except TimeoutError:
            log.warning("asr close timed out after %.1fs: engine busy", self._recognizer.config.close_timeout)
            result = None
        except Exception:
            log.exception("asr close failed; the listen ends with no result")
            result = None
        if result is not None:
            self._deliver([result])
        self._end()
        return result

    def _deliver(self, events: list[SpeechEvent]) -> None:
        for event in events:
            if isinstance(event, PhraseHeard):
                self.result = event
            self._queue.put_nowait(event)
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    log.exception("asr on_event callback failed")
        if any(isinstance(e, PhraseHeard) for e in events):
            self._end()

    def _end(self) -> None:
        with self._lock:
            self._closed = True
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)
            self._recognizer._listeners.discard(self)

    # --- worker side -----------------------------------------------------------------------------------------
    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            chunks = list(self._chunks)
            self._chunks.clear()
            self._pending = 0
            self._scheduled = False
        if not chunks or self._session.finished:
            return
        pcm = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        try:
            events = self._session.feed(pcm)
        except Exception:
            log.exception("asr decoding failed; the listen ends with no match")
            self._session.close()
            events = [PhraseHeard(phrase=None, confidence=0.0, at=round(self._session.elapsed, 3))]
        if events:
            if any(isinstance(e, PhraseHeard) for e in events):
                with self._lock:
                    self._closed = True
            loop.call_soon_threadsafe(self._deliver, events)


class StreamingRecognizer:
    """Runs PhraseSessions for many listeners on one worker thread; one per process (or per engine config)."""

    def __init__(self, config: AsrConfig, *, name: str = "asr-worker") -> None:
        self.config = config
        self._name = name
        self._cond = threading.Condition()
        self._work: deque[Any] = deque()               # commands: open, close, load (run at once)
        self._ready: deque[Listener] = deque()         # listeners with queued audio (run once per tick)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: set[Listener] = set()

    async def __aenter__(self) -> StreamingRecognizer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the worker and load the engine's model on it (raises its AsrConfigError here)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._worker, name=self._name, daemon=True)
        self._thread.start()
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._submit_call(lambda: load_engine(self.config), fut)
        try:
            await fut
        except BaseException:
            await self.aclose()
            raise

    async def open(self, phrases: Sequence[str], language: str = "en", rate: int = 8000,
                   on_event: Callable[[SpeechEvent], None] | None = None) -> Listener:
        """A new listener for one of ``phrases``; raises the session's AsrError (unknown words, language...)."""
        if self._thread is None:
            await self.start()
        if self._stopping:
            raise RecognizerClosed("the streaming recognizer is closed")
        assert self._loop is not None
        fut: asyncio.Future[PhraseSession] = self._loop.create_future()
        phrases = tuple(phrases)
        self._submit_call(lambda: open_phrase_session(self.config, phrases, language, rate), fut)
        session = await fut
        listener = Listener(self, session, on_event)
        self._listeners.add(listener)
        return listener

    async def aclose(self) -> None:
        """Stop the worker (sessions still open are closed on it) and wait for it to end."""
        thread, self._thread = self._thread, None
        listeners = list(self._listeners)
        with self._cond:
            for listener in listeners:
                with listener._lock:
                    listener._closed = True
                self._work.append(listener._session.close)
            self._stopping = True
            self._cond.notify()
        if thread is not None:
            await asyncio.to_thread(thread.join, 5.0)
        for listener in listeners:
            listener._end()

    def backlog(self) -> int:
        """Work items waiting for the worker (listeners with audio, commands)."""
        with self._cond:
            return len(self._work) + len(self._ready)

    # --- plumbing ---------------------------------------------------------------------------------------------
    def _submit(self, item: Any) -> None:
        """Queue a command (woken at once) or a listener with audio (picked up at the next tick)."""
        with self._cond:
            if self._stopping:
                return
            if isinstance(item, Listener):
                self._ready.append(item)
            else:
                self._work.append(item)
                self._cond.notify()

    def _submit_call(self, fn: Callable[[], Any], fut: asyncio.Future[Any]) -> None:
        if self._stopping:
            raise RecognizerClosed("the streaming recognizer is closed")
        self._submit((fn, fut))

    def _worker(self) -> None:
        loop = self._loop
        assert loop is not None
        next_tick = time.monotonic()
        while True:
            with self._cond:
                while not self._work and not self._stopping:
                    wait = next_tick - time.monotonic()
                    if wait <= 0 and self._ready:
                        break
                    self._cond.wait(max(wait, 0.0) if self._ready else _TICK)
                    if not self._ready:
                        next_tick = time.monotonic() + _TICK
                if self._stopping:
                    pending = [*self._work, *self._ready]
                    self._work.clear()
                    self._ready.clear()
                    break
                if self._work:
                    batch = [self._work.popleft()]
                else:
                    batch = list(self._ready)
                    self._ready.clear()
                    next_tick = time.monotonic() + _TICK
            for item in batch:
                self._do(item, loop)
        for item in pending:                                        # close sessions; fail pending calls
            if isinstance(item, Listener):
                item._session.close()
            elif callable(item):
                item()
            else:
                _, fut = item
                loop.call_soon_threadsafe(_resolve, fut, None, RecognizerClosed("recognizer closed"))

    def _do(self, item: Any, loop: asyncio.AbstractEventLoop) -> None:
        if isinstance(item, Listener):
            item._run(loop)
            return
        fn, fut = item
        try:
            result = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(_resolve, fut, None, exc)
        else:
            loop.call_soon_threadsafe(_resolve, fut, result, None)


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        if isinstance(result, PhraseSession):
            result.close()                  # the opener gave up waiting: give the decoder back
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)

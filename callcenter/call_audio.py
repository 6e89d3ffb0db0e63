"""What the IVR hears of one call: in-band DTMF and speech, from the call's media tap.

A tap is opened only when something listens: in-band DTMF detection (a trunk that negotiated no
telephone-event, or ``[ivr] inband_dtmf = "always"``) or a `speech` node. One reader task
per call feeds both the Goertzel detector (voice/dtmf.py) and the current speech session
(asr/streaming.py); what they find is posted to the call's actor as IVR events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ivr import events as ivr_ev
from voice.dtmf import DtmfDetector
from voice.engine import Engine
from voice.exceptions import CallGone, EngineError, EngineStopped
from voice.tap import Tap

log = logging.getLogger("callcenter.calls")


class Listener(Protocol):
    def feed(self, pcm: Any) -> None: ...
    async def close(self) -> object: ...


class Recognizer(Protocol):
    async def open_listener(self, phrases: Sequence[str], language: str, rate: int,
                            on_event: Callable[[str, str | None, float], None]) -> Listener: ...


class CallAudio:
    def __init__(self, engine: Engine, handle: int, call_id: str, post: Callable[[ivr_ev.Event], None],
                 recognizer: Recognizer | None, rate: int) -> None:
        self.engine = engine
        self.handle = handle
        self.call_id = call_id
        self.post = post
        self.recognizer = recognizer
        self.rate = rate
        self._tap: Tap | None = None
        self._reader: asyncio.Task[None] | None = None
        self._dtmf: DtmfDetector | None = None
        self._listeners: dict[int, Listener] = {}
        self.closed = False

    async def detect_dtmf(self) -> None:
        """Start in-band DTMF detection on the caller's audio."""
        if self._dtmf is None:
            self._dtmf = DtmfDetector(self.rate)
            await self._open()

    async def listen(self, listen: int, phrases: Sequence[str], language: str) -> None:
        if self.recognizer is None:
            raise EngineError("no speech recognizer is configured ([asr] in callcenter.toml)")
        if self.closed:
            return

        def on_event(kind: str, phrase: str | None, confidence: float) -> None:
            now = time.time()
            if listen not in self._listeners:
                return
            if kind == "started":
                self.post(ivr_ev.SpeechStarted(now=now, listen=listen))
            else:
                self.post(ivr_ev.SpeechResult(now=now, listen=listen, phrase=phrase, confidence=confidence))

        listener = await self.recognizer.open_listener(phrases, language, self.rate, on_event)
        self._listeners[listen] = listener
        await self._open()

    async def stop_listening(self, listen: int) -> None:
        listener = self._listeners.pop(listen, None)
        if listener is not None:
            await listener.close()

    async def _open(self) -> None:
        if self._tap is not None or self.closed:
            return
        try:
            self._tap = await self.engine.open_tap(self.handle, chunk_ms=40, listen=True, speak=False)
        except (CallGone, EngineStopped):
            return
        self._reader = asyncio.create_task(self._read(self._tap), name=f"ivr-audio-{self.call_id}")

    async def _read(self, tap: Tap) -> None:
        try:
            async for frame in tap:
                if self._dtmf is not None:
                    for digit in self._dtmf.feed(frame.pcm):
                        self.post(ivr_ev.Digit(now=time.time(), digit=digit, source="inband"))
                for listener in list(self._listeners.values()):
                    listener.feed(frame.pcm)
        except Exception:
            log.exception("call audio reader failed", extra={"call_id": self.call_id})

    async def close(self) -> None:
        self.closed = True
        for listen in list(self._listeners):
            await self.stop_listening(listen)
        if self._tap is not None:
            with contextlib.suppress(Exception):
                await self._tap.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

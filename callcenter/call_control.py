"""One call's telephony, as the IVR driver sees it (ivr.driver.CallControl) over the SIP engine.

The driver decides what to do; this object does it on the engine for one call and writes what
happened: the IVR path into the events table, recording pauses, voicemails. Audio that the IVR
listens to (in-band DTMF, speech) comes from the call's tap (callcenter/call_audio.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr import actions as act
from ivr import events as ivr_ev
from ivr.exceptions import CallGoneError
from voice.engine import Engine
from voice.exceptions import CallGone, EngineStopped

from .acd import AcdService, CallerRef
from .call_audio import CallAudio
from .storage.repos import EventRepo

log = logging.getLogger("callcenter.calls")
_EVENT_COLUMNS = frozenset({"at", "call_id", "agent", "event"})  # EventRepo.append's own arguments


class EngineCallControl:
    def __init__(self, engine: Engine, handle: int, call_id: str, events: EventRepo, data_dir: Path,
                 audio: CallAudio, spawn: Callable[[Any, str], None],
                 save_voicemail: Callable[[str, Path, str, str], Any], caller_number: str = "",
                 acd: AcdService | None = None, post: Callable[[ivr_ev.Event], None] | None = None) -> None:
        self.engine = engine
        self.handle = handle
        self.call_id = call_id
        self.events = events
        self.data_dir = data_dir
        self.audio = audio
        self._spawn = spawn                  # the service's task set: voicemails are saved even after the call
        self._save_voicemail = save_voicemail
        self.voicemail: tuple[str, Path] | None = None   # (mailbox, path) while recording one
        self.recording_paused = False
        self._voicemails = 0
        self.caller_number = caller_number
        self.acd = acd
        self.post = post
        self.pause_intervals: list[tuple[float, float | None]] = []  # recording pauses (epoch seconds)

    async def play(self, path: Path) -> int:
        async with _gone():
            return await self.engine.play(self.handle, str(path))

    async def stop_playback(self, playback: int) -> None:
        async with _gone():
            await self.engine.stop_playback(self.handle, playback)

    async def hangup(self) -> None:
        try:
            await self.engine.hangup(self.handle, 200)
        except (CallGone, EngineStopped):
            pass

    async def pause_recording(self) -> None:
        if not self.recording_paused:
            async with _gone():
                await self.engine.pause_recording(self.handle)
            self.recording_paused = True
            self.pause_intervals.append((time.time(), None))
            self._write("RECPAUSE", {})

    async def resume_recording(self) -> None:
        if self.recording_paused:
            self.recording_paused = False
            if self.pause_intervals and self.pause_intervals[-1][1] is None:
                self.pause_intervals[-1] = (self.pause_intervals[-1][0], time.time())
            try:
                await self.engine.resume_recording(self.handle)
            except (CallGone, EngineStopped):
                pass
            self._write("RECRESUME", {})

    async def start_voicemail(self, mailbox: str) -> None:
        self._voicemails += 1
        now = datetime.now(UTC)
        path = self.data_dir / "voicemail" / _safe(mailbox) / f"{now:%Y}" / f"{now:%m}" / (
            f"{self.call_id}-{self._voicemails}.wav")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        async with _gone():
            await self.engine.record(self.handle, str(path))
        self.voicemail = (mailbox, path)
        self._write("VOICEMAIL_START", {"mailbox": mailbox})

    async def stop_voicemail(self) -> float:
        if self.voicemail is None:
            return 0.0
        mailbox, path = self.voicemail
        self.voicemail = None
        async with _gone():
            seconds = await self.engine.stop_recording(self.handle, str(path))
        self._spawn(self._save_voicemail(mailbox, path, self.call_id, self.caller_number),
                    f"voicemail-{self.call_id}")
        return seconds

    def call_ended(self) -> None:
        """The call ended while a voicemail was being recorded: the engine closed it; keep it."""
        if self.voicemail is not None:
            mailbox, path = self.voicemail
            self.voicemail = None
            self._spawn(self._save_voicemail(mailbox, path, self.call_id, self.caller_number),
                        f"voicemail-{self.call_id}")

    async def transfer(self, target: str) -> None:
        self._write("TRANSFER", {"target": target})
        async with _gone():
            await self.engine.transfer(self.handle, target)

    async def listen(self, listen: int, phrases: Sequence[str], language: str) -> None:
        await self.audio.listen(listen, phrases, language)

    async def stop_listening(self, listen: int) -> None:
        await self.audio.stop_listening(listen)

    async def enqueue(self, action: act.Enqueue) -> ivr_ev.QueueOutcome | None:
        """Hand the caller to the ACD: None while they wait (it posts the QueueResult)."""
        if self.acd is None or self.post is None:  # (a server without an ACD: every queue is unstaffed)
            self._write("ENTERQUEUE", {"skills": action.skills, "priority": action.priority}, queue=action.queue)
            self._write("EXITEMPTY", {"reason": "no ACD"}, queue=action.queue)
            return "no_agents"
        ref = CallerRef(self.call_id, self.handle, self.caller_number, self.post, control=self)
        return await self.acd.enqueue(ref, action)

    def trace(self, step: act.Trace, version: str) -> None:
        data = {"node": step.node, **step.data}
        queue = str(data.pop("queue", ""))  # (IVR_QUEUE: the events table has a queue column)
        for key in _EVENT_COLUMNS & data.keys():
            data[f"{key}_"] = data.pop(key)
        self._write(f"IVR_{step.event}", data, queue=queue)

    def _write(self, event: str, data: dict[str, Any], queue: str = "") -> None:
        self.events.append_nowait(event, self.call_id, queue=queue, **data)  # in order; a failure is logged


@contextlib.asynccontextmanager
async def _gone() -> AsyncIterator[None]:
    """The engine's "this call has ended" in the IVR driver's words."""
    try:
        yield
    except (CallGone, EngineStopped) as exc:
        raise CallGoneError(str(exc)) from None


def _safe(name: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:64]
    return out or "default"


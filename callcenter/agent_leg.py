"""One outbound call the ACD places: an agent's softphone rung for an offer, or a customer called back.

The engine delivers the call's events to this leg's own inbox (``Engine.dial(sink=...)``), and
one small task per leg turns them into three facts for the ACD: ``answered`` (two-way audio,
ready to bridge), ``ended`` (with the SIP status, before or after the answer). Everything the
leg does to the engine (dial, record, hang up) happens in that task's order, so a CANCEL can
never overtake the INVITE it cancels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from recordings import files as recfiles
from voice.engine import Engine
from voice.events import CallEnded, CallProgress, EngineEvent, MediaReady
from voice.exceptions import CallGone, EngineError, EngineStopped

log = logging.getLogger("callcenter.acd")

LegState = Literal["new", "dialling", "ringing", "answered", "ended"]


@dataclass(frozen=True, slots=True)
class LegEnd:
    status: int
    reason: str
    answered: bool              # it had reached two-way audio
    local: bool                 # we hung it up (a cancel, the other side's hang-up)
    recording: Path | None      # the leg's own recording (final), if any
    recording_offset_s: float   # when the leg's recording started (epoch seconds)
    lost: bool = False          # a browser agent vanished mid-call (no reconnect within the grace period)


class OutboundLeg:
    """An outbound call for the ACD: an offer to an agent (``reservation``), or a callback."""

    def __init__(self, engine: Engine, *, uri: str, role: Literal["agent", "customer"], call_id: str,
                 reservation: str, agent: str, data_dir: Path, from_uri: str = "",
                 on_answered: Callable[[OutboundLeg], None], on_ended: Callable[[OutboundLeg, LegEnd], None],
                 record: bool = True) -> None:
        self.engine = engine
        self.uri = uri
        self.role = role
        self.call_id = call_id              # the caller's call this leg serves
        self.reservation = reservation
        self.agent = agent
        self.data_dir = data_dir
        self.from_uri = from_uri
        self._on_answered = on_answered
        self._on_ended = on_ended
        self._record = record
        self.state: LegState = "new"
        self.handle: int | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.recording: Path | None = None
        self.recording_started: float | None = None
        self._inbox: asyncio.Queue[EngineEvent | None] = asyncio.Queue()
        self._cancel = False
        self._task: asyncio.Task[None] | None = None
        self.end: LegEnd | None = None       # how it ended (set before on_ended is called)
        self.done = asyncio.Event()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=f"leg-{self.role}-{self.call_id[:8]}")
        return self._task

    def cancel(self) -> None:
        """Stop ringing, or hang up an answered leg (in the leg's own order)."""
        self._cancel = True
        self._inbox.put_nowait(None)

    async def _run(self) -> None:
        try:
            await self._dial_and_follow()
        except Exception:
            log.exception("agent leg failed", extra={"call_id": self.call_id, "agent": self.agent})
            await self._hangup()
            if self.state != "ended":
                self._end(500, "leg failed", local=True, recording=None)
        finally:
            self.done.set()

    async def _dial_and_follow(self) -> None:
        if self._cancel:
            self._end(487, "cancelled before dialling", local=True, recording=None)
            return
        self.state = "dialling"
        try:
            self.handle = await self.engine.dial(self.uri, from_uri=self.from_uri, sink=self._inbox.put_nowait)
        except (EngineError, EngineStopped) as exc:
            log.warning("cannot call", extra={"call_id": self.call_id, "agent": self.agent, "uri": self.uri,
                                              "error": str(exc)})
            self._end(503, f"cannot call {self.uri}: {exc}", local=True, recording=None)
            return
        while True:
            event = await self._inbox.get()
            if event is None:  # cancel(): hang up; the CallEnded follows
                await self._hangup()
                continue
            if isinstance(event, CallProgress):
                if self.state == "dialling":
                    self.state = "ringing"
            elif isinstance(event, MediaReady):
                if self.state in ("dialling", "ringing"):
                    self.state = "answered"
                    self.answered_at = time.time()
                    if self._cancel:  # answered while being cancelled: too late for it
                        await self._hangup()
                        continue
                    if self._record:
                        await self._start_recording()
                    self._on_answered(self)
            elif isinstance(event, CallEnded):
                recording = self.recording if self.recording is not None and self.recording.exists() else None
                self._end(event.status_code, event.reason, local=event.local_hangup, recording=recording)
                return

    async def start_recording(self) -> None:
        """Record the far end from now on, if not yet (a consultation, unrecorded, becoming the caller's
        conversation when an attended transfer completes: its far end is the agent side, named so)."""
        if self.recording is None and self.handle is not None and self.state == "answered":
            await self._start_recording("agent")

    async def _start_recording(self, name: str = "") -> None:
        try:
            path = recfiles.fresh_leg_path(self.data_dir / "recordings", self.call_id,
                                           name or ("agent" if self.role == "agent" else "callback"), datetime.now(UTC))
            assert self.handle is not None
            await self.engine.record(self.handle, str(path))
        except (CallGone, EngineStopped):
            return
        except (EngineError, OSError) as exc:
            log.error("agent leg recording failed to start", extra={"call_id": self.call_id, "error": str(exc)})
            return
        self.recording = path
        self.recording_started = time.time()

    async def _hangup(self) -> None:
        if self.handle is None:
            return
        try:
            await self.engine.hangup(self.handle, 200 if self.state == "answered" else 487)
        except (CallGone, EngineStopped, EngineError):
            pass

    def _end(self, status: int, reason: str, *, local: bool, recording: Path | None) -> None:
        answered = self.state == "answered"
        self.state = "ended"
        offset = (self.recording_started or self.started_at)
        self.end = LegEnd(status, reason, answered, local or self._cancel, recording, offset)
        self._on_ended(self, self.end)

"""Drives each call: answer, record the caller, run the IVR flow, write the call row.

One asyncio task per call (an actor with its own inbox), so a slow database write or a prompt
render for one call never delays another. A crash in one call's handler is logged with the
call id and the call is hung up; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

from ivr import machine as ivr
from ivr.flow import Flow
from ivr.prompts import PromptCache
from recordings import files as recfiles
from voice.engine import Engine
from voice.events import (
    CallAnswered,
    CallEnded,
    CallHeld,
    EngineEvent,
    IncomingCall,
    MediaReady,
    PlaybackDone,
    TransferRefused,
)
from voice.exceptions import CallGone, EngineError, EngineStopped

from .storage.db import utcnow
from .storage.repos import CallRepo, EventRepo

log = logging.getLogger("callcenter.calls")


class CallService:
    def __init__(self, engine: Engine, calls: CallRepo, events: EventRepo, flow: Flow,
                 prompts: PromptCache, data_dir: Path) -> None:
        self.engine = engine
        self.calls = calls
        self.events = events
        self.flow = flow
        self.prompts = prompts
        self.data_dir = data_dir
        self.stopping = False
        self._inboxes: dict[int, asyncio.Queue[EngineEvent]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return len(self._inboxes)

    async def run(self) -> None:
        """Dispatch engine events to per-call actors until cancelled."""
        while True:
            self.dispatch(await self.engine.events.get())

    def dispatch(self, event: EngineEvent) -> None:
        if isinstance(event, IncomingCall):
            new_inbox: asyncio.Queue[EngineEvent] = asyncio.Queue()
            self._inboxes[event.call] = new_inbox
            task = asyncio.create_task(self._actor(event, new_inbox), name=f"call-{event.call}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif (inbox := self._inboxes.get(event.call)) is not None:
            inbox.put_nowait(event)
        else:
            log.debug("event for unknown call", extra={"event": event.type, "handle": event.call})

    async def drain(self, grace: float = 3.0) -> None:
        """After the engine stopped: deliver what it posted, let actors finish, cancel the rest."""
        while not self.engine.events.empty():
            self.dispatch(self.engine.events.get_nowait())
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _actor(self, inc: IncomingCall, inbox: asyncio.Queue[EngineEvent]) -> None:
        call_id = uuid.uuid4().hex
        ctx = {"call_id": call_id, "handle": inc.call}
        call = _CallState(call_id, inc, ivr.FlowMachine(self.flow))
        log.info("incoming call", extra={**ctx, "caller": inc.caller, "from": inc.remote_address})
        await self._store(call, "call row", self.calls.create(
            call_id, inc.sip_call_id, inc.caller, inc.callee, inc.remote_address, self.flow.name))
        await self._store(call, "CALLSTART", self.events.append(
            "CALLSTART", call_id, caller=inc.caller, callee=inc.callee, sip_call_id=inc.sip_call_id))
        try:
            await self.engine.answer(inc.call, 200)
        except (CallGone, EngineStopped):
            pass
        except Exception:
            log.exception("call setup failed", extra=ctx)
            call.failed = True
            await self._hangup(call, 500)
        try:
            while True:
                event = await inbox.get()
                if isinstance(event, CallEnded):
                    await self._finish(call, event)
                    return
                try:
                    await self._handle(call, event)
                except (CallGone, EngineStopped):
                    pass
                except Exception:
                    log.exception("call handler failed", extra={**ctx, "event": event.type})
                    call.failed = True
                    await self._hangup(call, 500)
        finally:
            del self._inboxes[inc.call]  # engine ids are never reused

    async def _handle(self, call: _CallState, event: EngineEvent) -> None:
        if isinstance(event, CallAnswered):
            call.answered = True
            await self._store(call, "answer time", self.calls.update(call.id, answered_at=utcnow()))
            await self._store(call, "ANSWER", self.events.append("ANSWER", call.id))
        elif isinstance(event, MediaReady):
            if call.recording is None:
                await self._start_recording(call, event.codec)
            await self._run(call, call.machine.receive(ivr.CallStarted(now=time.monotonic())))
        elif isinstance(event, PlaybackDone):
            await self._run(call, call.machine.receive(ivr.PromptDone(now=time.monotonic())))
        elif isinstance(event, CallHeld):
            # The flow goes on while the caller holds (prompts play unheard, the recording
            # records silence): see docs/sip.md.
            await self._store(call, "HOLD", self.events.append("HOLD" if event.held else "UNHOLD", call.id))
        elif isinstance(event, TransferRefused):
            await self._store(call, "REFER", self.events.append("TRANSFER_REFUSED", call.id, target=event.target))

    async def _start_recording(self, call: _CallState, codec: str) -> None:
        """Record the caller's leg. A failure (a full disk, say) is logged; the call goes on unrecorded."""
        try:
            path = recfiles.leg_path(self.data_dir / "recordings", call.id, "caller", datetime.now(UTC))
            await self.engine.record(call.incoming.call, str(path))
        except EngineStopped:
            raise
        except (EngineError, OSError) as exc:
            log.error("recording failed to start", extra={"call_id": call.id, "error": str(exc)})
            await self._store(call, "codec", self.calls.update(call.id, codec=codec))
            return
        call.recording = path
        await self._store(call, "recording path", self.calls.update(
            call.id, codec=codec, recording_path=str(path.relative_to(self.data_dir))))

    async def _store(self, call: _CallState, what: str, write: Awaitable[None]) -> None:
        """Database writes never end a call: a failure (a full disk, say) is logged and the call goes on."""
        try:
            await write
        except Exception as exc:
            log.error("could not store %s", what, extra={"call_id": call.id, "error": repr(exc)})

    async def _run(self, call: _CallState, actions: list[ivr.Action]) -> None:
        for action in actions:
            if isinstance(action, ivr.Play):
                path = await self.prompts.render(action.text)
                await self.engine.play(call.incoming.call, str(path))
            elif isinstance(action, ivr.EndCall):
                await self._hangup(call, 200)

    async def _hangup(self, call: _CallState, code: int) -> None:
        try:
            await self.engine.hangup(call.incoming.call, code if not call.answered else 200)
        except (CallGone, EngineStopped):
            pass

    async def _finish(self, call: _CallState, ended: CallEnded) -> None:
        call.machine.receive(ivr.Hangup(now=time.monotonic()))
        if self.stopping and call.machine.finish_reason != "flow_end":
            disposition = "shutdown"
        elif ended.ended_by:
            disposition = "timeout"  # the engine ended it: no media, no RTP, too long
        elif call.failed:
            disposition = "failed"
        elif not call.answered:
            disposition = "missed"
        elif ended.local_hangup:
            disposition = "completed"
        else:
            disposition = "caller_hangup"
        fields: dict[str, object] = {
            "ended_at": utcnow(),
            "disposition": disposition,
            "hangup_cause": f"{ended.status_code} {ended.reason}".strip(),
        }
        if call.recording is not None:
            try:
                done = await asyncio.to_thread(recfiles.finish, call.recording)
            except OSError as exc:
                log.error("recording unreadable", extra={"call_id": call.id, "error": repr(exc)})
                done = None
            if done is not None:
                fields.update(recording_sha256=done.sha256, recording_bytes=done.bytes,
                              recording_seconds=round(done.seconds, 3))
            else:
                fields["recording_path"] = None
        await self._store(call, "call end", self.calls.update(call.id, **fields))
        await self._store(call, "CALLEND", self.events.append(
            "CALLEND", call.id, disposition=disposition, cause=fields["hangup_cause"]))
        log.info("call ended", extra={"call_id": call.id, "disposition": disposition,
                                      "cause": fields["hangup_cause"]})


class _CallState:
    def __init__(self, call_id: str, incoming: IncomingCall, machine: ivr.FlowMachine) -> None:
        self.id = call_id
        self.incoming = incoming
        self.machine = machine
        self.answered = False
        self.failed = False
        self.recording: Path | None = None

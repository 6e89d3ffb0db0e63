"""Drives each call: answer, record the caller, run the IVR flow, write the call row.

One asyncio task per call (an actor with its own inbox), so a slow database write or a prompt
render for one call never delays another. A crash in one call's handler is logged with the
call id and the call is hung up; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
import typing
import uuid
import wave
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ivr import events as ivr_ev
from ivr.driver import FlowDriver, HttpClient
from ivr.machine import FlowMachine
from ivr.prompts import PromptCache
from recordings import files as recfiles
from recordings.segments import join
from voice.engine import Engine
from voice.events import (
    CallAnswered,
    CallEnded,
    CallHeld,
    DtmfReceived,
    EngineEvent,
    IncomingCall,
    MediaReady,
    PlaybackDone,
    TransferDone,
    TransferRefused,
)
from voice.exceptions import CallGone, EngineError, EngineStopped

from .acd import AcdService
from .agent_leg import LegEnd
from .call_audio import CallAudio, Recognizer
from .call_control import EngineCallControl
from .flow_directory import FlowDirectory, Resolved
from .post_call import LegInfo
from .storage.db import utcnow
from .storage.flows import VoicemailRepo
from .storage.repos import CallRepo, EventRepo

log = logging.getLogger("callcenter.calls")
_IVR_EVENTS = typing.get_args(ivr_ev.Event)
Inbox = asyncio.Queue[EngineEvent | ivr_ev.Event]


@dataclass(frozen=True, slots=True)
class IvrOptions:
    transfer_allow: tuple[str, ...] = ()
    inband_dtmf: str = "auto"          # auto | always | off
    clock_rate: int = 8000
    server_url: str = ""               # the flows' {server_url}


class CallService:
    def __init__(self, engine: Engine, calls: CallRepo, events: EventRepo, voicemails: VoicemailRepo,
                 flows: FlowDirectory, prompts: PromptCache, http: HttpClient, recognizer: Recognizer | None,
                 data_dir: Path, options: IvrOptions | None = None, acd: AcdService | None = None,
                 post_call: PostCallHook | None = None, bus: Any = None) -> None:
        self.engine = engine
        self.calls = calls
        self.events = events
        self.voicemails = voicemails
        self.flows = flows
        self.prompts = prompts
        self.http = http
        self.recognizer = recognizer
        self.data_dir = data_dir
        self.options = options or IvrOptions()
        self.acd = acd
        self.post_call = post_call
        self.bus = bus
        self.desk: Any = None             # callcenter.desk.DeskHub (an agent's blind transfer reports here)
        self.stopping = False
        self._inboxes: dict[int, Inbox] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def active(self) -> int:
        return len(self._inboxes)

    async def run(self) -> None:
        """Dispatch engine events to per-call actors until cancelled."""
        while True:
            self.dispatch(await self.engine.events.get())

    def dispatch(self, event: EngineEvent) -> None:
        if isinstance(event, IncomingCall):
            new_inbox: Inbox = asyncio.Queue()
            self._inboxes[event.call] = new_inbox
            self.spawn(self._actor(event, new_inbox), f"call-{event.call}")
        elif (inbox := self._inboxes.get(event.call)) is not None:
            inbox.put_nowait(event)
        else:
            log.debug("event for unknown call", extra={"event": event.type, "handle": event.call})

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace: float = 3.0) -> None:
        """After the engine stopped: deliver what it posted, let actors finish, cancel the rest."""
        while not self.engine.events.empty():
            self.dispatch(self.engine.events.get_nowait())
        deadline = time.monotonic() + grace
        while self._tasks:  # actors spawn their last writes as they finish: wait for those too
            _, pending = await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
            if pending and time.monotonic() >= deadline:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
                break

    async def _actor(self, inc: IncomingCall, inbox: Inbox) -> None:
        call_id = uuid.uuid4().hex
        ctx = {"call_id": call_id, "handle": inc.call}
        resolved = self.flows.resolve(inc.dialled_number)
        call = _CallState(call_id, inc, resolved)
        log.info("incoming call", extra={**ctx, "caller": inc.caller_number, "to": inc.dialled_number,
                                         "from": inc.remote_address,
                                         "flow": f"{resolved.name}@{resolved.version}" if resolved else "-"})
        # Per-call writes are queued, not awaited: the database commits them in order, in batches
        # (callcenter/storage/db.py), and logs a failed one with the call id; the call goes on.
        version = resolved.version or None if resolved else None  # (0: the default flow, from a file)
        self.calls.create_nowait(call_id, inc.sip_call_id, inc.caller_number, inc.dialled_number, inc.remote_address,
                                 resolved.name if resolved else "", caller_name=inc.caller_name,
                                 caller_uri=inc.caller, flow_version=version)
        self._publish("call_started", call_id=call_id, caller=inc.caller_number, dialled=inc.dialled_number)
        self.events.append_nowait("CALLSTART", call_id, caller=inc.caller_number, callee=inc.dialled_number,
                                  sip_call_id=inc.sip_call_id, flow=resolved.name if resolved else "",
                                  flow_version=version)
        try:
            if resolved is None:
                call.refused = True
                log.warning("no flow for the dialled number: 404", extra={**ctx, "to": inc.dialled_number})
                await self.engine.answer(inc.call, 404)
            else:
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

    async def _handle(self, call: _CallState, event: EngineEvent | ivr_ev.Event) -> None:
        if self.acd is not None and isinstance(event, PlaybackDone | DtmfReceived) and self.acd.caller_event(
                call.id, event):
            return  # hold music, an announcement, "press 1" while the caller waits in a queue
        if isinstance(event, _IVR_EVENTS):
            if call.driver is not None:
                await call.driver.feed(event)
        elif isinstance(event, DtmfReceived):
            digit = ivr_ev.Digit(now=time.time(), digit=event.digit, source=event.source)
            if call.driver is not None:
                await call.driver.feed(digit)
            elif len(call.early_digits) < 32:  # a key before the flow started: it gets it first
                call.early_digits.append(digit)
        elif isinstance(event, PlaybackDone):
            if call.driver is not None:
                call.driver.playback_done(event.playback)
        elif isinstance(event, TransferDone):
            if self.desk is not None and self.acd is not None and self.acd.connected_call(call.id) is not None:
                self.desk.calls.transfer_result(call.id, event.ok, event.status, event.reason)  # an agent's transfer
            elif call.driver is not None:
                call.driver.transfer_done(event.ok, f"{event.status} {event.reason}".strip())
        elif isinstance(event, CallAnswered):
            call.answered = True
            self.calls.update_nowait(call.id, answered_at=utcnow())
            self.events.append_nowait("ANSWER", call.id)
        elif isinstance(event, MediaReady):
            if call.recording is None:
                await self._start_recording(call, event.codec)
            if call.driver is None and call.resolved is not None:
                await self._start_flow(call, event)
        elif isinstance(event, CallHeld):
            # The flow goes on while the caller holds (prompts play unheard, the recording
            # records silence): see docs/sip.md.
            self.events.append_nowait("HOLD" if event.held else "UNHOLD", call.id)
        elif isinstance(event, TransferRefused):
            self.events.append_nowait("TRANSFER_REFUSED", call.id, target=event.target)

    async def _start_flow(self, call: _CallState, media: MediaReady) -> None:
        assert call.resolved is not None
        inbox = self._inboxes[call.incoming.call]
        post = inbox.put_nowait
        call.audio = CallAudio(self.engine, call.incoming.call, call.id, post, self.recognizer,
                               self.options.clock_rate)
        call.control = EngineCallControl(self.engine, call.incoming.call, call.id, self.events, self.data_dir,
                                         call.audio, self.spawn, self._save_voicemail,
                                         call.incoming.caller_number, acd=self.acd, post=post)
        r = call.resolved
        machine = FlowMachine(r.flow, r.subflows, version=str(r.version))
        call.driver = FlowDriver(machine, call.control, self.prompts, self.http, post, call_id=call.id,
                                 version=str(r.version), flow_dir=r.flow_dir,
                                 transfer_allow=self.options.transfer_allow)
        if self.options.inband_dtmf == "always" or (self.options.inband_dtmf == "auto" and not media.telephone_event):
            try:
                await call.audio.detect_dtmf()
            except EngineError as exc:
                log.error("in-band DTMF detection failed to start", extra={"call_id": call.id, "error": str(exc)})
        inc = call.incoming
        await call.driver.feed(ivr_ev.CallStarted(now=time.time(), variables={
            "call_id": call.id, "caller_number": inc.caller_number, "caller_name": inc.caller_name,
            "dialled_number": inc.dialled_number, "server_url": self.options.server_url}))
        for digit in call.early_digits:
            await call.driver.feed(digit)
        call.early_digits.clear()

    async def _save_voicemail(self, mailbox: str, path: Path, call_id: str, caller: str) -> None:
        try:
            done = await asyncio.to_thread(recfiles.finish, path)
        except OSError as exc:
            log.error("voicemail unreadable", extra={"call_id": call_id, "error": repr(exc)})
            return
        if done is None:
            log.error("voicemail was never written", extra={"call_id": call_id, "path": str(path)})
            return
        try:
            await self.voicemails.add(call_id=call_id, mailbox=mailbox, path=str(path.relative_to(self.data_dir)),
                                      seconds=round(done.seconds, 3), sha256=done.sha256, size=done.bytes,
                                      caller_number=caller)
            await self.events.append("VOICEMAIL", call_id, mailbox=mailbox, seconds=round(done.seconds, 3))
        except Exception as exc:
            log.error("could not store the voicemail", extra={"call_id": call_id, "error": repr(exc)})

    async def _start_recording(self, call: _CallState, codec: str) -> None:
        """Record the caller's leg. A failure (a full disk, say) is logged; the call goes on unrecorded."""
        try:
            path = recfiles.leg_path(self.data_dir / "recordings", call.id, "caller", datetime.now(UTC))
            await self.engine.record(call.incoming.call, str(path))
        except EngineStopped:
            raise
        except (EngineError, OSError) as exc:
            log.error("recording failed to start", extra={"call_id": call.id, "error": str(exc)})
            self.calls.update_nowait(call.id, codec=codec)
            return
        call.recording = path
        call.recording_started = time.time()
        self.calls.update_nowait(call.id, codec=codec, recording_path=str(path.relative_to(self.data_dir)))

    async def _hangup(self, call: _CallState, code: int) -> None:
        try:
            await self.engine.hangup(call.incoming.call, code if not call.answered else 200)
        except (CallGone, EngineStopped):
            pass

    async def _finish(self, call: _CallState, ended: CallEnded) -> None:
        flow_ended = False
        if call.driver is not None:
            flow_ended = call.driver.machine.finished and call.driver.machine.finish_reason != "caller_hangup"
            await call.driver.close()
        if call.control is not None:
            call.control.call_ended()
        if call.audio is not None:
            await call.audio.close()
        departure = await self.acd.caller_gone(call.id) if self.acd is not None else None
        agent_leg = departure.agent_leg if departure is not None else None
        if self.stopping and not flow_ended:
            disposition = "shutdown"
        elif call.refused:
            disposition = "no_flow"
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
                done = await _finish_recording(call.recording)
            except OSError as exc:
                log.error("recording unreadable", extra={"call_id": call.id, "error": repr(exc)})
                done = None
            if done is not None:
                fields.update(recording_sha256=done.sha256, recording_bytes=done.bytes,
                              recording_seconds=round(done.seconds, 3))
            else:
                fields["recording_path"] = None
        if departure is not None and departure.earlier:  # a transferred caller: one agent channel of all
            agent_leg = await self._agent_channel(call.id, departure.earlier, agent_leg)
        if agent_leg is not None and agent_leg.recording is not None:
            try:
                done = await _finish_recording(agent_leg.recording)
            except OSError as exc:
                log.error("agent recording unreadable", extra={"call_id": call.id, "error": repr(exc)})
                done = None
            if done is not None:
                fields.update(agent_recording_path=str(agent_leg.recording.relative_to(self.data_dir)),
                              agent_recording_sha256=done.sha256, agent_recording_bytes=done.bytes,
                              agent_recording_seconds=round(done.seconds, 3))
        self.calls.update_nowait(call.id, **fields)
        self.events.append_nowait("CALLEND", call.id, disposition=disposition, cause=fields["hangup_cause"])
        self._publish("call_ended", call_id=call.id, disposition=disposition)
        if self.post_call is not None and call.recording is not None and fields.get("recording_sha256"):
            legs: dict[str, LegInfo] = {"caller": LegInfo(call.recording, 0.0, self._pauses(call))}
            if agent_leg is not None and agent_leg.recording is not None and "agent_recording_sha256" in fields:
                legs["agent"] = LegInfo(agent_leg.recording,
                                        max(0.0, agent_leg.recording_offset_s - call.recording_started), [])
            self.post_call.submit(call.id, legs, departure.queue if departure else "")
        log.info("call ended", extra={"call_id": call.id, "disposition": disposition,
                                      "cause": fields["hangup_cause"]})

    async def _agent_channel(self, call_id: str, earlier: tuple[LegEnd, ...], last: LegEnd | None) -> LegEnd | None:
        """The agents' legs of a transferred call joined on its timeline (recordings/segments.py) as the
        call's agent leg; the AGENTLEGS event says where each one lies in it, and the per-agent files go
        (the joined one holds them: retention then deletes one registered file, never an orphan). On
        failure, the last leg alone (logged), and the files stay."""
        ends = [*earlier, *([last] if last is not None and last.recording is not None else [])]
        segments = [(e.recording, e.recording_offset_s) for e in ends if e.recording is not None]
        if len(segments) == 1:
            return ends[0]
        out = segments[0][0].with_name(f"{call_id}.agents.wav")
        try:
            lengths = await asyncio.to_thread(_join_legs, segments, out)
        except Exception as exc:
            log.error("agent legs not joined", extra={"call_id": call_id, "error": repr(exc)})
            return last
        t0 = min(start for _, start in segments)
        self.events.append_nowait("AGENTLEGS", call_id, path=str(out.relative_to(self.data_dir)), legs=[
            {"offset_s": round(start - t0, 3), "seconds": round(seconds, 3)}
            for (_, start), seconds in zip(segments, lengths, strict=True)])
        return replace(ends[-1], recording=out, recording_offset_s=t0)

    def _pauses(self, call: _CallState) -> list[tuple[float, float]]:
        """The caller recording's pauses (sensitive input) in seconds from its start."""
        if call.control is None:
            return []
        end, t0 = time.time(), call.recording_started
        return [(round(max(0.0, a - t0), 3), round(max(0.0, (b or end) - t0), 3))
                for a, b in call.control.pause_intervals]

    def _publish(self, type_: str, **data: Any) -> None:
        if self.bus is not None:
            self.bus.publish({"type": type_, "at": time.time(), **data})


class PostCallHook(Protocol):
    """callcenter/post_call.py: recording rows, the stereo mix and the transcription job of a finished call."""

    def submit(self, call_id: str, legs: Mapping[str, LegInfo], queue: str = "") -> None: ...


INLINE_FINISH_BYTES = 1 << 20  # about a minute of 8 kHz audio: checksummed on the loop (< 1 ms)


async def _finish_recording(path: Path) -> recfiles.FinishedRecording | None:
    """Checksum and measure a closed recording: a short one right here (a thread hand-off costs more
    than hashing it: bench/capacity_short.py), a long one in a worker thread."""
    size = recfiles.size(path)
    if size is None:
        return None
    if size <= INLINE_FINISH_BYTES:
        return recfiles.finish(path)
    return await asyncio.to_thread(recfiles.finish, path)


class _CallState:
    def __init__(self, call_id: str, incoming: IncomingCall, resolved: Resolved | None) -> None:
        self.id = call_id
        self.incoming = incoming
        self.resolved = resolved
        self.driver: FlowDriver | None = None
        self.control: EngineCallControl | None = None
        self.audio: CallAudio | None = None
        self.answered = False
        self.failed = False
        self.refused = False
        self.early_digits: list[ivr_ev.Digit] = []
        self.recording: Path | None = None
        self.recording_started = 0.0          # epoch seconds


def _join_legs(segments: list[tuple[Path, float]], out: Path) -> list[float]:
    """Join (recordings/segments.py), then remove the per-agent files; each one's length in seconds."""
    lengths = []
    for path, _ in segments:
        with wave.open(str(path), "rb") as w:
            lengths.append(w.getnframes() / w.getframerate())
    join(segments, out)
    for path, _ in segments:
        path.unlink(missing_ok=True)
    return lengths

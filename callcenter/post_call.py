"""What happens to a call's audio once it ends: recording rows, the stereo mix, the transcription job.

``PostCall.call_finished(call_id, legs, queue)`` (or ``submit``, which does it in a task of its own):

1. each leg (``caller``, ``agent``) is checked (a header left stale by a crash is repaired), checksummed and
   registered as a ``recordings`` row with its offset in the call and its pause intervals;
2. the stereo file (caller left, agent right, recordings/stereo.py) is written next to the legs as
   ``<call id>.stereo.wav`` and registered, with the pauses of both legs on the call's timeline;
3. a transcription job is queued (idempotent: a call has at most one) and the job runner woken.

File work runs in worker threads, a few calls at a time, never on the event loop. Every failure is logged with
the call id and the step, and never raised: the call is over, and what could be done is kept (a call whose mix
failed still has its legs registered and its job queued; the worker then transcribes the legs).

A call the previous run left open when it was killed is closed by crash recovery before the SIP port opens
(callcenter/recovery.py); ``resume_recovered`` (once this object exists) gives each such call the same three
steps from the legs recovery found, then writes a ``POSTCALL`` event, so the next start does not do it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recordings import files as recfiles
from recordings.repair import is_intact, repair_wav
from recordings.stereo import mix

from .recovery import POSTCALL, OwedCall, owed_post_call
from .storage.db import Database
from .storage.repos import EventRepo
from .storage.transcripts import JobRepo, RecordingRepo

log = logging.getLogger("callcenter.post_call")
LEGS = ("caller", "agent")


@dataclass(frozen=True, slots=True)
class LegInfo:
    path: Path                                       # the leg's WAV (absolute, or relative to the data directory)
    offset_s: float = 0.0                            # where it starts in the call (the agent joins late)
    pauses: Sequence[tuple[float, float]] = ()       # seconds from the leg's start, recorded as silence


def stored_path(data_dir: Path, path: Path) -> str:
    """``path`` as the database keeps it: relative to the data directory when inside it."""
    try:
        return str(path.resolve().relative_to(data_dir.resolve()))
    except ValueError:
        return str(path)


def _checked(path: Path) -> recfiles.FinishedRecording | None:
    """On a worker thread: repair a stale header, then checksum; None if the file does not exist."""
    if path.exists() and not is_intact(path):
        result = repair_wav(path)
        log.warning("recording header repaired", extra={"path": str(path), "note": result.note})
    return recfiles.finish(path)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class PostCall:
    def __init__(self, db: Database, data_dir: Path, *, on_enqueued: Callable[[], None] | None = None,
                 transcribe: bool = True,
                 concurrency: int = 2) -> None:
        self.db = db
        self.recordings = RecordingRepo(db)
        self.jobs = JobRepo(db)
        self.events = EventRepo(db)
        self.data_dir = data_dir
        self.on_enqueued = on_enqueued            # e.g. JobRunner.wake
        self.transcribe = transcribe              # ([transcription] enabled = false: rows and the mix only)
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._tasks: set[asyncio.Task[Any]] = set()

    def submit(self, call_id: str, legs: Mapping[str, LegInfo], queue: str = "") -> None:
        """``call_finished`` in a task of its own (the call's actor does not wait); ``close`` waits for them."""
        task = asyncio.create_task(self.call_finished(call_id, legs, queue), name=f"post-call-{call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume_recovered(self) -> int:
        """Submit the post-call work owed to calls closed by crash recovery; returns how many (never raises).

        Each is processed like ``submit`` (``close`` waits for it) and then marked with a POSTCALL event.
        """
        try:
            owed = await owed_post_call(self.db)
        except Exception:
            log.exception("post-call: cannot list the calls recovered after a crash")
            return 0
        for call in owed:
            task = asyncio.create_task(self._recovered(call), name=f"post-call-{call.call_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if owed:
            log.warning("post-call: processing calls interrupted by a crash", extra={"count": len(owed)})
        return len(owed)

    async def _recovered(self, call: OwedCall) -> None:
        legs = {leg: LegInfo(Path(v.path), v.offset_s, v.pauses) for leg, v in call.legs.items()}
        ok = await self.call_finished(call.call_id, legs, call.queue)
        try:  # (killed before this: the next start does it again; every step above is idempotent)
            await self.events.append(POSTCALL, call.call_id, queue=call.queue, recovered=True, ok=ok,
                                     legs=sorted(legs))
        except Exception as exc:
            log.error("post-call: could not mark a recovered call done",
                      extra={"call_id": call.call_id, "error": repr(exc)})

    async def close(self) -> None:
        """Wait for every submitted call to be processed."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def call_finished(self, call_id: str, legs: Mapping[str, LegInfo], queue: str = "") -> bool:
        """Register, mix, enqueue (see the module doc). True when every step succeeded; never raises."""
        ctx = {"call_id": call_id, "queue": queue}
        unknown = sorted(set(legs) - set(LEGS))
        if unknown:
            log.error("post-call: unknown legs ignored", extra={**ctx, "legs": ",".join(unknown)})
        ok = not unknown
        async with self._slots:
            done: dict[str, recfiles.FinishedRecording] = {}
            for leg in LEGS:
                info = legs.get(leg)
                if info is None:
                    continue
                path = info.path if info.path.is_absolute() else self.data_dir / info.path
                try:
                    fin = await asyncio.to_thread(_checked, path)
                    if fin is None:
                        log.error("post-call: recording file missing", extra={**ctx, "leg": leg, "path": str(path)})
                        ok = False
                        continue
                    await self.recordings.add(call_id, leg, stored_path(self.data_dir, path), fin.sha256, fin.bytes,
                                              fin.seconds, offset_s=info.offset_s, pauses=info.pauses)
                    done[leg] = fin
                except Exception as exc:
                    ok = False
                    log.error("post-call: could not register the recording",
                              extra={**ctx, "leg": leg, "path": str(path), "error": repr(exc)})
            if "caller" in done:
                ok = await self._stereo(call_id, legs, done, ctx) and ok
            elif done:
                log.warning("post-call: no caller leg, so no stereo file", extra=ctx)
            if not done:
                log.warning("post-call: the call has no recording; nothing to transcribe", extra=ctx)
                return False
            if not self.transcribe:
                return ok
            try:
                if await self.jobs.enqueue(call_id):
                    log.info("post-call: transcription queued", extra={**ctx, "legs": ",".join(done)})
                if self.on_enqueued is not None:
                    self.on_enqueued()
            except Exception as exc:
                log.error("post-call: could not queue the transcription", extra={**ctx, "error": repr(exc)})
                ok = False
        return ok

    async def _stereo(self, call_id: str, legs: Mapping[str, LegInfo], done: Mapping[str, recfiles.FinishedRecording],
                      ctx: dict[str, Any]) -> bool:
        caller, agent = legs["caller"], legs.get("agent") if "agent" in done else None
        offset = 0.0
        if agent is not None:
            offset = agent.offset_s - caller.offset_s
            if offset < 0:
                log.warning("post-call: the agent leg starts before the caller's; aligned at 0",
                            extra={**ctx, "offset_s": offset})
                offset = 0.0
        pauses = [(a, b) for a, b in caller.pauses]
        if agent is not None:
            pauses += [(a + offset, b + offset) for a, b in agent.pauses]
        out = done["caller"].path.with_name(f"{call_id}.stereo.wav")
        try:
            fin = await asyncio.to_thread(mix, done["caller"].path, done["agent"].path if agent else None, out,
                                          agent_offset_s=offset)
            await self.recordings.add(call_id, "stereo", stored_path(self.data_dir, out), fin.sha256, fin.bytes,
                                      fin.seconds, offset_s=caller.offset_s, pauses=_merge(pauses))
        except Exception as exc:
            log.error("post-call: stereo mix failed", extra={**ctx, "path": str(out), "error": repr(exc)})
            return False
        log.info("post-call: stereo file written", extra={**ctx, "seconds": round(fin.seconds, 3)})
        return True

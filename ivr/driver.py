"""The asyncio driver: runs one call's ``FlowMachine`` against a real call.

The interpreter decides; this module carries its actions out through a ``CallControl`` (the
composition root implements it over the SIP engine) and turns what happens into interpreter
events. Everything reaches the machine through ``post``, which the owner (the call's actor,
callcenter/calls.py) feeds back in order with ``feed``: one call's events are handled one at a
time, in the order they happened, and timers, HTTP replies and recognizer results never run
the machine from another task.

A crash while running an action (or inside the machine) is logged with the call id and the
flow version; the machine's ``fail`` then plays an apology and goes to the flow's error target
(a second crash hangs up). Every task the driver starts is in its task set and is cancelled
by ``close``: no timer, request or listener outlives the call.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from . import actions as act
from . import events as ev
from .exceptions import CallGoneError, NotJsonReply
from .machine import FlowMachine
from .nodes import Flow

log = logging.getLogger("ivr.driver")


class CallControl(Protocol):
    """The telephony side of one call, as the driver needs it (callcenter/call_control.py implements it).

    Any method may raise ``CallGoneError`` once the call has ended: the driver then stops quietly."""

    async def play(self, path: Path) -> int: ...                 # returns a playback id (PlaybackDone later)
    async def stop_playback(self, playback: int) -> None: ...
    async def hangup(self) -> None: ...
    async def pause_recording(self) -> None: ...
    async def resume_recording(self) -> None: ...
    async def start_voicemail(self, mailbox: str) -> None: ...
    async def stop_voicemail(self) -> float: ...                  # the saved message's seconds
    async def transfer(self, target: str) -> None: ...            # outcome: driver.transfer_done
    async def listen(self, listen: int, phrases: Sequence[str], language: str) -> None: ...
    async def stop_listening(self, listen: int) -> None: ...
    async def enqueue(self, action: act.Enqueue) -> ev.QueueOutcome | None: ...  # None: a QueueResult is posted later
    def trace(self, step: act.Trace, version: str) -> None: ...   # the IVR path: events table


class Prompts(Protocol):
    async def render(self, text: str, language: str, voice: str | None, rate: int | None) -> Path: ...
    async def audio(self, path: Path) -> Path: ...
    def fallback(self) -> Path: ...
    def beep(self) -> Path: ...


class HttpClient(Protocol):
    async def request(self, method: str, url: str, *, headers: Mapping[str, str], json: Any,
                      timeout_s: float) -> tuple[int, Any]: ...   # (status, decoded JSON or None)


_URI = re.compile(r"^(?P<scheme>sips?|tel):(?:(?P<user>[^@;?]*)@)?(?P<host>[^;?]*)(?P<params>;[^?]*)?$",
                  re.IGNORECASE)


def transfer_allowed(target: str, patterns: Sequence[str]) -> bool:
    """``target`` matches one of ``patterns`` ([ivr] transfer_allow); empty: nothing is allowed.

    Both are split into scheme, user and host[:port]; the scheme must be equal, and the user and the
    host each match the pattern's glob on their own (so ``sip:*@pbx.example.com`` allows any user at
    that host, never ``sip:x@evil.example;@pbx.example.com``). URI parameters (``;transport=tcp``) are
    not compared; a target with URI headers (``?...``) is never allowed.
    """
    t = _URI.match(target.strip())
    if t is None:
        return False
    for pattern in patterns:
        p = _URI.match(pattern.strip())
        if p is None or p["scheme"].lower() != t["scheme"].lower():
            continue
        if fnmatch.fnmatchcase((t["user"] or "").lower(), (p["user"] or "").lower()) and \
                fnmatch.fnmatchcase(t["host"].lower(), p["host"].lower()):
            return True
    return False


class FlowDriver:
    def __init__(
        self,
        machine: FlowMachine,
        control: CallControl,
        prompts: Prompts,
        http: HttpClient,
        post: Callable[[ev.Event], None],
        *,
        call_id: str,
        version: str,
        flow_dir: Path | None = None,
        transfer_allow: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.machine = machine
        self.control = control
        self.prompts = prompts
        self.http = http
        self.post = post
        self.call_id = call_id
        self.version = version
        self.flow_dir = flow_dir
        self.transfer_allow = tuple(transfer_allow)
        self.clock = clock
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._playing: dict[int, int] = {}        # playback id -> prompt id
        self._prompt_playback: dict[int, int] = {}  # prompt id -> playback id
        self._stopped: set[int] = set()           # prompts stopped before they started playing
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._voicemail = False
        self._failures = 0

    @property
    def flow(self) -> Flow:
        return self.machine.flow

    # -- inputs ------------------------------------------------------------------------------------
    async def feed(self, event: ev.Event) -> None:
        """Run one event through the machine and carry out what it asks for."""
        if self.closed and not isinstance(event, ev.Hangup):
            return
        try:
            actions = self.machine.receive(event)
        except Exception as exc:
            await self._failed(exc, f"the flow failed on {event.type}")
            return
        await self._run(actions)
        if self.machine.finish_reason == "transfer" and not self.closed:
            self.closed = True  # the caller went to the transfer target: our leg ends
            await self._hangup_quietly()
        # (finish_reason "queue": the ACD owns the call from here: callcenter/acd.py)

    def playback_done(self, playback: int) -> None:
        prompt = self._playing.pop(playback, None)
        if prompt is not None:
            self._prompt_playback.pop(prompt, None)
            self.post(ev.PromptDone(now=self.clock(), prompt=prompt))

    def transfer_done(self, ok: bool, reason: str) -> None:
        self.post(ev.TransferResult(now=self.clock(), ok=ok, reason=reason))

    async def close(self) -> None:
        """The call is over: the machine hears the hang-up; every timer and task of the call ends."""
        if not self.closed:
            self.closed = True
            try:
                self.machine.receive(ev.Hangup(now=self.clock()))
            except Exception:
                log.exception("flow failed on hangup", extra=self._ctx())
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- actions -----------------------------------------------------------------------------------
    async def _run(self, actions: list[act.Action]) -> None:
        for i, action in enumerate(actions):
            try:
                await self._do(action)
            except (_CallOver, CallGoneError):
                self.closed = True
                return
            except Exception as exc:
                if self.closed:
                    return
                await self._failed(exc, f"{action.type} failed")
                return
            if self.closed and i + 1 < len(actions):
                # After the caller hung up only clean-up matters: release what the call holds.
                await self._cleanup(actions[i + 1:])
                return

    async def _cleanup(self, rest: list[act.Action]) -> None:
        for action in rest:
            if isinstance(action, act.Trace):
                self.control.trace(action, self.version)
            elif isinstance(action, act.CancelTimer):
                self._cancel_timer(action.timer)

    async def _do(self, a: act.Action) -> None:
        if isinstance(a, act.Trace):
            self.control.trace(a, self.version)
        elif isinstance(a, act.Play):
            await self._play(a)
        elif isinstance(a, act.StopPlayback):
            playback = self._prompt_playback.get(a.prompt)
            if playback is not None:
                await self.control.stop_playback(playback)
            else:
                self._stopped.add(a.prompt)
        elif isinstance(a, act.Beep):
            await self._start(a.prompt, self.prompts.beep())
        elif isinstance(a, act.StartTimer):
            self._start_timer(a.timer, a.deadline)
        elif isinstance(a, act.CancelTimer):
            self._cancel_timer(a.timer)
        elif isinstance(a, act.Listen):
            await self.control.listen(a.listen, a.phrases, a.language)
        elif isinstance(a, act.StopListening):
            await self.control.stop_listening(a.listen)
        elif isinstance(a, act.HttpRequest):
            self._spawn(self._http(a), f"http-{self.call_id}-{a.request}")
        elif isinstance(a, act.RecordingPause):
            await self.control.pause_recording()
        elif isinstance(a, act.RecordingResume):
            await self.control.resume_recording()
        elif isinstance(a, act.RecordVoicemail):
            await self.control.start_voicemail(a.mailbox)
            self._voicemail = True
        elif isinstance(a, act.StopVoicemail):
            if self._voicemail:
                self._voicemail = False
                seconds = await self.control.stop_voicemail()
                self.post(ev.VoicemailDone(now=self.clock(), seconds=seconds))
        elif isinstance(a, act.Enqueue):
            outcome = await self.control.enqueue(a)
            if outcome is not None:  # (None: the caller waits; the ACD posts the QueueResult when it is decided)
                self.post(ev.QueueResult(now=self.clock(), outcome=outcome))
        elif isinstance(a, act.Transfer):
            if not transfer_allowed(a.target, self.transfer_allow):
                log.warning("transfer target not allowed", extra={**self._ctx(), "target": a.target})
                self.post(ev.TransferResult(now=self.clock(), ok=False, reason="not allowed by [ivr] transfer_allow"))
            else:
                try:
                    await self.control.transfer(a.target)
                except CallGoneError:
                    raise
                except Exception as exc:  # a target the SIP stack refuses (a bad templated URI): the node's error
                    log.warning("transfer failed", extra={**self._ctx(), "target": a.target, "error": str(exc)})
                    self.post(ev.TransferResult(now=self.clock(), ok=False, reason=_describe(exc)))
        elif isinstance(a, act.EndCall):
            self.closed = True
            await self.control.hangup()
            raise _CallOver
        else:
            raise TypeError(f"unknown action {a!r}")

    async def _play(self, a: act.Play) -> None:
        if a.prompt in self._stopped:
            self._stopped.discard(a.prompt)
            self.post(ev.PromptDone(now=self.clock(), prompt=a.prompt))
            return
        try:
            if a.audio is not None:
                src = Path(a.audio)
                if not src.is_absolute() and self.flow_dir is not None:
                    src = self.flow_dir / src
                path = await self.prompts.audio(src)
            else:
                path = await self.prompts.render(a.text or "", a.language, a.voice, a.rate)
        except Exception as exc:  # a prompt that cannot be made: a tone instead, and the flow goes on
            log.error("prompt failed, playing the fallback tone",
                      extra={**self._ctx(), "node": a.node, "error": str(exc)})
            path = self.prompts.fallback()
        if a.prompt in self._stopped:  # stopped while it rendered
            self._stopped.discard(a.prompt)
            self.post(ev.PromptDone(now=self.clock(), prompt=a.prompt))
            return
        await self._start(a.prompt, path)

    async def _start(self, prompt: int, path: Path) -> None:
        playback = await self.control.play(path)
        self._playing[playback] = prompt
        self._prompt_playback[prompt] = playback

    def _start_timer(self, timer: int, deadline: float) -> None:
        self._cancel_timer(timer)
        delay = max(0.0, deadline - self.clock())
        self._timers[timer] = self._loop.call_later(delay, self._timer_fired, timer)

    def _cancel_timer(self, timer: int) -> None:
        handle = self._timers.pop(timer, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, timer: int) -> None:
        if self._timers.pop(timer, None) is not None and not self.closed:
            self.post(ev.TimerFired(now=self.clock(), timer=timer))

    async def _http(self, a: act.HttpRequest) -> None:
        try:
            status, body = await asyncio.wait_for(
                self.http.request(a.method, a.url, headers=a.headers, json=a.body, timeout_s=a.timeout),
                timeout=a.timeout + 0.5,
            )
        except TimeoutError:
            result = ev.HttpResult(now=self.clock(), request=a.request, status=None, error="timeout")
        except asyncio.CancelledError:
            raise
        except NotJsonReply as exc:
            result = ev.HttpResult(now=self.clock(), request=a.request, status=exc.status, error="not JSON")
        except Exception as exc:
            result = ev.HttpResult(now=self.clock(), request=a.request, status=None, error=_describe(exc))
        else:  # (an empty reply has body None: fine for a webhook, an error for a node that maps results)
            result = ev.HttpResult(now=self.clock(), request=a.request, status=status, body=body)
        if not self.closed:
            self.post(result)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _failed(self, exc: BaseException, what: str) -> None:
        self._failures += 1
        log.error("%s", what, exc_info=exc, extra=self._ctx())
        if self.closed:
            return
        if self._failures > 3:
            self.closed = True
            await self._hangup_quietly()
            return
        try:
            actions = self.machine.fail(self.clock(), f"{what}: {_describe(exc)}")
        except Exception:
            log.exception("the flow's error handling failed", extra=self._ctx())
            self.closed = True
            await self._hangup_quietly()
            return
        await self._run(actions)

    async def _hangup_quietly(self) -> None:
        try:
            await self.control.hangup()
        except Exception:
            log.debug("hang-up after a flow failure failed", exc_info=True, extra=self._ctx())

    def _ctx(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "flow": self.flow.name, "flow_version": self.version,
                "node": self.machine.node}


class _CallOver(Exception):
    """The flow hung up: the actions after it are not carried out."""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

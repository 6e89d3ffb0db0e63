"""The caller's side of waiting in a queue: hold music, announcements, "press 1 to be called back".

One ``QueueCall`` per caller the ACD holds. It plays the queue's hold music (a WAV, or a folder
of them in turn), and every ``announce_every_s`` stops the music for a moment to say the
caller's position and estimated wait (asked of the router at that moment, so it is never stale)
and, when a callback can be made, that pressing 1 keeps their place and hangs up; the music then
resumes where it stopped, not from a track's intro. Announcements are skipped while an agent is
being rung for the caller or once they are connected, so no announcement ever talks over an
agent. The ACD decides; this object only plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ivr.prompts import PromptCache
from voice.engine import Engine
from voice.exceptions import CallGone, EngineError, EngineStopped

log = logging.getLogger("callcenter.acd")

QueueCallState = Literal["waiting", "offered", "connected", "left"]


def music_files(source: Path) -> list[Path]:
    """The WAVs of a hold-music source (a file, or a folder's *.wav in name order)."""
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    return [source] if source.is_file() else []


def wait_phrase(seconds: float | None) -> str:
    """How an estimated wait is said: rounded up to whole minutes, "less than a minute" below one."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "Your estimated wait is less than a minute."
    minutes = int(-(-seconds // 60))
    return f"Your estimated wait is about {minutes} minute{'s' if minutes != 1 else ''}."


class QueueCall:
    def __init__(self, engine: Engine, prompts: PromptCache, *, handle: int, call_id: str, queue: str,
                 music: list[Path], announce_every_s: float, announce_position: bool, announce_wait: bool,
                 position: Callable[[], int | None], estimated_wait: Callable[[], float | None],
                 callback_offered: Callable[[], bool], language: str = "en",
                 on_announce: Callable[[str, int | None], None] | None = None) -> None:
        self.engine = engine
        self.prompts = prompts
        self.handle = handle
        self.call_id = call_id
        self.queue = queue
        self.music = music
        self.announce_every_s = announce_every_s
        self.announce_position = announce_position
        self.announce_wait = announce_wait
        self._position = position
        self._estimated_wait = estimated_wait
        self._callback_offered = callback_offered
        self.language = language
        self._on_announce = on_announce      # (text, position): the ACD logs it (ANNOUNCE)
        self.state: QueueCallState = "waiting"
        self.announcements = 0
        self._track = zlib.crc32(call_id.encode()) % len(music) if music else 0  # callers start at different tracks
        self._music_playback: int | None = None
        self._resume_at = 0.0  # seconds into the current track: an announcement stopped it there
        self._announcement: int | None = None
        self._announce_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # music and announcements take turns
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        await self._play_music()
        if self.announce_every_s > 0 and (self.announce_position or self.announce_wait or self._callback_offered()):
            self._announce_task = asyncio.create_task(self._announce_loop(), name=f"announce-{self.call_id[:8]}")

    async def stop(self) -> None:
        """Silence: an agent answered, or the caller leaves the queue."""
        if self._announce_task is not None:
            self._announce_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._announce_task
            self._announce_task = None
        async with self._lock:
            for playback in (self._music_playback, self._announcement):
                if playback is not None:
                    with contextlib.suppress(CallGone, EngineStopped, EngineError):
                        await self.engine.stop_playback(self.handle, playback)
            self._music_playback = self._announcement = None

    def close(self) -> None:
        """The call ended: no more engine calls (its playbacks ended with it)."""
        self.state = "left"
        if self._announce_task is not None:
            self._announce_task.cancel()
            self._announce_task = None
        for task in self._tasks:
            task.cancel()

    # -- engine events ---------------------------------------------------------------------------------
    def playback_done(self, playback: int) -> bool:
        """True if the playback was one of ours (the next track, or the music after an announcement)."""
        if playback == self._music_playback:
            self._music_playback = None
            if self.state in ("waiting", "offered") and self._announcement is None:
                self._spawn_music()
            return True
        if playback == self._announcement:
            self._announcement = None
            if self.state in ("waiting", "offered"):
                self._spawn_music()
            return True
        return False

    def _spawn_music(self) -> None:
        task = asyncio.get_running_loop().create_task(self._play_music_locked())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play_music_locked(self) -> None:
        async with self._lock:
            if self._music_playback is None and self._announcement is None:
                await self._play_music()

    async def _play_music(self) -> None:
        if not self.music or self.state not in ("waiting", "offered"):
            return
        path = self.music[self._track % len(self.music)]
        self._track += 1
        start, self._resume_at = self._resume_at, 0.0  # (an announcement stopped this track there)
        try:
            audio = await self.prompts.audio(path)  # (converted to the engine's format once, cached)
            # One file: loop it. Several: play each once and go on to the next when it ends.
            self._music_playback = await self.engine.play(self.handle, str(audio), loop=len(self.music) == 1,
                                                          start_s=start)
        except (CallGone, EngineStopped):
            pass
        except Exception as exc:
            log.warning("hold music failed", extra={"call_id": self.call_id, "file": str(path), "error": str(exc)})

    # -- announcements ---------------------------------------------------------------------------------
    def announcement_text(self) -> str:
        parts = []
        position = self._position()
        if position is None:
            return ""
        if self.announce_position:
            parts.append("You are next in line." if position == 1 else f"You are number {position} in line.")
        if self.announce_wait:
            parts.append(wait_phrase(self._estimated_wait()))
        if self._callback_offered():
            parts.append("To be called back without losing your place, press 1.")
        return " ".join(p for p in parts if p)

    async def _announce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.announce_every_s)
            if self.state != "waiting":  # an agent is ringing for this caller, or answered: say nothing
                continue
            text = self.announcement_text()
            if not text:
                continue
            try:
                path = await self.prompts.render(text, self.language, None, None)
            except Exception as exc:
                log.warning("announcement failed", extra={"call_id": self.call_id, "error": str(exc)})
                continue
            async with self._lock:
                if self.state != "waiting":
                    continue
                try:
                    if self._music_playback is not None:
                        # The music resumes where it stops (Asterisk's default too), not from a
                        # track's intro after every announcement.
                        playback, self._music_playback = self._music_playback, None
                        at = await self.engine.playback_position(self.handle, playback)
                        if await self.engine.stop_playback(self.handle, playback) and at:
                            self._track -= 1  # the same track again, from there
                            self._resume_at = at
                    self._announcement = await self.engine.play(self.handle, str(path))
                    self.announcements += 1
                    if self._on_announce is not None:
                        self._on_announce(text, self._position())
                except (CallGone, EngineStopped):
                    return
                except EngineError as exc:
                    log.warning("announcement failed", extra={"call_id": self.call_id, "error": str(exc)})


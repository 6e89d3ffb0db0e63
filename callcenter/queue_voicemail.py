"""A queue's ``overflow = "voicemail:MAILBOX"``: the caller who waited too long leaves a message.

The ACD hands the caller here when the queue's max wait (or max length) sends them to a mailbox: a
short greeting, the beep, then the message is recorded into the mailbox (the call control's own
voicemail recording: a file under data/voicemail/ and a row at /api/voicemails) until the caller
presses # or hangs up, or ``MAX_MESSAGE_S`` pass; then a goodbye and the call ends. A caller who hangs up
during the message keeps it (the call's end saves it, as a flow's voicemail node does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import wave
from pathlib import Path
from typing import Any

from ivr.prompts import PromptCache
from voice.engine import Engine
from voice.exceptions import CallGone, EngineError, EngineStopped

log = logging.getLogger("callcenter.acd")

GREETING = "We are sorry to keep you waiting. Please leave a message after the tone, then press the hash key."
GOODBYE = "Thank you. We will get back to you. Goodbye."
MAX_MESSAGE_S = 120.0


def _seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, EOFError, wave.Error):
        return 0.0


class QueueVoicemail:
    def __init__(self, engine: Engine, prompts: PromptCache, *, handle: int, call_id: str, mailbox: str,
                 control: Any, language: str = "en") -> None:
        self.engine = engine
        self.prompts = prompts
        self.handle = handle
        self.call_id = call_id
        self.mailbox = mailbox
        self.control = control          # callcenter.call_control.EngineCallControl: start/stop_voicemail
        self.language = language
        self.done = asyncio.Event()     # '#' pressed

    def digit(self, digit: str) -> None:
        if digit == "#":
            self.done.set()

    async def run(self) -> None:
        try:
            await self._say(await self.prompts.render(GREETING, self.language, None, None))
            await self._say(self.prompts.beep())
            await self.control.start_voicemail(self.mailbox)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), MAX_MESSAGE_S)
            await self.control.stop_voicemail()
            await self._say(await self.prompts.render(GOODBYE, self.language, None, None))
            await self.engine.hangup(self.handle, 200)
        except (CallGone, EngineStopped):
            pass  # the caller hung up: the call's end keeps a message being recorded
        except Exception as exc:
            if not _gone(exc):
                log.exception("queue voicemail failed", extra={"call_id": self.call_id, "mailbox": self.mailbox})
            with contextlib.suppress(CallGone, EngineStopped, EngineError):
                await self.engine.hangup(self.handle, 200)

    async def _say(self, path: Path) -> None:
        await self.engine.play(self.handle, str(path))
        await asyncio.sleep(_seconds(path) + 0.2)  # (its PlaybackDone goes to the flow driver, which ignores it)


def _gone(exc: BaseException) -> bool:
    from ivr.exceptions import CallGoneError

    return isinstance(exc, CallGoneError)

"""Prompt rendering: text -> speech (pyttsx3's espeak-ng binding) -> a cached WAV at the engine's rate.

Speech is made in a child process (``python -m ivr.prompts``): the espeak-ng library keeps global
state and a crash in it must not take the server down. The converted WAV is cached by a hash
of everything that shapes the sound, so a prompt is rendered once per text, voice and clock rate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .exceptions import PromptError

log = logging.getLogger("ivr.prompts")

# (source WAV, destination WAV, destination rate): supplied by the composition root (voice/ resamples)
Converter = Callable[[Path, Path, int], None]


class PromptCache:
    """Rendered prompts and converted audio files, cached under ``directory``.

    ``voices`` maps a language ("en", "zh") to an espeak-ng voice; a prompt's own voice wins.
    ``fallback_path`` and ``beep_path`` are tones the composition root writes at start-up.
    """

    def __init__(
        self,
        directory: Path,
        clock_rate: int,
        convert: Converter,
        voice: str = "",
        words_per_minute: int = 160,
        voices: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.clock_rate = clock_rate
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.voices = dict(voices or {})
        self.fallback_path = directory / "fallback-tone.wav"
        self.beep_path = directory / "beep.wav"
        self._convert = convert
        self._pending: dict[Path, asyncio.Future[Path]] = {}

    def voice_for(self, language: str = "", voice: str | None = None) -> str:
        if voice:
            return voice
        return self.voices.get(language, self.voice if language in ("", "en") else language)

    def path_for(self, text: str, voice: str | None = None, rate: int | None = None) -> Path:
        v = self.voice if voice is None else voice
        key = f"espeak|{v}|{rate or self.words_per_minute}|{self.clock_rate}|{text}"
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.wav"

    async def render(self, text: str, language: str = "", voice: str | None = None, rate: int | None = None) -> Path:
        """Return the cached WAV for ``text``, rendering it first if needed (concurrent-safe)."""
        v = self.voice_for(language, voice)
        wpm = rate or self.words_per_minute
        path = self.path_for(text, v, wpm)
        return await self._once(path, lambda: self._render(text, path, v, wpm))

    async def audio(self, src: Path) -> Path:
        """An operator's WAV converted to the engine's rate, once (keyed by path, size and mtime)."""
        path = self._audio_path(src)

        async def convert() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.part.wav")
            try:
                await asyncio.to_thread(self._convert, src, tmp, self.clock_rate)
                tmp.replace(path)
            except Exception as exc:
                tmp.unlink(missing_ok=True)
                raise PromptError(f"audio file {src} cannot be played: {exc}") from None

        return await self._once(path, convert)

    def _audio_path(self, src: Path) -> Path:
        try:
            st = src.stat()
        except OSError as exc:
            raise PromptError(f"audio file {src}: {exc.strerror or exc}") from None
        key = f"file|{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.clock_rate}"
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.wav"

    def fallback(self) -> Path:
        return self.fallback_path

    def beep(self) -> Path:
        return self.beep_path

    async def _once(self, path: Path, make: Callable[[], Awaitable[None]]) -> Path:
        if _exists(path):
            return path
        if path in self._pending:
            return await asyncio.shield(self._pending[path])
        fut: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._pending[path] = fut
        try:
            await make()
            fut.set_result(path)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved here; waiters get it through the future
            raise
        finally:
            del self._pending[path]
        return path

    async def render_all(self, prompts: Iterable[str | tuple[str, str, str | None, int | None]]) -> list[Path]:
        """Render ahead of calls: texts, or (text, language, voice, rate) tuples.

        One that fails is logged and skipped: calls then hear the fallback tone in its place (and the
        next call tries to render it again)."""
        todo = list(dict.fromkeys((p, "", None, None) if isinstance(p, str) else p for p in prompts))
        out = []
        for i, (text, language, voice, rate) in enumerate(todo, 1):
            fresh = not self.path_for(text, self.voice_for(language, voice), rate or self.words_per_minute).exists()
            try:
                out.append(await self.render(text, language, voice, rate))
            except PromptError as exc:
                log.error("prompt %d/%d cannot be rendered: %s", i, len(todo), exc)
                continue
            if fresh:
                log.info("prompt rendered %d/%d: %s", i, len(todo), out[-1].name)
        return out

    async def _render(self, text: str, path: Path, voice: str, wpm: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        raw = path.with_suffix(f".{os.getpid()}.tts.wav")
        cmd = [sys.executable, "-m", "ivr.prompts", "--out", str(raw), "--wpm", str(wpm)]
        if voice:
            cmd += ["--voice", voice]
        proc = await asyncio.create_subprocess_exec(
            *cmd, text, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0 or not raw.exists() or raw.stat().st_size <= 44:
            raw.unlink(missing_ok=True)
            detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no audio produced"]
            raise PromptError(f"text-to-speech failed for {text[:40]!r}: {detail[0]}")
        part = path.with_suffix(f".{os.getpid()}.part.wav")  # renamed into place: a cache shared by
        try:                                                   # several servers never shows half a file
            await asyncio.to_thread(self._convert, raw, part, self.clock_rate)
            part.replace(path)
        finally:
            raw.unlink(missing_ok=True)
            part.unlink(missing_ok=True)


def _exists(path: Path) -> bool:
    return path.exists()


def _speak_to_file(text: str, out: str, wpm: int, voice: str) -> None:
    """Speak ``text`` into a WAV through pyttsx3's espeak-ng binding, synchronously.

    pyttsx3's own ``save_to_file`` (2.99) writes the file from inside the synthesis callback before
    the last buffer is appended, and sometimes not at all; driving the same binding in espeak's
    synchronous mode gets every sample, every time.
    """
    import ctypes
    import wave

    from pyttsx3.drivers import _espeak as espeak

    rate = espeak.Initialize(espeak.AUDIO_OUTPUT_SYNCHRONOUS, 500)
    if rate <= 0:
        raise RuntimeError("espeak-ng failed to initialize")
    chunks: list[bytes] = []

    def collect(wav: Any, numsamples: int, events: Any) -> int:
        if numsamples > 0:
            chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0

    espeak.SetSynthCallback(collect)
    espeak.SetParameter(espeak.RATE, wpm, 0)
    if voice:
        wanted = voice.lower()
        names = [
            v.name for v in espeak.ListVoices()
            if wanted in (v.name.decode().lower(), v.identifier.decode().lower(),
                          v.identifier.decode().lower().split("/")[-1])
        ]
        if not names or espeak.SetVoiceByName(names[0]) != 0:
            raise ValueError(f"unknown voice {voice!r} (see `espeak-ng --voices`)")
    if espeak.Synth(text.encode("utf-8"), flags=espeak.ENDPAUSE | espeak.CHARS_UTF8) != 0:
        raise RuntimeError("espeak-ng refused the text")
    espeak.Synchronize()
    if not chunks:
        raise RuntimeError("espeak-ng produced no audio")
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(chunks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.prompts", description="Speak TEXT into a WAV file.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--wpm", type=int, default=160)
    parser.add_argument("--voice", default="")
    parser.add_argument("text")
    args = parser.parse_args(argv)
    try:
        _speak_to_file(args.text, args.out, args.wpm, args.voice)
    except Exception as exc:  # reported to the parent through stderr and the exit code
        print(f"pyttsx3/espeak-ng: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

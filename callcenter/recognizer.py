"""The speech recognizer of `speech` nodes: asr's StreamingRecognizer, configured from [asr].

The model loads on the recognizer's worker thread when the first speech node listens (a server
whose flows never listen never loads it). Results reach the call's actor as plain callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from asr.config import AsrConfig
from asr.engines import check_phrases
from asr.session import PhraseHeard, SpeechBegan, SpeechEvent
from asr.streaming import Listener, StreamingRecognizer

from .settings import Settings


class SpeechRecognizer:
    def __init__(self, config: AsrConfig) -> None:
        self._streaming = StreamingRecognizer(config)

    async def open_listener(self, phrases: Sequence[str], language: str, rate: int,
                            on_event: Callable[[str, str | None, float], None]) -> Listener:
        def deliver(event: SpeechEvent) -> None:
            if isinstance(event, SpeechBegan):
                on_event("started", None, 0.0)
            elif isinstance(event, PhraseHeard):
                on_event("result", event.phrase, event.confidence)

        return await self._streaming.open(phrases, language, rate, on_event=deliver)

    async def aclose(self) -> None:
        await self._streaming.aclose()


def asr_config(settings: Settings) -> AsrConfig:
    if settings.asr_engine == "vosk":
        return AsrConfig(engine="vosk", vosk_model=settings.vosk_model)
    return AsrConfig(engine="pocketsphinx")


def open_recognizer(settings: Settings) -> SpeechRecognizer:
    return SpeechRecognizer(asr_config(settings))


def phrase_checker(settings: Settings) -> Callable[[Sequence[str], str], list[str]]:
    """For flow validation: the words of a speech node's phrases the configured recognizer lacks."""
    config = asr_config(settings)
    return lambda phrases, language: check_phrases(config, phrases, language)

"""A synchronous, single-utterance grammar session: feed call audio, get ``SpeechBegan`` then ``PhraseHeard``.

    session = open_phrase_session(config, ["sales", "billing", "opening hours"], "en", rate=8000)
    for chunk in frames:                       # int16 numpy arrays, any length (e.g. 20 ms)
        for event in session.feed(chunk): ...
    last = session.close()                     # PhraseHeard if speech was cut short, else None

Pipeline: resample to the engine's rate (asr/resample.py, with bandwidth extension for 8 kHz) -> pocketsphinx's
VAD ``Endpointer`` (the same for every engine) -> the engine's grammar decoder, fed only the speech the
endpointer passes. ``SpeechBegan`` comes when the endpointer enters speech (about one endpoint window after the
caller starts: use it for barge-in); ``PhraseHeard`` when it leaves speech (after ~``endpoint_window`` of
trailing silence) or ``max_speech`` seconds into the utterance. Times are seconds of audio since the session
began. After ``PhraseHeard`` the session is finished: further audio is ignored. Not thread-safe: one thread
at a time (asr/streaming.py runs sessions on its worker thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pocketsphinx  # type: ignore[import-untyped]

from asr.config import AsrConfig
from asr.engines import Engine, PhraseDecoder, load_engine, validate
from asr.exceptions import AsrError
from asr.resample import Resampler


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """The caller started speaking ``at`` seconds into the session's audio."""

    at: float
    type: Literal["speech_began"] = "speech_began"


@dataclass(frozen=True, slots=True)
class PhraseHeard:
    """The final result: ``phrase`` (as the caller of open gave it) or None when nothing matched."""

    phrase: str | None
    confidence: float
    at: float
    type: Literal["phrase_heard"] = "phrase_heard"


SpeechEvent = SpeechBegan | PhraseHeard


class PhraseSession:
    """One listen: audio in, at most one ``SpeechBegan`` and one ``PhraseHeard`` out."""

    def __init__(self, engine: Engine, config: AsrConfig, phrases: dict[str, str], rate: int) -> None:
        fold = config.bandwidth_extension if rate <= 8000 < engine.sample_rate else 0.0
        self._resampler = Resampler(rate, engine.sample_rate, fold=fold)
        self._ep = pocketsphinx.Endpointer(window=config.endpoint_window, ratio=config.endpoint_ratio,
                                           vad_mode=config.vad_mode, sample_rate=engine.sample_rate)
        self._frame = self._ep.frame_bytes // 2
        self._frame_seconds = self._frame / engine.sample_rate
        self._max_speech_frames = int(config.max_speech / self._frame_seconds)
        self._pending = np.zeros(0, np.int16)
        self._phrases = phrases
        self.rate = rate
        self.engine = engine.name
        self.samples_in = 0
        self._speech_frames = 0
        self._began: float | None = None
        self._done = False
        self._decoder: PhraseDecoder | None = engine.phrase_decoder(tuple(phrases))

    @property
    def finished(self) -> bool:
        return self._done

    @property
    def elapsed(self) -> float:
        """Seconds of audio fed so far."""
        return self.samples_in / self.rate

    def feed(self, pcm: np.ndarray) -> list[SpeechEvent]:
        """Process one chunk of int16 mono PCM at the session's rate; returns the events it completed."""
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise AsrError("feed() takes a 1-D numpy int16 array of mono PCM")
        if self._done:
            return []
        self.samples_in += len(pcm)
        buf = np.concatenate((self._pending, self._resampler.process(pcm)))
        events: list[SpeechEvent] = []
        n = len(buf) // self._frame
        for i in range(n):
            speech = self._ep.process(buf[i * self._frame:(i + 1) * self._frame].tobytes())
            if self._take(speech, events):
                break
        self._pending = buf[n * self._frame:] if not self._done else np.zeros(0, np.int16)
        return events

    def _take(self, speech: bytes | None, events: list[SpeechEvent]) -> bool:
        """Hand one endpointer output to the decoder; True when the utterance ended."""
        if speech is None:
            return False
        if self._began is None:
            self._began = float(self._ep.speech_start)
            events.append(SpeechBegan(at=round(self._began, 3)))
        assert self._decoder is not None
        self._decoder.process(np.frombuffer(speech, np.int16))
        self._speech_frames += 1
        if not self._ep.in_speech:
            events.append(self._final(float(self._ep.speech_end)))
            return True
        if self._speech_frames >= self._max_speech_frames:
            events.append(self._final(self._began + self._speech_frames * self._frame_seconds))
            return True
        return False

    def _final(self, at: float) -> PhraseHeard:
        assert self._decoder is not None
        try:
            phrase, confidence = self._decoder.finish()
        finally:
            self._release()
        return PhraseHeard(phrase=self._phrases.get(phrase) if phrase is not None else None,
                           confidence=round(confidence, 4), at=round(at, 3))

    def _release(self) -> None:
        self._done = True
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            decoder.release()

    def close(self) -> PhraseHeard | None:
        """End the session: the result of an utterance still in progress, else None. Idempotent."""
        if self._done:
            return None
        if self._began is None:
            self._release()
            return None
        events: list[SpeechEvent] = []
        try:
            tail = self._ep.end_stream(self._pending.tobytes()) if len(self._pending) else None
            if tail and self._take(tail, events):
                return events[-1] if isinstance(events[-1], PhraseHeard) else None
            return self._final(self._began + self._speech_frames * self._frame_seconds)
        finally:
            self._release()


def open_phrase_session(config: AsrConfig, phrases: Sequence[str], language: str = "en",
                        rate: int = 8000) -> PhraseSession:
    """Start listening for one of ``phrases`` (lower-case word strings) in ``language`` on ``rate`` Hz audio.

    Raises BadPhrases / UnknownWords (naming the words the engine lacks), UnsupportedLanguage, UnsupportedRate
    or AsrConfigError. The first call loads the engine's model (see asr.engines.load_engine).
    """
    engine = load_engine(config)
    norm = validate(engine, phrases, language)
    return PhraseSession(engine, config, norm, rate)

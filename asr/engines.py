"""The engine layer shared by the IVR's streaming recognizer and (later) batch transcription.

An ``Engine`` is one loaded model (expensive: load once per process and reuse, see ``load_engine``). It knows
its language(s), its native sample rate, which words it can recognize, and makes cheap per-utterance
``PhraseDecoder`` objects for grammar mode: feed 16-bit PCM at ``engine.sample_rate``, then ``finish()`` gives
the phrase heard (or None) with a confidence in 0..1. A decoder is used by one thread at a time and must be
``release()``d so the engine can reuse its resources.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from asr.config import AsrConfig
from asr.exceptions import BadPhrases, UnknownWords, UnsupportedLanguage

_WORD = re.compile(r"^[a-z0-9\u00c0-\uffff][a-z0-9'\u00c0-\uffff-]*$")


class PhraseDecoder(Protocol):
    """One grammar-mode utterance: ``process`` audio, then ``finish`` once; ``release`` always."""

    def process(self, pcm: np.ndarray) -> None: ...

    def finish(self) -> tuple[str | None, float]:
        """End the utterance: (the normalized phrase heard or None when nothing matched, confidence 0..1)."""
        ...

    def release(self) -> None: ...


class Engine(Protocol):
    name: str
    sample_rate: int
    load_seconds: float

    def supports(self, language: str) -> bool: ...

    def unknown_words(self, words: Sequence[str]) -> list[str]: ...

    def phrase_decoder(self, phrases: tuple[str, ...]) -> PhraseDecoder:
        """A decoder listening for exactly ``phrases`` (normalized, validated)."""
        ...


def normalize_phrases(phrases: Sequence[str]) -> dict[str, str]:
    """Map each phrase's normalized form (lower case, single spaces) to the phrase as given.

    Raises BadPhrases for an empty list, an empty phrase or one with characters other than letters, digits,
    apostrophes and hyphens (engines' grammars have no syntax for the rest).
    """
    if isinstance(phrases, str):
        raise BadPhrases("phrases must be a list of strings, not one string")
    out: dict[str, str] = {}
    for phrase in phrases:
        if not isinstance(phrase, str):
            raise BadPhrases(f"a phrase must be a string, not {phrase!r}")
        words = phrase.lower().split()
        if not words:
            raise BadPhrases("a phrase is empty")
        bad = [w for w in words if not _WORD.match(w)]
        if bad:
            raise BadPhrases(f"phrase {phrase!r}: {bad[0]!r} is not a plain word (letters, digits, ' and - only)")
        out.setdefault(" ".join(words), phrase)
    if not out:
        raise BadPhrases("the phrase list is empty")
    return out


def check_language(engine: Engine, language: str) -> None:
    if not engine.supports(language):
        raise UnsupportedLanguage(f"the {engine.name} engine has no model for language {language!r}")


def validate(engine: Engine, phrases: Sequence[str], language: str) -> dict[str, str]:
    """Normalize ``phrases`` and check them and ``language`` against ``engine``; raises a clear AsrError."""
    check_language(engine, language)
    norm = normalize_phrases(phrases)
    unknown = engine.unknown_words(sorted({w for p in norm for w in p.split()}))
    if unknown:
        raise UnknownWords(unknown, engine.name)
    return norm


_engines: dict[AsrConfig, Engine] = {}
_engines_lock = threading.Lock()


def load_engine(config: AsrConfig) -> Engine:
    """The process-wide engine for ``config``: loaded on first use (acoustic model, dictionary), then shared."""
    with _engines_lock:
        engine = _engines.get(config)
        if engine is None:
            if config.engine == "vosk":
                from asr.vosk_engine import VoskEngine
                engine = VoskEngine(config)
            else:
                from asr.pocketsphinx_engine import PocketsphinxEngine
                engine = PocketsphinxEngine(config)
            _engines[config] = engine
        return engine


def check_phrases(config: AsrConfig, phrases: Sequence[str], language: str = "en") -> list[str]:
    """The words of ``phrases`` the configured engine cannot recognize (empty: all fine); for flow validation.

    Cheap for pocketsphinx (reads the pronunciation dictionary once, loads no acoustic model). Raises
    BadPhrases for malformed phrases and UnsupportedLanguage for a language the engine lacks.
    """
    if config.engine == "pocketsphinx":
        from asr.pocketsphinx_engine import dictionary_words, supports_language
        if not supports_language(config, language):
            raise UnsupportedLanguage(f"the pocketsphinx engine has no model for language {language!r}")
        known = dictionary_words(config)
        words = sorted({w for p in normalize_phrases(phrases) for w in p.split()})
        return [w for w in words if w not in known]
    engine = load_engine(config)
    check_language(engine, language)
    return engine.unknown_words(sorted({w for p in normalize_phrases(phrases) for w in p.split()}))

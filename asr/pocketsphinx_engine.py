"""The pocketsphinx engine: the bundled 16 kHz US-English model in JSGF grammar mode.

Loading a ``Decoder`` (acoustic model + dictionary) costs ~0.1-0.2 s and ~20 MB, so the engine keeps a pool
of idle decoders; a session borrows one, activates the grammar for its phrase set (compiled once per decoder
and phrase set, then only re-activated) and gives it back. The feature extractor's noise and cepstral mean
estimates would carry one caller's channel into the next session on the same decoder (results then depended on
history), so each session starts with a fresh one (``reinit_feat``).

Recognition and confidence. The grammar is the bare alternation of the phrases, with no forced path: speech
that fits none of them often lets no path reach the grammar's final state (or only silence), and that is
reported as nothing matched (None). When a phrase is found, its confidence is the lowest lattice posterior
probability of its words (``Segment.prob``; pocketsphinx computes it from the utterance's word lattice). It
measures how clearly the audio preferred this phrase over the grammar's other paths; it is not a garbage
model, so out-of-grammar words that sound like a phrase ("filling" for "billing") can still be accepted with
a high value (bench/asr_stream.py measures the false-accept rate). pocketsphinx holds the GIL while decoding.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pocketsphinx  # type: ignore[import-untyped]

from asr.config import AsrConfig
from asr.exceptions import AsrConfigError

_MAX_GRAMMARS_PER_DECODER = 32
_MAX_IDLE_DECODERS = 16
_FILLERS = ("<s>", "</s>", "<sil>", "[NOISE]", "++", "[")


def _paths(config: AsrConfig) -> tuple[str, str]:
    hmm = config.pocketsphinx_model or Path(pocketsphinx.get_model_path("en-us/en-us"))
    dic = config.pocketsphinx_dict or Path(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"))
    if not Path(hmm).is_dir():
        raise AsrConfigError(f"pocketsphinx acoustic model directory not found: {hmm}")
    if not Path(dic).is_file():
        raise AsrConfigError(f"pocketsphinx dictionary not found: {dic}")
    return str(hmm), str(dic)


def supports_language(config: AsrConfig, language: str) -> bool:
    def primary(tag: str) -> str:
        return tag.lower().replace("_", "-").split("-")[0]
    return primary(language) == primary(config.pocketsphinx_language)


@functools.cache
def _read_dictionary(path: str) -> frozenset[str]:
    words = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            head = line.split(maxsplit=1)
            if head:
                words.add(head[0].split("(", 1)[0].lower())
    return frozenset(words)


def dictionary_words(config: AsrConfig) -> frozenset[str]:
    """Every word of the configured pronunciation dictionary (read once per path)."""
    return _read_dictionary(_paths(config)[1])


def jsgf(phrases: Sequence[str]) -> str:
    """The JSGF grammar accepting exactly one of ``phrases`` (normalized word strings)."""
    return "#JSGF V1.0;\ngrammar menu;\npublic <phrase> = " + " | ".join(phrases) + ";\n"


class PocketsphinxEngine:
    """One pocketsphinx model shared by every session of the process; thread-safe."""

    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self, config: AsrConfig) -> None:
        self.config = config
        self._hmm, self._dict = _paths(config)
        self._lock = threading.Lock()
        self._idle: list[_PooledDecoder] = []
        self.decoders_created = 0
        started = time.perf_counter()
        self._idle.append(self._new_decoder())        # load now: fail at start-up, not on the first call
        self.load_seconds = time.perf_counter() - started

    def supports(self, language: str) -> bool:
        return supports_language(self.config, language)

    def unknown_words(self, words: Sequence[str]) -> list[str]:
        known = _read_dictionary(self._dict)
        return [w for w in words if w not in known]

    def _new_decoder(self) -> _PooledDecoder:
        try:
            decoder = pocketsphinx.Decoder(hmm=self._hmm, dict=self._dict, lm=None, loglevel="FATAL",
                                           samprate=float(self.sample_rate))
        except (RuntimeError, ValueError) as exc:
            raise AsrConfigError(f"pocketsphinx could not load {self._hmm}: {exc}") from exc
        self.decoders_created += 1
        return _PooledDecoder(decoder)

    def phrase_decoder(self, phrases: tuple[str, ...]) -> PocketsphinxPhraseDecoder:
        with self._lock:
            pooled = self._idle.pop() if self._idle else None
        if pooled is None:
            pooled = self._new_decoder()
        try:
            pooled.activate(phrases)
        except BaseException:
            self._give_back(pooled)
            raise
        return PocketsphinxPhraseDecoder(self, pooled, phrases)

    def _give_back(self, pooled: _PooledDecoder) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE_DECODERS:
                self._idle.append(pooled)

    def idle_decoders(self) -> int:
        with self._lock:
            return len(self._idle)


class _PooledDecoder:
    """A Decoder with the grammars it has compiled, least recently used first."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.searches: OrderedDict[tuple[str, ...], str] = OrderedDict()

    def activate(self, phrases: tuple[str, ...]) -> None:
        name = self.searches.get(phrases)
        if name is None:
            name = "g" + hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:16]
            self.decoder.add_jsgf_string(name, jsgf(phrases))
            self.searches[phrases] = name
            if len(self.searches) > _MAX_GRAMMARS_PER_DECODER:
                _, old = self.searches.popitem(last=False)
                self.decoder.remove_search(old)
        else:
            self.searches.move_to_end(phrases)
        self.decoder.activate_search(name)
        self.decoder.reinit_feat()           # fresh noise and cepstral-mean estimates: else the last caller's
                                             # channel biases this one (~25 us)


class PocketsphinxPhraseDecoder:
    """One utterance on a borrowed decoder; feed 16 kHz int16 PCM."""

    def __init__(self, engine: PocketsphinxEngine, pooled: _PooledDecoder, phrases: tuple[str, ...]) -> None:
        self._engine = engine
        self._pooled: _PooledDecoder | None = pooled
        self._phrases = frozenset(phrases)
        self._started = False

    def process(self, pcm: np.ndarray) -> None:
        if self._pooled is None:
            return
        if not self._started:
            self._pooled.decoder.start_utt()
            self._started = True
        self._pooled.decoder.process_raw(np.ascontiguousarray(pcm, dtype=np.int16).tobytes(), False, False)

    def finish(self) -> tuple[str | None, float]:
        if self._pooled is None or not self._started:
            return None, 0.0
        decoder = self._pooled.decoder
        decoder.end_utt()
        self._started = False
        hyp = decoder.hyp()
        text = " ".join(hyp.hypstr.split()) if hyp is not None else ""
        if text not in self._phrases:
            return None, 0.0
        probs = [float(s.prob) for s in decoder.seg() if not s.word.startswith(_FILLERS)]
        return text, max(0.0, min(1.0, min(probs, default=0.0)))

    def release(self) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is None:
            return
        if self._started:
            pooled.decoder.end_utt()
        self._engine._give_back(pooled)

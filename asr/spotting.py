"""Keyword spotting over recorded audio: find where given phrases were said, without trusting free transcription.

    hits = spot("call.wav", ["pound key", "thank you for calling"], speaker="customer")
    # [Spotted(phrase="pound key", speaker="customer", start=2.37, end=3.12, score=0.93, log10_ratio=0.41)]

Free transcription of telephone speech with pocketsphinx gets about 60% of the words wrong (bench/asr_accuracy.py
measures it), so keyword rules also run their phrases through pocketsphinx's keyword-spotting search, which only asks
"was this phrase said here?". For every frame, that search compares the best path through the phrase's
triphone HMMs with the best path through a free loop of phones over the same frames, and reports a detection
when the phrase's log-likelihood is within a threshold of the loop's. We express that margin per phone
(``log10_ratio``: log10 of the phrase-vs-phone-loop likelihood ratio divided by the phrase's phone count), so
one threshold fits phrases of any length; a phrase is reported when its ratio reaches ``thresholds[phrase]``
(default ``DEFAULT_THRESHOLD``). ``score`` maps the ratio to 0..1 (0.5 at the default threshold, 0.91 one unit
above it). Measured on the human Asterisk prompts (bench/asr_accuracy.py): at -2.0 about 64% of spoken phrases
are found, with two false alarms per hundred (phrase, prompt) pairs that were not said.

The audio is cut into speech segments by the VAD (asr/vad.py) and each is searched on its own (16 kHz:
telephone audio is upsampled). Overlapping detections of one phrase are merged (the best kept). A stereo file
is searched on the speaker's channel (left customer, right agent). Phrases whose words the pronunciation
dictionary lacks raise ``UnknownWords``; malformed ones ``BadPhrases``.

With ``engine="vosk"`` there is no keyword search: the phrases are matched in vosk's free transcription
(word sequences; score = the lowest word confidence), which is good when the vosk model is.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.config import AsrConfig
from asr.engines import normalize_phrases
from asr.exceptions import AsrConfigError, BadAudio, UnknownWords
from asr.transcript import SPEAKERS, Speaker
from asr.vad import VadConfig, speech_segments
from asr.wav import Audio, read_wav, to_rate

DEFAULT_THRESHOLD = -2.0          # per-phone log10 likelihood ratio (phrase vs free phone loop)
_KWS_MAX = 1500                   # pocketsphinx's kws offset (detection prob = margin - KWS_MAX, in senscr units)
_SENSCR = 1024 * math.log10(1.0001)   # log10 per senscr unit (logbase 1.0001, SENSCR_SHIFT 10)
_MAX_SEARCHES = 16


@dataclass(frozen=True, slots=True)
class Spotted:
    phrase: str                   # as given
    speaker: Speaker
    start: float                  # seconds (offset_s added)
    end: float
    score: float                  # 0..1, 0.5 at DEFAULT_THRESHOLD
    log10_ratio: float = 0.0      # per phone; pocketsphinx only (vosk: 0)


def score_of(log10_ratio: float) -> float:
    """The 0..1 score of a per-phone log10 ratio: a logistic centred on DEFAULT_THRESHOLD."""
    return round(1.0 / (1.0 + 10.0 ** (-(log10_ratio - DEFAULT_THRESHOLD))), 4)


class KeywordSpotter:
    """One loaded pocketsphinx keyword-spotting decoder (or a vosk transcriber) for many files.

    Not thread-safe: one per worker process or thread.
    """

    def __init__(self, engine: str = "pocketsphinx", *, vosk_model: Path | None = None,
                 config: AsrConfig | None = None, vad: VadConfig | None = None) -> None:
        self.config = config or AsrConfig()
        self.vad = vad or VadConfig()
        self.engine = engine
        self._searches: OrderedDict[tuple[tuple[str, float], ...], str] = OrderedDict()
        self._vosk: Any = None
        if engine == "pocketsphinx":
            import pocketsphinx  # type: ignore[import-untyped]

            from asr.pocketsphinx_engine import _paths
            hmm, dic = _paths(self.config)
            try:
                self._decoder: Any = pocketsphinx.Decoder(hmm=hmm, dict=dic, lm=None, loglevel="FATAL",
                                                          samprate=16000.0)
            except (RuntimeError, ValueError) as exc:
                raise AsrConfigError(f"pocketsphinx could not load {hmm}: {exc}") from exc
            self._frate = int(self._decoder.config["frate"])
        elif engine == "vosk":
            from asr.transcribe import FileTranscriber
            self._vosk = FileTranscriber("vosk", vosk_model=vosk_model, config=self.config, vad=self.vad,
                                         language=self.config.vosk_language or "")
        else:
            raise AsrConfigError(f"engine must be 'pocketsphinx' or 'vosk', not {engine!r}")
        self._lock = threading.Lock()

    # -- phrases ------------------------------------------------------------------------------------------
    def phones(self, phrase: str) -> int:
        """How many phones the phrase has (first pronunciation of each word)."""
        return sum(len((self._decoder.lookup_word(w) or "").split()) for w in phrase.split())

    def _check(self, phrases: Sequence[str]) -> dict[str, str]:
        norm = normalize_phrases(phrases)
        words = sorted({w for p in norm for w in p.split()})
        if self.engine == "pocketsphinx":
            missing = [w for w in words if self._decoder.lookup_word(w) is None]
        else:
            missing = self._vosk_unknown(words)
        if missing:
            raise UnknownWords(missing, self.engine)
        return norm

    def _vosk_unknown(self, words: list[str]) -> list[str]:
        model = self._vosk._backend._model
        return [w for w in words if model.vosk_model_find_word(w) < 0]

    def _activate(self, norm: dict[str, str], thresholds: Mapping[str, float]) -> None:
        key = tuple(sorted((p, float(thresholds.get(given, thresholds.get(p, DEFAULT_THRESHOLD))))
                           for p, given in norm.items()))
        name = self._searches.get(key)
        if name is None:
            name = "k" + hashlib.sha1(repr(key).encode()).hexdigest()[:16]
            fd, keyfile = tempfile.mkstemp(prefix="kws-", suffix=".txt")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    for phrase, t in key:
                        f.write(f"{phrase} /1e{max(-300, round(t * self.phones(phrase)))}/\n")
                self._decoder.add_kws(name, keyfile)
            finally:
                os.unlink(keyfile)
            self._searches[key] = name
            if len(self._searches) > _MAX_SEARCHES:
                _, old = self._searches.popitem(last=False)
                self._decoder.remove_search(old)
        else:
            self._searches.move_to_end(key)
        self._decoder.activate_search(name)

    # -- spotting -----------------------------------------------------------------------------------------
    def spot(self, path: Path | str, phrases: Sequence[str], *, speaker: Speaker, offset_s: float = 0.0,
             thresholds: Mapping[str, float] | None = None) -> list[Spotted]:
        """Where ``phrases`` were said in a WAV file (a stereo one: the speaker's channel)."""
        return self.spot_audio(read_wav(path), phrases, speaker=speaker, offset_s=offset_s,
                               thresholds=thresholds, source=str(path))

    def spot_audio(self, audio: Audio, phrases: Sequence[str], *, speaker: Speaker, offset_s: float = 0.0,
                   thresholds: Mapping[str, float] | None = None, source: str = "") -> list[Spotted]:
        if speaker not in SPEAKERS:
            raise ValueError(f"speaker must be one of {SPEAKERS}, not {speaker!r}")
        if audio.channels == 1:
            pcm = audio.channel(0)
        elif audio.channels == 2:
            pcm = audio.channel(SPEAKERS.index(speaker))
        else:
            raise BadAudio(f"{source or 'audio'}: {audio.channels} channels; expected mono or stereo")
        return self.spot_pcm(pcm, audio.rate, phrases, speaker=speaker, offset_s=offset_s, thresholds=thresholds)

    def spot_pcm(self, pcm: np.ndarray, rate: int, phrases: Sequence[str], *, speaker: Speaker,
                 offset_s: float = 0.0, thresholds: Mapping[str, float] | None = None) -> list[Spotted]:
        """Where ``phrases`` were said in mono int16 ``pcm`` at ``rate``; in time order."""
        with self._lock:
            norm = self._check(phrases)
            if self.engine == "vosk":
                return self._spot_vosk(pcm, rate, norm, speaker, offset_s)
            self._activate(norm, thresholds or {})
            x = np.asarray(pcm, dtype=np.int16)
            d = self._decoder
            d.reinit_feat()
            found: list[Spotted] = []
            for seg in speech_segments(x, rate, self.vad):
                piece = to_rate(x[int(seg.start * rate):int(seg.end * rate)], rate, 16000,
                                self.config.bandwidth_extension)
                d.start_utt()
                d.process_raw(piece.tobytes(), False, True)
                d.end_utt()
                for s in d.seg() or ():
                    phrase = " ".join(s.word.split())
                    if phrase not in norm:
                        continue
                    margin = math.log(max(float(s.prob), 1e-300)) / math.log(1.0001) + _KWS_MAX
                    ratio = margin * _SENSCR / max(1, self.phones(phrase))
                    start = seg.start + s.start_frame / self._frate
                    end = min(seg.start + (s.end_frame + 1) / self._frate, seg.end)
                    found.append(Spotted(norm[phrase], speaker, round(start + offset_s, 3),
                                         round(end + offset_s, 3), score_of(ratio), round(ratio, 3)))
            return _merge(found)

    def _spot_vosk(self, pcm: np.ndarray, rate: int, norm: dict[str, str], speaker: Speaker,
                   offset_s: float) -> list[Spotted]:
        words = [w for u in self._vosk.transcribe_pcm(pcm, rate, speaker) for w in u.words]
        found = []
        for phrase, given in norm.items():
            target = phrase.split()
            for i in range(len(words) - len(target) + 1):
                run = words[i:i + len(target)]
                if [w.word for w in run] == target:
                    found.append(Spotted(given, speaker, round(run[0].start + offset_s, 3),
                                         round(run[-1].end + offset_s, 3), min(w.confidence for w in run)))
        return _merge(found)


def _merge(found: list[Spotted]) -> list[Spotted]:
    """Overlapping detections of the same phrase become the best-scored one; the result is in time order."""
    out: list[Spotted] = []
    for s in sorted(found, key=lambda s: (s.phrase, s.start)):
        if out and out[-1].phrase == s.phrase and s.start < out[-1].end:
            if s.score > out[-1].score:
                out[-1] = s
            continue
        out.append(s)
    out.sort(key=lambda s: (s.start, s.phrase))
    return out


_spotters: dict[tuple[str, str], KeywordSpotter] = {}
_spotters_lock = threading.Lock()


def spot(path: Path | str, phrases: Sequence[str], *, speaker: Speaker, offset_s: float = 0.0,
         engine: str = "pocketsphinx", vosk_model: Path | None = None,
         thresholds: Mapping[str, float] | None = None) -> list[Spotted]:
    """Where ``phrases`` were said in ``path`` (see KeywordSpotter; one spotter per engine is kept)."""
    key = (engine, str(vosk_model or ""))
    with _spotters_lock:
        spotter = _spotters.get(key)
        if spotter is None:
            spotter = _spotters[key] = KeywordSpotter(engine, vosk_model=vosk_model)
    return spotter.spot(path, phrases, speaker=speaker, offset_s=offset_s, thresholds=thresholds)

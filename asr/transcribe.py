"""Offline transcription of recordings: each channel decoded on its own, split into utterances by VAD.

    transcript = transcribe_call({"customer": caller_wav, "agent": agent_wav}, call_id="c-17")
    transcript = transcribe_file("call.wav")            # stereo: left customer, right agent
    worker = FileTranscriber("vosk", vosk_model=path)   # loads the model once; then many files
    worker.transcribe_file(path) ...

Pipeline per channel: read the WAV (asr/wav.py; BadAudio for truncated or non-WAV input), find the speech
segments (asr/vad.py, webrtcvad), decode each segment as one utterance, and keep the words with their times
(seconds from the start of the file) and confidences. An utterance spans its first word's start to its last
word's end (the VAD padding is not counted as speech, so talk-time and overtalk measures stay honest);
segments in which the engine heard no word are dropped. Utterances of both speakers are merged in time order.

Engines (free transcription, no grammar):
- ``pocketsphinx``: the US-English acoustic model, dictionary and trigram language model bundled in its wheel
  (16 kHz; 8 kHz telephone audio is upsampled with ``AsrConfig.bandwidth_extension``). Word times come from
  its segmentation (100 frames a second), confidences from the lattice posterior of each word (``seg.prob``).
  The feature extractor is reset at the start of each channel, so a result never depends on the previous file.
- ``vosk``: a Kaldi model directory (``vosk_model``), ``KaldiRecognizer(model, rate)`` per segment with
  ``SetWords(True)``: word times and confidences are vosk's own; ``[unk]`` is dropped.

A ``FileTranscriber`` is not thread-safe: one per worker process (pocketsphinx holds the GIL while decoding,
so threads would not run in parallel anyway). The module-level functions keep one per engine and model.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from asr.config import AsrConfig
from asr.exceptions import AsrConfigError, BadAudio, EngineUnavailable, UnsupportedLanguage
from asr.transcript import SPEAKERS, Speaker, Transcript, Utterance, Word
from asr.vad import Segment, VadConfig, speech_segments
from asr.wav import Audio, read_wav, to_rate

_FILLERS = ("<s>", "</s>", "<sil>", "[", "+")


class _Backend(Protocol):
    name: str
    model: str
    sample_rate: int

    def reset(self) -> None: ...

    def decode(self, pcm: np.ndarray) -> list[Word]:
        """Words of one utterance (int16 at ``sample_rate``), times in seconds from its start."""
        ...


class _Pocketsphinx:
    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self, config: AsrConfig) -> None:
        import pocketsphinx  # type: ignore[import-untyped]

        from asr.pocketsphinx_engine import _paths
        hmm, dic = _paths(config)
        lm = pocketsphinx.get_model_path("en-us/en-us.lm.bin")
        try:
            self._decoder: Any = pocketsphinx.Decoder(hmm=hmm, dict=dic, lm=lm, loglevel="FATAL",
                                                      samprate=float(self.sample_rate))
        except (RuntimeError, ValueError) as exc:
            raise AsrConfigError(f"pocketsphinx could not load {hmm}: {exc}") from exc
        self._frate = int(self._decoder.config["frate"])
        self.model = Path(hmm).name

    def reset(self) -> None:
        self._decoder.reinit_feat()

    def decode(self, pcm: np.ndarray) -> list[Word]:
        d = self._decoder
        d.start_utt()
        d.process_raw(np.ascontiguousarray(pcm, dtype=np.int16).tobytes(), False, True)
        d.end_utt()
        if d.hyp() is None:
            return []
        out = []
        for s in d.seg() or ():
            if s.word.startswith(_FILLERS):
                continue
            out.append(Word(s.word.split("(", 1)[0], round(s.start_frame / self._frate, 3),
                            round((s.end_frame + 1) / self._frate, 3), round(max(0.0, min(1.0, float(s.prob))), 4)))
        return out


class _Vosk:
    name = "vosk"

    def __init__(self, model_dir: Path) -> None:
        try:
            self._vosk: Any = importlib.import_module("vosk")
        except ImportError as exc:
            raise EngineUnavailable("the vosk engine needs the vosk package (pip install vosk)") from exc
        if not (model_dir / "am").is_dir() and not (model_dir / "final.mdl").exists():
            raise EngineUnavailable(f"not a vosk model directory: {model_dir}")
        from asr.vosk_engine import _model_rate
        self.sample_rate = _model_rate(model_dir)
        self._vosk.SetLogLevel(-1)
        try:
            self._model = self._vosk.Model(str(model_dir))
        except Exception as exc:  # vosk raises a bare Exception when a model fails to load
            raise EngineUnavailable(f"vosk could not load the model in {model_dir}: {exc}") from exc
        self.model = model_dir.name if model_dir.name != "model" else model_dir.parent.name

    def reset(self) -> None:
        pass

    def decode(self, pcm: np.ndarray) -> list[Word]:
        rec = self._vosk.KaldiRecognizer(self._model, float(self.sample_rate))
        rec.SetWords(True)
        results = []
        raw = np.ascontiguousarray(pcm, dtype=np.int16).tobytes()
        step = self.sample_rate // 5 * 2                        # 200 ms chunks: vosk may endpoint inside
        for i in range(0, len(raw), step):
            if rec.AcceptWaveform(raw[i:i + step]):
                results.append(json.loads(rec.Result()))
        results.append(json.loads(rec.FinalResult()))
        return [Word(w["word"], round(float(w["start"]), 3), round(float(w["end"]), 3),
                     round(max(0.0, min(1.0, float(w.get("conf", 0.0)))), 4))
                for r in results for w in r.get("result", []) if w.get("word") not in ("[unk]", "<unk>", "")]


class FileTranscriber:
    """One loaded engine that transcribes many files; create one per worker process.

    ``engine``: "pocketsphinx" (``config`` may name another acoustic model / dictionary) or "vosk"
    (``vosk_model``: the model directory). ``language``: recorded in each Transcript; pocketsphinx only has
    ``config.pocketsphinx_language`` (default "en"). Loading happens here (UnsupportedLanguage,
    EngineUnavailable, AsrConfigError on failure); ``load_seconds`` says how long it took.
    """

    def __init__(self, engine: str = "pocketsphinx", *, vosk_model: Path | None = None, language: str = "en",
                 config: AsrConfig | None = None, vad: VadConfig | None = None) -> None:
        started = time.perf_counter()
        self.config = config or AsrConfig()
        self.vad = vad or VadConfig()
        self.language = language
        self._backend: _Backend
        if engine == "pocketsphinx":
            from asr.pocketsphinx_engine import supports_language
            if not supports_language(self.config, language):
                raise UnsupportedLanguage(f"the pocketsphinx engine has no model for language {language!r} "
                                          f"(it has {self.config.pocketsphinx_language!r}; use vosk)")
            self._backend = _Pocketsphinx(self.config)
        elif engine == "vosk":
            model = vosk_model or self.config.vosk_model
            if model is None:
                raise AsrConfigError("the vosk engine needs a model directory (vosk_model)")
            self._backend = _Vosk(Path(model))
        else:
            raise AsrConfigError(f"engine must be 'pocketsphinx' or 'vosk', not {engine!r}")
        self.engine = engine
        self.model = self._backend.model
        self.load_seconds = time.perf_counter() - started

    def transcribe_pcm(self, pcm: np.ndarray, rate: int, speaker: Speaker) -> list[Utterance]:
        """The utterances of one channel (mono int16 at ``rate``), times in seconds from its start."""
        if speaker not in SPEAKERS:
            raise ValueError(f"speaker must be one of {SPEAKERS}, not {speaker!r}")
        x = np.asarray(pcm, dtype=np.int16)
        self._backend.reset()
        out = []
        for seg in speech_segments(x, rate, self.vad):
            utt = self._utterance(x, rate, seg, speaker)
            if utt is not None:
                out.append(utt)
        return out

    def _utterance(self, x: np.ndarray, rate: int, seg: Segment, speaker: Speaker) -> Utterance | None:
        piece = x[int(seg.start * rate):int(seg.end * rate)]
        audio = to_rate(piece, rate, self._backend.sample_rate, self.config.bandwidth_extension)
        words = tuple(Word(w.word, round(seg.start + w.start, 3), round(min(seg.start + w.end, seg.end), 3),
                           w.confidence) for w in self._backend.decode(audio))
        if not words:
            return None
        return Utterance(speaker=speaker, start=words[0].start, end=words[-1].end,
                         text=" ".join(w.word for w in words),
                         confidence=round(sum(w.confidence for w in words) / len(words), 4), words=words)

    def transcribe_call(self, channels: Mapping[Speaker, Path | str], *, call_id: str = "") -> Transcript:
        """Each speaker's file decoded separately (a stereo file given for one speaker is mixed down)."""
        if not channels:
            raise ValueError("transcribe_call needs at least one channel")
        utterances: list[Utterance] = []
        duration = 0.0
        for speaker, path in channels.items():
            audio = read_wav(path)
            duration = max(duration, audio.duration_s)
            utterances += self.transcribe_pcm(audio.mono(), audio.rate, speaker)
        return self._transcript(call_id, duration, utterances, {str(s): str(p) for s, p in channels.items()})

    def transcribe_file(self, path: Path | str, *, speaker: Speaker = "customer", call_id: str = "") -> Transcript:
        """One file: mono as ``speaker``; stereo as left = customer, right = agent (``speaker`` ignored)."""
        audio = read_wav(path)
        return self.transcribe_audio(audio, speaker=speaker, call_id=call_id, source=str(path))

    def transcribe_audio(self, audio: Audio, *, speaker: Speaker = "customer", call_id: str = "",
                         source: str = "") -> Transcript:
        if audio.channels == 1:
            utterances = self.transcribe_pcm(audio.channel(0), audio.rate, speaker)
            names: dict[str, str] = {speaker: source}
        elif audio.channels == 2:
            utterances = (self.transcribe_pcm(audio.channel(0), audio.rate, "customer")
                          + self.transcribe_pcm(audio.channel(1), audio.rate, "agent"))
            names = {"customer": source, "agent": source}
        else:
            raise BadAudio(f"{source or 'audio'}: {audio.channels} channels; expected mono or stereo "
                           "(left customer, right agent)")
        return self._transcript(call_id, audio.duration_s, utterances, names)

    def _transcript(self, call_id: str, duration: float, utterances: list[Utterance],
                    channels: dict[str, str]) -> Transcript:
        utterances.sort(key=lambda u: (u.start, SPEAKERS.index(u.speaker)))
        return Transcript(call_id=call_id, duration_s=round(duration, 3), engine=self.engine, model=self.model,
                          language=self.language, utterances=tuple(utterances), channels=channels)


_cache: dict[tuple[str, str, str], FileTranscriber] = {}
_cache_lock = threading.Lock()


def _transcriber(engine: str, vosk_model: Path | None, language: str) -> FileTranscriber:
    key = (engine, str(vosk_model or ""), language)
    with _cache_lock:
        t = _cache.get(key)
        if t is None:
            t = _cache[key] = FileTranscriber(engine, vosk_model=vosk_model, language=language)
        return t


def transcribe_call(channels: Mapping[Speaker, Path], *, engine: str = "pocketsphinx",
                    vosk_model: Path | None = None, call_id: str = "", language: str = "en") -> Transcript:
    """A call's transcript from one file per speaker (see FileTranscriber.transcribe_call)."""
    return _transcriber(engine, vosk_model, language).transcribe_call(channels, call_id=call_id)


def transcribe_file(path: Path | str, speaker: Speaker = "customer", *, engine: str = "pocketsphinx",
                    vosk_model: Path | None = None, call_id: str = "", language: str = "en") -> Transcript:
    """One file's transcript (stereo: left customer, right agent; see FileTranscriber.transcribe_file)."""
    return _transcriber(engine, vosk_model, language).transcribe_file(path, speaker=speaker, call_id=call_id)

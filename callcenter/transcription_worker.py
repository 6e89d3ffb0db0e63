"""The process side of the transcription jobs: what runs inside each worker process of the pool.

``init_worker(config)`` is the pool's initializer: it runs once per worker process, loads the keyword rules and
scorecards and warms the engine (``config.warm``: the model is loaded once, then reused by every job of that
process). ``run_job(job)`` transcribes one call and returns plain dicts (a Transcript's ``to_dict()``, the
analysis as dicts, the redacted copy's metadata) for the parent to store: no database, no event loop here.

The transcriber, analyzer and warm-up are injectable: module-level functions named in ``WorkerConfig`` (a
function pickles by its module and name, so any importable one works with a spawned pool). The defaults call
asr.transcribe.transcribe_call and asr.analysis.analyze.

Channels: the customer is the caller leg, the agent the agent leg. When an agent leg starts late, both channels
are cut from the stereo mix (recordings/stereo.py), which is on the call's timeline, so every time in the
transcript and the analysis is seconds from the start of the call. A redacted copy of the stereo file is
written when the analysis asks for intervals to be silenced.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asr.transcript import Speaker, Transcript, Utterance, Word
from recordings.redact import silence
from recordings.stereo import mix, split

Transcriber = Callable[..., Transcript]     # (channels, *, engine, vosk_model, call_id, language) -> Transcript
Analyzer = Callable[..., Any]               # (transcript, channels, *, rules, scorecards) -> Analysis


_transcribers: dict[tuple[str, str, str], Any] = {}     # this process's loaded engines (asr.transcribe.FileTranscriber)


def _file_transcriber(engine: str, vosk_model: Path | None, language: str) -> Any:
    key = (engine, str(vosk_model or ""), language)
    t = _transcribers.get(key)
    if t is None:
        from asr.transcribe import FileTranscriber
        t = _transcribers[key] = FileTranscriber(engine, vosk_model=vosk_model, language=language)
    return t


def default_transcriber(channels: Mapping[Speaker, Path], *, engine: str, vosk_model: Path | None, call_id: str,
                        language: str) -> Transcript:
    """asr.transcribe: each channel decoded on its own, with this process's FileTranscriber."""
    result: Transcript = _file_transcriber(engine, vosk_model, language).transcribe_call(channels, call_id=call_id)
    return result


def default_analyzer(transcript: Transcript, channels: Mapping[Speaker, Path], *, rules: Any,
                     scorecards: Any) -> Any:
    """asr.analysis.analyze (None when no keyword rules are configured: nothing to analyze with)."""
    if rules is None:
        return None
    from asr.analysis import analyze
    return analyze(transcript, channels, rules=rules, scorecards=scorecards)


def default_warm(config: WorkerConfig) -> None:
    """Load the engine's model once, in the pool initializer (then every job of the process reuses it)."""
    _file_transcriber(config.engine, Path(config.vosk_model) if config.vosk_model else None, config.language)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    engine: str = "pocketsphinx"
    vosk_model: str | None = None
    language: str = "en"
    rules_path: str | None = None
    scorecards_path: str | None = None
    transcriber: Transcriber = default_transcriber
    analyzer: Analyzer | None = default_analyzer
    warm: Callable[[WorkerConfig], None] | None = default_warm


@dataclass(frozen=True, slots=True)
class JobInput:
    job_id: int
    call_id: str
    caller: str | None          # absolute paths of the files
    agent: str | None
    agent_offset_s: float       # the agent leg's start in the call
    stereo: str | None
    redacted_out: str | None    # where the redacted copy of the stereo file goes
    language: str = "en"


class _State:
    config: WorkerConfig | None = None
    rules: Any = None
    scorecards: Any = None
    loaded_at: float = 0.0


def init_worker(config: WorkerConfig) -> None:
    """Pool initializer: once per worker process. Ctrl-C reaches the whole process group: only the server acts
    on it (it stops the runner, which ends the workers), so a worker ignores SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _State.config = config
    if config.rules_path:
        from asr.rules import load_rules
        _State.rules = load_rules(Path(config.rules_path))
    if config.scorecards_path:
        from asr.scorecard import load_scorecards
        _State.scorecards = load_scorecards(Path(config.scorecards_path))
    if config.warm is not None:
        config.warm(config)
    _State.loaded_at = time.time()


def _shift(t: Transcript, speaker: Speaker, offset: float) -> Transcript:
    """Move ``speaker``'s utterances ``offset`` seconds later (a leg transcribed from its own start)."""
    def move(u: Utterance) -> Utterance:
        if u.speaker != speaker:
            return u
        return dataclasses.replace(u, start=u.start + offset, end=u.end + offset,
                                   words=tuple(Word(w.word, w.start + offset, w.end + offset, w.confidence)
                                               for w in u.words))
    utts = sorted((move(u) for u in t.utterances), key=lambda u: u.start)
    return dataclasses.replace(t, utterances=tuple(utts), duration_s=t.duration_s + offset)


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON-able plain data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def analysis_dict(analysis: Any) -> dict[str, Any]:
    """The parts of an asr.analysis.Analysis the parent stores, as plain data."""
    def field(name: str, default: Any) -> Any:
        return analysis.get(name, default) if isinstance(analysis, Mapping) else getattr(analysis, name, default)
    redacted = field("redacted", None)
    return {
        "hits": _plain(field("hits", [])),
        "scores": _plain(field("scores", [])),
        "emotion": _plain(field("emotion", [])),
        "ends_angry": bool(field("ends_angry", False)),
        "redacted": redacted.to_dict() if isinstance(redacted, Transcript) else _plain(redacted),
        "redact_intervals": {str(k): [[float(a), float(b)] for a, b in v]
                             for k, v in (field("redact_intervals", {}) or {}).items()},
    }


def run_job(job: JobInput) -> dict[str, Any]:
    """Transcribe (and analyze, and redact) one call in this worker process; plain dicts out."""
    config = _State.config
    if config is None:
        raise RuntimeError("run_job ran in a process the pool initializer did not set up")
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix=f"cc-job-{job.call_id[:12]}-") as tmp:
        channels, shift = _channels(job, Path(tmp))
        transcript = config.transcriber(channels, engine=config.engine,
                                        vosk_model=Path(config.vosk_model) if config.vosk_model else None,
                                        call_id=job.call_id, language=job.language)
        if shift:
            transcript = _shift(transcript, "agent", shift)
        analysis = None
        if config.analyzer is not None:
            found = config.analyzer(transcript, channels, rules=_State.rules, scorecards=_State.scorecards or [])
            analysis = analysis_dict(found) if found is not None else None
    redacted = None
    intervals = {k: v for k, v in (analysis or {}).get("redact_intervals", {}).items() if v}
    if intervals and job.stereo and job.redacted_out:
        fin = silence(Path(job.stereo), Path(job.redacted_out),
                      {k: [(a, b) for a, b in v] for k, v in intervals.items()})
        redacted = {"path": str(fin.path), "sha256": fin.sha256, "bytes": fin.bytes, "seconds": fin.seconds}
    return {"transcript": transcript.to_dict(), "analysis": analysis, "redacted": redacted,
            "audio_s": transcript.duration_s, "wall_s": time.perf_counter() - started,
            "cpu_s": time.process_time() - cpu, "pid": os.getpid()}


def _channels(job: JobInput, tmp: Path) -> tuple[dict[Speaker, Path], float]:
    """The files to transcribe per speaker, and how far to shift the agent's times afterwards."""
    if job.caller is None and job.agent is None:
        raise FileNotFoundError(f"call {job.call_id} has no recorded leg")
    if job.agent is None:
        return {"customer": Path(job.caller or "")}, 0.0
    if job.caller is None:
        return {"agent": Path(job.agent)}, job.agent_offset_s
    if job.agent_offset_s <= 0:
        return {"customer": Path(job.caller), "agent": Path(job.agent)}, 0.0
    stereo = Path(job.stereo) if job.stereo and Path(job.stereo).exists() else None
    if stereo is None:             # the post-call mix failed: make one here
        stereo = tmp / "stereo.wav"
        mix(Path(job.caller), Path(job.agent), stereo, agent_offset_s=job.agent_offset_s)
    split(stereo, {0: tmp / "customer.wav", 1: tmp / "agent.wav"})
    return {"customer": tmp / "customer.wav", "agent": tmp / "agent.wav"}, 0.0

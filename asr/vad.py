"""Voice-activity detection for batch transcription: split a channel's audio into speech segments.

    segments = speech_segments(pcm, rate)                  # [Segment(start=1.02, end=2.86), ...] in seconds

Per-frame decisions come from webrtcvad (the WebRTC GMM detector; ``VadConfig.method = "webrtc"``, the
default) at 8/16/32/48 kHz, other rates being resampled to 16 kHz for it, or from a plain energy detector
(``method = "energy"``: a frame is speech when it is ``energy_margin_db`` above the recording's noise floor,
the 10th percentile of frame energies, and above ``energy_floor_dbfs``). Decisions are then smoothed into
segments the way a telephone endpointer does it:

- a segment starts once ``ratio`` of the last ``start_ms`` of frames are speech (at the first of them);
- it ends when less than ``1 - ratio`` of the last ``hangover_ms`` are speech (at the last speech frame), so
  short pauses between words stay inside one utterance;
- bursts with less than ``min_speech_ms`` of speech frames (clicks, a cough) are dropped;
- each segment is widened by ``padding_ms`` on both sides (a recognizer needs the onset and some silence),
  and segments that then touch are merged;
- a segment longer than ``max_segment_s`` is cut at its quietest point between half and all of that length,
  so a monologue still becomes utterances of bounded size (decoding cost and memory stay linear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from asr.exceptions import AsrConfigError
from asr.wav import to_rate

_WEBRTC_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True, slots=True)
class VadConfig:
    method: Literal["webrtc", "energy"] = "webrtc"
    aggressiveness: int = 2          # webrtcvad mode 0 (keeps most) .. 3 (strictest)
    frame_ms: int = 30               # 10, 20 or 30
    start_ms: int = 120
    hangover_ms: int = 450
    ratio: float = 0.75
    padding_ms: int = 200
    min_speech_ms: int = 150
    max_segment_s: float = 20.0
    energy_margin_db: float = 12.0
    energy_floor_dbfs: float = -55.0

    def __post_init__(self) -> None:
        if self.method not in ("webrtc", "energy"):
            raise AsrConfigError(f"vad method must be 'webrtc' or 'energy', not {self.method!r}")
        if self.aggressiveness not in (0, 1, 2, 3):
            raise AsrConfigError(f"vad aggressiveness must be 0..3, not {self.aggressiveness!r}")
        if self.frame_ms not in (10, 20, 30):
            raise AsrConfigError(f"vad frame_ms must be 10, 20 or 30, not {self.frame_ms!r}")
        if not 0.5 <= self.ratio < 1.0:
            raise AsrConfigError(f"vad ratio must be in [0.5, 1.0), not {self.ratio!r}")
        if min(self.start_ms, self.hangover_ms) < self.frame_ms or self.padding_ms < 0 or self.min_speech_ms < 0:
            raise AsrConfigError("vad start_ms and hangover_ms must be at least one frame; padding and "
                                 "min_speech_ms not negative")
        if not 1.0 <= self.max_segment_s <= 120.0:
            raise AsrConfigError(f"vad max_segment_s must be 1..120 seconds, not {self.max_segment_s!r}")


@dataclass(frozen=True, slots=True)
class Segment:
    start: float                     # seconds from the start of the signal
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def frame_decisions(pcm: np.ndarray, rate: int, config: VadConfig = VadConfig()) -> np.ndarray:
    """One speech/non-speech boolean per ``config.frame_ms`` frame (a partial last frame is dropped)."""
    x = np.asarray(pcm, dtype=np.int16)
    if config.method == "energy":
        return _energy_decisions(x, rate, config)
    import webrtcvad  # type: ignore[import-untyped]

    if rate not in _WEBRTC_RATES:
        x, rate = to_rate(x, rate, 16000), 16000
    step = rate * config.frame_ms // 1000
    vad = webrtcvad.Vad(config.aggressiveness)
    raw = x.tobytes()
    n = len(x) // step
    width = step * 2
    return np.fromiter((vad.is_speech(raw[i * width:(i + 1) * width], rate) for i in range(n)), bool, n)


def _energy_db(x: np.ndarray, step: int) -> np.ndarray:
    n = len(x) // step
    if n == 0:
        return np.zeros(0)
    frames = x[:n * step].astype(np.float64).reshape(n, step)
    power = np.mean(frames * frames, axis=1) / (32768.0 * 32768.0)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def _energy_decisions(x: np.ndarray, rate: int, config: VadConfig) -> np.ndarray:
    db = _energy_db(x, rate * config.frame_ms // 1000)
    if len(db) == 0:
        return np.zeros(0, bool)
    floor = float(np.percentile(db, 10))
    return np.asarray((db > floor + config.energy_margin_db) & (db > config.energy_floor_dbfs), dtype=bool)


def smooth(decisions: np.ndarray, config: VadConfig = VadConfig()) -> list[tuple[int, int]]:
    """Frame index ranges [first, last + 1) of speech from raw decisions (start/hangover/min-speech rules)."""
    start_n = max(1, config.start_ms // config.frame_ms)
    hang_n = max(1, config.hangover_ms // config.frame_ms)
    min_n = config.min_speech_ms / config.frame_ms
    d = np.asarray(decisions, dtype=np.int32)
    csum = np.concatenate(([0], np.cumsum(d)))
    out: list[tuple[int, int]] = []
    i, n = 0, len(d)
    while i < n:
        # find the first window of start_n frames with enough speech
        j = i + start_n
        while j <= n and csum[j] - csum[j - start_n] < config.ratio * start_n:
            j += 1
        if j > n:
            break
        first = j - start_n + int(np.argmax(d[j - start_n:j]))
        # extend until the last hang_n frames hold too little speech
        k = j
        while k < n:
            k += 1
            lo = max(first, k - hang_n)
            if k - lo >= hang_n and csum[k] - csum[lo] < (1.0 - config.ratio) * hang_n:
                break
        last = first + int(np.flatnonzero(d[first:k])[-1]) + 1
        if csum[last] - csum[first] >= min_n:
            out.append((first, last))
        i = k
    return out


def speech_segments(pcm: np.ndarray, rate: int, config: VadConfig = VadConfig()) -> list[Segment]:
    """The speech segments of ``pcm`` (mono int16 at ``rate``), in order, padded, merged and length-bounded."""
    x = np.asarray(pcm, dtype=np.int16)
    duration = len(x) / rate
    frame_s = config.frame_ms / 1000.0
    pad = config.padding_ms / 1000.0
    merged: list[list[float]] = []
    for first, last in smooth(frame_decisions(x, rate, config), config):
        start, end = max(0.0, first * frame_s - pad), min(duration, last * frame_s + pad)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[Segment] = []
    for start, end in merged:
        out += _split(x, rate, start, end, config.max_segment_s)
    return out


def _split(x: np.ndarray, rate: int, start: float, end: float, limit: float) -> list[Segment]:
    """Cut [start, end) into pieces of at most ``limit`` seconds at the quietest 100 ms between limit/2 and limit."""
    pieces: list[Segment] = []
    while end - start > limit:
        lo, hi = int((start + limit / 2) * rate), int((start + limit) * rate)
        step = rate // 100
        db = _energy_db(x[lo:hi], step)
        if len(db) >= 10:
            smoothed = np.convolve(db, np.ones(10) / 10, mode="valid")
            cut = start + limit / 2 + (int(np.argmin(smoothed)) + 5) * 0.01
        else:
            cut = start + limit
        pieces.append(Segment(round(start, 3), round(cut, 3)))
        start = cut
    pieces.append(Segment(round(start, 3), round(end, 3)))
    return pieces

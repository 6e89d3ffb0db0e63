"""Prosody from audio with numpy: pitch by autocorrelation, energy in dB, over chosen time intervals.

Used by asr/emotion.py on each speaker's channel within that speaker's utterances.

* Pitch: 40 ms Hann-windowed frames every 10 ms; each frame's autocorrelation (by FFT) is divided by the
  window's own autocorrelation (Boersma 1993), so a periodic frame peaks near 1 at its period. The frame is
  voiced when the best peak between 1/fmax and 1/fmin is at least ``voicing`` (0.5) and the frame is loud
  enough; the smallest lag within 15% of the best peak is taken (against octave-down errors), refined by
  parabolic interpolation. A stretch's pitch is the median F0 of its voiced frames.
* Energy: RMS of 20 ms frames in dB relative to one 16-bit sample step (a full-scale sine is 90.3 dB, so
  0 dBFS speech peaks near 87 dB and 0 means silence); a stretch's energy is the mean of its active frames
  (those within 30 dB of its loudest 5%).
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from asr.exceptions import BadAudio

Floats = npt.NDArray[np.float64]
FULL_SCALE = 32768.0
MIN_DB = 20.0                 # frames quieter than this (about -70 dBFS) are silence


@dataclass(frozen=True, slots=True)
class Pcm:
    samples: Floats               # in 16-bit sample units (-32768..32767), float64
    rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


@dataclass(frozen=True, slots=True)
class Prosody:
    pitch_hz: float               # median F0 of voiced frames; 0 when none is voiced
    energy_db: float              # mean level of active frames (dB re one sample step); 0 when silent
    voiced_s: float               # seconds of voiced frames


def read_wav(path: Path | str, channel: int = 0) -> Pcm:
    """One channel of a 16-bit PCM WAV (a mono file's only channel whatever ``channel`` says)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise BadAudio(f"{path}: {8 * w.getsampwidth()}-bit samples, expected 16-bit PCM")
            n, rate = w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise BadAudio(f"{path}: not a readable WAV file ({exc})") from None
    data = np.frombuffer(raw[: len(raw) - len(raw) % (2 * n)], dtype="<i2").reshape(-1, n)
    return Pcm(data[:, min(channel, n - 1)].astype(np.float64), rate)


def _frames(x: Floats, size: int, hop: int) -> Floats:
    if len(x) < size:
        return np.zeros((0, size))
    view = np.lib.stride_tricks.sliding_window_view(x, size)[::hop]
    return np.asarray(view, dtype=np.float64)


def energy_db(x: Floats, rate: int, frame_s: float = 0.02, hop_s: float = 0.01) -> Floats:
    """Per-frame RMS level in dB re one sample step (0 for digital silence)."""
    f = _frames(x, max(1, int(rate * frame_s)), max(1, int(rate * hop_s)))
    rms = np.sqrt(np.mean(f * f, axis=1)) if len(f) else np.zeros(0)
    return np.where(rms > 1.0, 20 * np.log10(np.maximum(rms, 1.0)), 0.0)


def pitch_track(x: Floats, rate: int, *, fmin: float = 60.0, fmax: float = 400.0, frame_s: float = 0.04,
                hop_s: float = 0.01, voicing: float = 0.5) -> Floats:
    """F0 in Hz per frame (0 where unvoiced or silent)."""
    size, hop = int(rate * frame_s), max(1, int(rate * hop_s))
    lo, hi = max(2, int(rate / fmax)), min(size - 2, int(np.ceil(rate / fmin)))
    f = _frames(x, size, hop)
    if len(f) == 0 or hi <= lo:
        return np.zeros(len(f))
    win = np.hanning(size)
    n_fft = 1 << int(np.ceil(np.log2(2 * size)))
    wac = np.fft.irfft(np.abs(np.fft.rfft(win, n_fft)) ** 2, n_fft)[:size]
    out = [_pitch_block(f[i: i + _BLOCK], rate, win, wac / wac[0], n_fft, lo, hi, voicing)
           for i in range(0, len(f), _BLOCK)]
    return np.concatenate(out)


_BLOCK = 2048                 # frames per FFT batch (bounds the memory of long files)


def _pitch_block(f: Floats, rate: int, win: Floats, wac: Floats, n_fft: int, lo: int, hi: int,
                 voicing: float) -> Floats:
    size = len(win)
    f = f - f.mean(axis=1, keepdims=True)
    loud = np.sqrt(np.mean(f * f, axis=1)) > 10 ** (MIN_DB / 20)
    ac = np.fft.irfft(np.abs(np.fft.rfft(f * win, n_fft, axis=1)) ** 2, n_fft, axis=1)[:, :size]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (ac / np.maximum(ac[:, :1], 1e-9)) / wac
    band = r[:, lo - 1: hi + 2]                          # one lag of margin each side for the peak test
    inner = band[:, 1:-1]
    local = (inner >= band[:, :-2]) & (inner >= band[:, 2:])
    best = np.where(local, inner, -np.inf).max(axis=1)
    cand = local & (inner >= 0.85 * best[:, None])
    k = np.argmax(cand, axis=1)                          # the smallest lag near the best peak
    rows = np.arange(len(f))
    y0, y1, y2 = band[rows, k], band[rows, k + 1], band[rows, k + 2]
    denom = y0 - 2 * y1 + y2
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / np.where(denom == 0, 1, denom), 0.0)
    lag = lo + k + np.clip(shift, -0.5, 0.5)
    voiced = (best >= voicing) & loud & np.isfinite(best)
    return np.where(voiced, rate / lag, 0.0)


def measure(pcm: Pcm, intervals: Sequence[tuple[float, float]] | None = None) -> Prosody:
    """Pitch and energy over ``intervals`` (seconds; None: the whole file)."""
    spans = [(0.0, pcm.duration)] if intervals is None else intervals
    pitches: list[Floats] = []
    levels: list[Floats] = []
    for s, e in spans:
        seg = pcm.samples[max(0, int(s * pcm.rate)): max(0, int(e * pcm.rate))]
        if len(seg) >= int(0.04 * pcm.rate):
            pitches.append(pitch_track(seg, pcm.rate))
            levels.append(energy_db(seg, pcm.rate))
    level = np.concatenate(levels) if levels else np.zeros(0)
    level = level[level > MIN_DB]
    energy = 0.0
    if len(level):
        top = float(np.percentile(level, 95))
        energy = float(level[level >= top - 30].mean())
    f0 = np.concatenate(pitches) if pitches else np.zeros(0)
    voiced = f0[f0 > 0]
    return Prosody(float(np.median(voiced)) if len(voiced) else 0.0, energy, len(voiced) * 0.01)

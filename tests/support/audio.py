"""Audio assertions for tests: energy over time, dominant frequency."""

from __future__ import annotations

import numpy as np

from voice.audio import Audio, rms_envelope


def active_seconds(audio: Audio, threshold: float = 300.0, window_s: float = 0.1) -> float:
    """Seconds of the recording whose RMS level is above ``threshold`` (silence is ~0)."""
    env = rms_envelope(audio, window_s)
    return float((env > threshold).sum() * window_s)


def dominant_frequency(audio: Audio) -> float:
    x = audio.samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / audio.rate)[int(np.argmax(spectrum[1:])) + 1])


def tone(freq: float, seconds: float, rate: int = 8000, level: int = 8000) -> Audio:
    t = np.arange(int(rate * seconds)) / rate
    return Audio((level * np.sin(2 * np.pi * freq * t)).astype(np.int16), rate)


def follows(heard: Audio, reference: Audio, chunk_s: float = 1.0, max_lag_s: float = 1.0) -> float:
    """How well ``heard`` follows ``reference`` in loudness over time, in [-1, 1].

    Each 1 s chunk of the reference's 50 ms RMS envelope is matched against the heard envelope at
    its best lag (up to ``max_lag_s``), so a receiver's jitter buffer shifting or dropping a few
    frames does not count against the match. Returns the median chunk correlation.
    """
    win = 0.05
    h, r = rms_envelope(heard, win), rms_envelope(reference, win)
    n, max_lag = int(chunk_s / win), int(max_lag_s / win)
    scores = []
    for start in range(0, len(r) - n + 1, n):
        ref = r[start : start + n]
        if ref.std() == 0:
            continue
        best = -1.0
        for lag in range(-max_lag, max_lag + 1):
            lo = start + lag
            if lo < 0 or lo + n > len(h) or h[lo : lo + n].std() == 0:
                continue
            best = max(best, float(np.corrcoef(ref, h[lo : lo + n])[0, 1]))
        scores.append(best)
    return float(np.median(scores)) if scores else -1.0

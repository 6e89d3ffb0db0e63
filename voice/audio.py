"""Audio helpers: 16-bit mono PCM WAV files as numpy arrays, resampling, energy over time."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .exceptions import AudioFormatError

Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class Audio:
    samples: Pcm
    rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


def read_wav(path: str | Path) -> Audio:
    """Read a 16-bit PCM WAV (mono, or the first channel of several)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise AudioFormatError(f"{path}: {8 * w.getsampwidth()}-bit samples, expected 16-bit PCM")
            channels, rate = w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path}: not a usable WAV file ({exc})") from None
    data = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2")
    return Audio(data.reshape(-1, channels)[:, 0].astype(np.int16), rate)


def write_wav(path: str | Path, audio: Audio) -> None:
    """Write mono 16-bit PCM atomically (to a temporary name, then renamed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.rate)
        w.writeframes(audio.samples.astype("<i2").tobytes())
    tmp.replace(path)


def resample(audio: Audio, rate: int) -> Audio:
    """Band-limited resampling: a windowed-sinc low-pass, then linear interpolation."""
    if audio.rate == rate or len(audio.samples) == 0:
        return Audio(audio.samples, rate) if audio.rate == rate else Audio(audio.samples[:0], rate)
    x = audio.samples.astype(np.float64)
    if rate < audio.rate:  # anti-alias before decimating
        cutoff = 0.45 * rate / audio.rate  # in cycles per input sample
        taps = np.arange(-64, 65)
        kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
        x = np.convolve(x, kernel / kernel.sum(), mode="same")
    n_out = int(round(len(x) * rate / audio.rate))
    t = np.arange(n_out) * (audio.rate / rate)
    y = np.interp(t, np.arange(len(x)), x)
    return Audio(np.clip(np.rint(y), -32768, 32767).astype(np.int16), rate)


def rms_envelope(audio: Audio, window_s: float = 0.1) -> npt.NDArray[np.float64]:
    """RMS level (0..32767) of consecutive windows: what a person would call 'loudness over time'."""
    n = max(1, int(audio.rate * window_s))
    usable = len(audio.samples) - len(audio.samples) % n
    if usable == 0:
        return np.zeros(0)
    frames = audio.samples[:usable].astype(np.float64).reshape(-1, n)
    return np.sqrt((frames**2).mean(axis=1))

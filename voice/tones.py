"""Tone generation: DTMF digits (ITU-T Q.23), the voicemail beep, the "cannot play" fallback.

Everything returns int16 mono PCM (``voice.audio.Pcm``) at the rate asked for, ready to hand to a
tap or to write as a prompt WAV (``write_tone_wav``). Levels are in dBm0 per tone, the telephony
convention: 0 dBm0 is a sine whose RMS sits 3.14 dB below a full-scale sine (the G.711 digital
milliwatt), so a full-scale sine is +3.14 dBm0. Each tone has a short raised-cosine ramp at both
ends (no click, no splatter outside the band), counted inside its duration.

    dtmf_tone("5")                           100 ms of 770 + 1336 Hz, each at -6 dBm0
    dtmf_sequence("12#", tone_ms=60)         tones with 80 ms of silence between them
    beep()                                   400 ms of 1 kHz (voicemail "record after the tone")
    fallback_tone()                          two descending tones: "this prompt could not be played"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from .audio import Audio, Pcm, write_wav

#: The Q.23 keypad: each key is one low-group (row) and one high-group (column) frequency, in Hz.
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
DIGITS = "".join(KEYPAD)
FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (ROWS[r], COLUMNS[c]) for r, row in enumerate(KEYPAD) for c, key in enumerate(row)
}
#: Peak amplitude of a 0 dBm0 sine in 16-bit PCM (full scale is +3.14 dBm0).
DBM0_PEAK = 32767.0 / 10 ** (3.14 / 20)
_RAMP_S = 0.002


def dbm0_amplitude(level_db: float) -> float:
    """Peak amplitude (16-bit PCM) of a sine at ``level_db`` dBm0."""
    return DBM0_PEAK * 10 ** (level_db / 20)


def silence(ms: float, rate: int = 8000) -> Pcm:
    """``ms`` milliseconds of digital silence."""
    return np.zeros(_samples(ms, rate), np.int16)


def dtmf_tone(digit: str, ms: float = 100, rate: int = 8000, level_db: float = -6.0, *,
              twist_db: float = 0.0) -> Pcm:
    """The dual tone of one key (0-9 * # A-D), ``ms`` long, each tone at ``level_db`` dBm0.

    ``twist_db`` sets the high-group tone to ``level_db + twist_db`` (negative: the column tone is
    weaker, as after a line that attenuates high frequencies). Raises ValueError for another key.
    """
    key = digit.upper() if isinstance(digit, str) else digit
    if not isinstance(key, str) or key not in FREQUENCIES:
        raise ValueError(f"not a DTMF key: {digit!r} (expected one of {DIGITS})")
    low, high = FREQUENCIES[key]
    n = _samples(ms, rate)
    return _pcm(_sine(low, n, rate, level_db) + _sine(high, n, rate, level_db + twist_db), rate)


def dtmf_sequence(digits: str, tone_ms: float = 100, gap_ms: float = 80, rate: int = 8000,
                  level_db: float = -6.0) -> Pcm:
    """Keys one after the other: ``tone_ms`` of each, ``gap_ms`` of silence between two (none after
    the last). Spaces in ``digits`` are ignored, so "1 2 3" works; ValueError for any other key."""
    keys = [d for d in digits if not d.isspace()]
    if not keys:
        return silence(0, rate)
    gap = silence(gap_ms, rate)
    parts: list[Pcm] = []
    for i, key in enumerate(keys):
        if i:
            parts.append(gap)
        parts.append(dtmf_tone(key, tone_ms, rate, level_db))
    return np.concatenate(parts)


def beep(ms: float = 400, freq: float = 1000, rate: int = 8000, level_db: float = -10.0) -> Pcm:
    """A single sine: the voicemail "record after the tone" beep."""
    if not 0 < freq < rate / 2:
        raise ValueError(f"beep frequency {freq} Hz is not between 0 and {rate / 2:g} Hz (half the rate)")
    return _pcm(_sine(freq, _samples(ms, rate), rate, level_db), rate)


def fallback_tone(rate: int = 8000, level_db: float = -10.0) -> Pcm:
    """What a caller hears instead of a prompt that could not be rendered (0.8 s): two descending
    tones, 660 Hz then 440 Hz, 300 ms each, 100 ms apart, with 50 ms of silence around them."""
    edge = silence(50, rate)
    high, low = beep(300, 660, rate, level_db), beep(300, 440, rate, level_db)
    return np.concatenate([edge, high, silence(100, rate), low, edge])


def write_tone_wav(path: str | Path, pcm: Pcm, rate: int = 8000) -> Path:
    """Write ``pcm`` as a mono 16-bit WAV (atomically, through ``voice.audio.write_wav``)."""
    write_wav(path, Audio(np.asarray(pcm, np.int16), rate))
    return Path(path)


def _samples(ms: float, rate: int) -> int:
    if not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"sample rate must be a positive integer, not {rate!r}")
    if not ms >= 0:  # also catches NaN
        raise ValueError(f"duration must be >= 0 ms, not {ms!r}")
    return int(round(ms * rate / 1000))


def _sine(freq: float, n: int, rate: int, level_db: float) -> npt.NDArray[np.float64]:
    return dbm0_amplitude(level_db) * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def _pcm(x: npt.NDArray[np.float64], rate: int) -> Pcm:
    """Ramp both ends (2 ms raised cosine, or half the tone if shorter) and round to int16."""
    ramp = min(int(_RAMP_S * rate), len(x) // 2)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        x[:ramp] *= edge
        x[len(x) - ramp:] *= edge[::-1]
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)

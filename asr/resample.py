"""A small streaming polyphase resampler (numpy only) from telephony / WebRTC rates to an engine's rate.

Integer ratios up to 1:3 / 3:1 are supported (8, 16, 24, 32, 48 kHz to 16 kHz and back); state carries across
chunks, so feeding 20 ms frames gives the same samples as feeding the whole signal at once. When upsampling
(``down == 1``), ``fold`` keeps that fraction of the spectral image the zero-stuffing creates: a crude bandwidth
extension that mirrors the telephone band into the empty upper band a wideband acoustic model expects.
"""

from __future__ import annotations

from math import gcd

import numpy as np

from asr.exceptions import UnsupportedRate

_MAX_FACTOR = 3
_TAPS_PER_PHASE = 24


class Resampler:
    """Converts int16 PCM at ``rate_in`` to int16 PCM at ``rate_out``, one chunk at a time."""

    def __init__(self, rate_in: int, rate_out: int, fold: float = 0.0) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise UnsupportedRate(f"sample rates must be positive, not {rate_in} -> {rate_out}")
        g = gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        if self.up > _MAX_FACTOR or self.down > _MAX_FACTOR:
            raise UnsupportedRate(f"cannot resample {rate_in} Hz to {rate_out} Hz "
                                  f"(supported: ratios up to {_MAX_FACTOR}:1, e.g. 8/16/24/32/48 kHz)")
        self.rate_in, self.rate_out = rate_in, rate_out
        self.identity = self.up == 1 and self.down == 1
        self.fold = fold if self.down == 1 else 0.0
        factor = max(self.up, self.down)
        taps = _TAPS_PER_PHASE * factor + 1
        n = np.arange(taps) - (taps - 1) / 2
        h = np.sinc(n / factor) * np.kaiser(taps, 8.0)
        self._h = h * (self.up / h.sum())               # unity gain after zero-stuffing by ``up``
        self._hist = np.zeros(taps - 1)
        self._delay = (taps - 1) // 2
        self._pos = 0                                   # index of the next zero-stuffed sample in the stream

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Resample one chunk (any length, int16 or a numeric 1-D array); returns int16."""
        x = np.asarray(pcm)
        if self.identity:
            return x.astype(np.int16, copy=False)
        z = np.zeros(len(x) * self.up)
        z[::self.up] = x
        buf = np.concatenate((self._hist, z))
        y = np.convolve(buf, self._h, mode="valid")
        if self.fold:
            image = buf[self._delay:self._delay + len(z)] * self.up - y
            y = y + self.fold * image
        self._hist = buf[len(buf) - len(self._hist):]
        first = (-self._pos) % self.down
        self._pos += len(z)
        out = y[first::self.down]
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

"""In-band DTMF detection: keys pressed on trunks that negotiate no RFC 4733 telephone-event.

``DtmfDetector`` is a streaming, sans-I/O detector for one call's audio, fed with chunks of any
size (the tap's 40 ms frames, single samples, whole files)::

    det = DtmfDetector(rate=8000)
    async for frame in tap:
        for digit in det.feed(frame.pcm):
            ...                         # one "5" per key press, about 26-40 ms after it began

How it decides (numbers at 8 kHz; everything scales with the rate):

* **Blocks of 105 samples (13.1 ms)**, not 20 ms. The low-group tones are 73-89 Hz apart, so
  the analysis needs a resolution of ~76 Hz, i.e. >= ~100 samples; and a key must show in two
  *consecutive whole* blocks before it counts. A 40 ms tone (the shortest Q.24 asks us to
  accept) always contains two whole 13.1 ms blocks wherever it starts; it contains only one
  whole 20 ms block when it starts just after a boundary. 105 samples also put each
  neighbouring row/column frequency close to a zero of the block's frequency response, so
  one tone hardly leaks into its neighbours' bins. Tones of 15 ms or less are never reported
  (20 ms: ~2 % of the time; 35 ms and more: always).
* **Goertzel energies at 48 frequencies** per block: each of the 8 DTMF tones at f - d, f and
  f + d (d = a third of the 76 Hz resolution), and the same around each tone's harmonic (the
  3rd for the rows, whose 2nd harmonics land on column tones; the 2nd for the columns). The
  Goertzel recurrence computes the DFT at one frequency of one block; here those DFTs are
  taken for every whole block of a chunk at once, as one matrix product with a precomputed
  (block, 2 x 48) cosine/sine basis: the same numbers, without a Python loop over samples.
* **Per block checks** (``_classify``), on power relative to a 0 dBm0 sine, a tone's power
  being the best of its three bins: the strongest row and column tones each reach
  ``min_level_db`` (-36 dBm0 per tone); twist: the low group may be up to ``normal_twist_db``
  stronger than the high group, the high group up to ``reverse_twist_db`` stronger than the
  low group (10 and 6 dB: Q.24's usual 8 and 4 dB plus 2 dB for the per-block scatter that the
  other tone's leakage causes); each chosen tone is >= 6 dB above every other tone of its
  group (at their nominal bins); the two tones carry >= 75 % of the block's energy (speech,
  music and noise spread energy elsewhere: in 5 minutes of espeak-ng speech no block reaches
  0.7, a key's blocks reach 0.9); the harmonics are >= 14 dB below their tones (voices and instruments
  are rich in harmonics, a DTMF generator is not); and the f + d / f - d power ratio puts each
  tone within 2.5 % of its nominal frequency (Q.24: accept 1.5 %, reject 3.5 %).
* **Debouncing**: a key is reported when the same key passed in two consecutive blocks and it
  is not already held; it is released after two consecutive blocks without it, so a new press
  of the same key needs a gap of >= ~26 ms (Q.24 guarantees 40 ms) while a single disturbed
  block inside a tone does not split it in two. A different key seen in two consecutive
  blocks is reported at once.

Measured cost: ``bench/dtmf.py``. ``detect(pcm, rate)`` runs a fresh detector over a whole
signal and returns (key, start seconds) pairs, for tests and offline checks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .audio import Pcm
from .tones import COLUMNS, DBM0_PEAK, KEYPAD, ROWS

BLOCK_8K = 105  # samples per analysis block at 8 kHz (see the module docstring)
_MAX_DEVIATION = 0.025  # a tone further than 2.5 % off its nominal frequency is rejected (Q.24: 1.5 - 3.5 %)
_REL_PEAK_DB = 6.0  # the chosen tone over every other tone of its group
_TONE_SHARE = 0.75  # row + column power over the block's total power
_HARMONIC_DB = -14.0  # a tone's harmonic (columns: 2nd, rows: 3rd), at most this relative to it
_KEYS = np.array([[KEYPAD[r][c] for c in range(4)] for r in range(4)])
_TONES = np.array([*ROWS, *COLUMNS])
_HARMONICS = np.array([3.0] * 4 + [2.0] * 4)  # rows' 2nd harmonics fall on column tones: 3rd
_F64 = npt.NDArray[np.float64]
_Index = npt.NDArray[np.intp]


class DtmfDetector:
    """Streaming in-band DTMF detector for one audio stream (not thread-safe; one per call)."""

    def __init__(self, rate: int = 8000, *, min_level_db: float = -36.0,
                 normal_twist_db: float = 10.0, reverse_twist_db: float = 6.0) -> None:
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 8000:
            raise ValueError(f"DTMF detection needs an integer sample rate >= 8000 Hz, not {rate!r}")
        self.rate = rate
        self.block = n = int(round(BLOCK_8K * rate / 8000))
        # Three bins per tone, a third of the block's resolution apart (25.4 Hz): f - d, f, f + d.
        # The best of the three is the tone's power (<= 0.6 dB low anywhere within +-2.5 %); the
        # ratio of the outer two says how far off the tone is. Then each tone's harmonic likewise.
        self._spread = spread = rate / n / 3
        offsets = np.array([-spread, 0.0, spread])
        fundamental = (_TONES[:, None] + offsets).ravel()
        harmonic = (_HARMONICS[:, None] * (_TONES[:, None] + offsets)).ravel()
        freqs = np.concatenate([fundamental, harmonic])
        self._bins = len(freqs)  # 48
        phase = 2 * np.pi * np.outer(np.arange(n), freqs) / rate
        # Scaled so that |X|^2 is the power of a sine at that frequency relative to a 0 dBm0 sine.
        self._basis = np.ascontiguousarray(np.hstack([np.cos(phase), np.sin(phase)]) * 2 / (n * DBM0_PEAK))
        self._total_scale = 2 / (n * DBM0_PEAK**2)
        # The (f + d) / (f - d) power ratio of a pure tone at f * (1 + _MAX_DEVIATION), per tone.
        off = _TONES * _MAX_DEVIATION
        self._ratio_limit = _kernel(off - spread, n, rate) / _kernel(off + spread, n, rate)
        self._min_power = 10 ** (min_level_db / 10)
        self._normal_twist = 10 ** (normal_twist_db / 10)
        self._reverse_twist = 10 ** (reverse_twist_db / 10)
        self.reset()

    def reset(self) -> None:
        """Forget everything: buffered samples, the key held, the stream position."""
        self._tail = np.zeros(0, np.int16)
        self._position = 0  # samples consumed into whole blocks so far
        self._prev = -1  # candidate (row * 4 + column) of the last block, -1 for none
        self._held = -1  # the key being held, once reported
        self._absent = 0  # consecutive blocks without the held key

    @property
    def held(self) -> str | None:
        """The key currently held down (reported, not yet released), or None."""
        return None if self._held < 0 else str(_KEYS.flat[self._held])

    def feed(self, pcm: Pcm | bytes) -> list[str]:
        """Consume the next chunk of the stream; return the keys recognised in it (once per press)."""
        return [key for key, _ in self._feed(pcm)]

    def feed_timed(self, pcm: Pcm | bytes) -> list[tuple[str, float]]:
        """As ``feed``, with each key's start: seconds from the first sample ever fed (to within
        one block, ~13 ms)."""
        return [(key, start / self.rate) for key, start in self._feed(pcm)]

    def _feed(self, pcm: Pcm | bytes) -> list[tuple[str, int]]:
        x = _as_pcm(pcm)
        if len(self._tail):
            x = np.concatenate([self._tail, x])
        n = self.block
        whole = len(x) - len(x) % n
        self._tail = x[whole:].copy()
        if not whole:
            return []
        blocks = x[:whole].reshape(-1, n).astype(np.float64)
        candidates = self._classify(blocks)
        first = self._position
        self._position += whole
        return self._debounce(candidates, first)

    def _classify(self, blocks: _F64) -> npt.NDArray[np.intp]:
        """Per block: the key (row * 4 + column) that passes every check, or -1."""
        xy = blocks @ self._basis
        nb = self._bins
        power = (xy[:, :nb] ** 2 + xy[:, nb:] ** 2).reshape(-1, 16, 3)  # relative to a 0 dBm0 sine
        tone = power[:, :8].max(axis=2)  # (blocks, 8): each tone, the best of its three bins
        pr, pc = tone[:, 0:4].max(axis=1), tone[:, 4:8].max(axis=1)
        total = np.einsum("ij,ij->i", blocks, blocks) * self._total_scale  # same scale
        # The cheap checks first: silence, speech and noise stop here (no key in any block).
        ok = (pr >= self._min_power) & (pc >= self._min_power) & (pr + pc >= _TONE_SHARE * total)
        out = np.full(len(blocks), -1, np.intp)
        if not ok.any():
            return out
        sel = np.flatnonzero(ok)
        power, tone, pr, pc = power[sel], tone[sel], pr[sel], pc[sel]
        idx = np.arange(len(sel))
        r = tone[:, 0:4].argmax(axis=1)
        c = tone[:, 4:8].argmax(axis=1) + 4
        harmonic = power[idx, r + 8].max(axis=1), power[idx, c + 8].max(axis=1)
        # Rivals at their nominal bin: a +1.5 % 697 Hz tone is only 57 Hz from 770 - d.
        nominal = power[:, :8, 1].copy()
        nominal[idx, r] = 0.0
        nominal[idx, c] = 0.0
        rel = 10 ** (_REL_PEAK_DB / 10)
        harm = 10 ** (_HARMONIC_DB / 10)
        good = (
            (pr <= pc * self._normal_twist) & (pc <= pr * self._reverse_twist)
            & (pr >= nominal[:, 0:4].max(axis=1) * rel) & (pc >= nominal[:, 4:8].max(axis=1) * rel)
            & (harmonic[0] <= pr * harm) & (harmonic[1] <= pc * harm)
            & self._on_frequency(power, idx, r) & self._on_frequency(power, idx, c)
        )
        out[sel] = np.where(good, r * 4 + c - 4, -1)
        return out

    def _on_frequency(self, power: _F64, idx: _Index, tone: _Index) -> npt.NDArray[np.bool_]:
        """Whether each block's chosen tone lies within +-_MAX_DEVIATION of its nominal frequency."""
        low, high, limit = power[idx, tone, 0], power[idx, tone, 2], self._ratio_limit[tone]
        return np.asarray((high <= low * limit) & (low <= high * limit))

    def _debounce(self, candidates: npt.NDArray[np.intp], first: int) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        prev, held, absent = self._prev, self._held, self._absent
        for i, cand in enumerate(candidates.tolist()):
            if cand >= 0 and cand == prev and cand != held:
                held, absent = cand, 0
                out.append((str(_KEYS.flat[cand]), first + (i - 1) * self.block))
            elif held >= 0 and cand != held:
                absent += 1
                if absent >= 2:
                    held, absent = -1, 0
            elif cand == held:
                absent = 0
            prev = cand
        self._prev, self._held, self._absent = prev, held, absent
        return out


def detect(pcm: Pcm | bytes, rate: int = 8000, **options: float) -> list[tuple[str, float]]:
    """Every key press in a whole signal: (key, start in seconds), with a fresh detector."""
    return DtmfDetector(rate, **options).feed_timed(pcm)


def _kernel(offset: _F64, n: int, rate: int) -> _F64:
    """Power response of an n-sample block's DFT to a tone ``offset`` Hz from the bin (1 at 0)."""
    x = np.asarray(offset, np.float64) / rate
    return np.asarray((np.sinc(n * x) / np.sinc(x)) ** 2, np.float64)


def _as_pcm(pcm: Pcm | bytes) -> Pcm:
    if isinstance(pcm, bytes | bytearray | memoryview):
        if len(pcm) % 2:
            raise ValueError(f"PCM bytes must hold whole 16-bit samples, got {len(pcm)} bytes")
        return np.frombuffer(pcm, "<i2")
    if not isinstance(pcm, np.ndarray):
        raise TypeError(f"expected int16 PCM as a numpy array (or bytes), not {type(pcm).__name__}")
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"expected a 1-D int16 array, got {pcm.ndim}-D {pcm.dtype}")
    return pcm

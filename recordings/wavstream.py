"""Streaming 16-bit PCM WAV I/O for post-call work (stereo mix, redaction): chunks in, chunks out, never whole files.

``PcmReader`` reads frames as ``(n, channels)`` int16 arrays. ``PcmWriter`` writes a file whose length is known up
front: the header is final from the first byte, the SHA-256 is computed while writing, and the file appears under
its name only when complete (written to ``<name>.part``, fsynced, renamed), so a crash never leaves half a mix
where a whole one is expected. ``Resampler`` converts one channel between rates, carrying state across chunks.
"""

from __future__ import annotations

import hashlib
import os
import struct
import wave
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from recordings.exceptions import RecordingDamaged, UnsupportedFormat
from recordings.files import FinishedRecording

CHUNK_FRAMES = 1 << 15          # about 4 s at 8 kHz: the unit of every read and write here
Pcm = npt.NDArray[np.int16]


class PcmReader:
    """A 16-bit PCM WAV opened for chunked reading (``with PcmReader(path) as r: r.read(n)``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._w = wave.open(str(path), "rb")
        except FileNotFoundError:
            raise
        except (wave.Error, EOFError, struct.error) as exc:
            raise RecordingDamaged(f"{path}: not a readable WAV file ({exc})") from None
        if self._w.getsampwidth() != 2:
            bits = 8 * self._w.getsampwidth()
            self._w.close()
            raise UnsupportedFormat(f"{path}: {bits}-bit samples (only 16-bit PCM is supported)")
        self.channels = self._w.getnchannels()
        self.rate = self._w.getframerate()
        self.frames = self._w.getnframes()

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else 0.0

    def read(self, n: int) -> Pcm:
        """Up to ``n`` frames as an ``(frames, channels)`` array (fewer at the end, none past it)."""
        raw = self._w.readframes(n)
        usable = len(raw) - len(raw) % (2 * self.channels)
        return np.frombuffer(raw[:usable], dtype="<i2").reshape(-1, self.channels).astype(np.int16, copy=False)

    def close(self) -> None:
        self._w.close()

    def __enter__(self) -> PcmReader:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _header(channels: int, rate: int, frames: int) -> bytes:
    data = frames * channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
            + b"data" + struct.pack("<I", data))


class PcmWriter:
    """Writes exactly ``frames`` frames of 16-bit PCM to ``path`` (atomically); ``finish()`` returns its metadata."""

    def __init__(self, path: Path, channels: int, rate: int, frames: int) -> None:
        if 44 + frames * channels * 2 - 8 > 0xFFFFFFFF:
            raise UnsupportedFormat(f"{path}: {frames} frames of {channels} channels is too large for a WAV file")
        self.path = path
        self.channels, self.rate, self.frames = channels, rate, frames
        self._tmp = path.with_name(path.name + ".part")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self._tmp.open("wb")
        self._sha = hashlib.sha256()
        self._written = 0
        self._emit(_header(channels, rate, frames))

    def _emit(self, data: bytes) -> None:
        self._f.write(data)
        self._sha.update(data)

    def write(self, block: Pcm) -> None:
        """Append ``(n, channels)`` frames (or a 1-D array for mono)."""
        block = np.asarray(block, dtype=np.int16).reshape(-1, self.channels)
        if self._written + len(block) > self.frames:
            raise ValueError(f"{self.path}: more than the {self.frames} frames announced")
        self._emit(block.astype("<i2", copy=False).tobytes())
        self._written += len(block)

    def finish(self) -> FinishedRecording:
        if self._written != self.frames:
            self.abort()
            raise ValueError(f"{self.path}: {self._written} frames written, {self.frames} announced")
        self._f.flush()
        os.fsync(self._f.fileno())
        size = self._f.tell()
        self._f.close()
        self._tmp.replace(self.path)
        return FinishedRecording(self.path, self._sha.hexdigest(), size, self.frames / self.rate)

    def abort(self) -> None:
        """Drop the partial file (after an error)."""
        if not self._f.closed:
            self._f.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PcmWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if et is not None:
            self.abort()


class Resampler:
    """One channel from ``rate_in`` to ``rate_out`` in chunks: a windowed-sinc low-pass when going down, then
    linear interpolation. Output sample k is the input at time ``k * rate_in / rate_out``; chunking does not
    change the result. ``flush()`` returns the tail the filter still holds."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise UnsupportedFormat(f"sample rates must be positive, not {rate_in} -> {rate_out}")
        self.step = rate_in / rate_out
        self.identity = rate_in == rate_out
        self._kernel: npt.NDArray[np.float64] | None = None
        self._delay = 0
        if rate_out < rate_in:
            cutoff = 0.45 * rate_out / rate_in                      # cycles per input sample
            taps = np.arange(-64, 65)
            k = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
            self._kernel = k / k.sum()
            self._delay = 64
        self._hist = np.zeros(0 if self._kernel is None else len(self._kernel) - 1)
        self._buf = np.zeros(0)     # filtered input not yet consumed; self._base is the index of its first sample
        self._base = 0
        self._k = 0                 # next output sample

    def process(self, x: npt.ArrayLike) -> Pcm:
        a = np.asarray(x, dtype=np.float64)
        if self.identity:
            return np.clip(np.rint(a), -32768, 32767).astype(np.int16)
        if self._kernel is not None:
            full = np.concatenate((self._hist, a))
            y = np.convolve(full, self._kernel, mode="valid")
            self._hist = full[len(full) - len(self._hist):]
        else:
            y = a
        self._buf = np.concatenate((self._buf, y))
        # filtered sample i holds the input at time i - delay: output k reads filtered time k * step + delay
        last = self._base + len(self._buf) - 1
        if last < self._delay:
            return np.zeros(0, dtype=np.int16)
        k_end = int(np.floor((last - self._delay) / self.step)) + 1
        t = np.arange(self._k, k_end) * self.step + self._delay - self._base
        out = np.interp(t, np.arange(len(self._buf)), self._buf)
        self._k = k_end
        drop = min(len(self._buf), max(0, int(np.floor(self._k * self.step + self._delay)) - self._base - 1))
        self._buf = self._buf[drop:]
        self._base += drop
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    def flush(self) -> Pcm:
        return self.process(np.zeros(self._delay + 2)) if not self.identity else np.zeros(0, dtype=np.int16)

"""Reading WAV files for batch transcription and keyword spotting: PCM and G.711, mono or stereo.

``read_wav(path)`` parses the RIFF container itself (the standard library's ``wave`` module rejects
WAVE_FORMAT_EXTENSIBLE and G.711 files, both common in telephony) and returns ``Audio``: int16 samples shaped
(frames, channels) and the sample rate. Anything it cannot use raises ``asr.exceptions.BadAudio`` with a
one-line message naming the file: not a RIFF/WAVE file, no fmt/data chunk, an unsupported encoding, or a
truncated file (the data chunk's header promises more bytes than the file holds).

``to_rate`` converts a mono int16 signal to another sample rate: the streaming polyphase ``Resampler`` for
the telephony ratios (with its optional bandwidth extension), a windowed-sinc low-pass plus linear
interpolation for the rest (44.1 kHz and such; plenty for speech recognition).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.exceptions import BadAudio, UnsupportedRate
from asr.resample import Resampler

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


@dataclass(frozen=True, slots=True)
class Audio:
    samples: np.ndarray          # int16, shape (frames, channels)
    rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.rate

    def channel(self, index: int) -> np.ndarray:
        """One channel as a contiguous 1-D int16 array."""
        return np.ascontiguousarray(self.samples[:, index])

    def mono(self) -> np.ndarray:
        """All channels mixed down (the mean), 1-D int16."""
        if self.channels == 1:
            return self.channel(0)
        return np.rint(self.samples.astype(np.float64).mean(axis=1)).astype(np.int16)


def read_wav(path: Path | str) -> Audio:
    """The samples of a WAV file (PCM 8/16/24/32-bit, 32-bit float, mu-law, A-law); raises BadAudio."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadAudio(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadAudio(f"{path}: is a directory, not a WAV file") from None
    except OSError as exc:
        raise BadAudio(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_wav(data, str(path))


def parse_wav(data: bytes, name: str = "<bytes>") -> Audio:
    """``read_wav`` on bytes already in memory (``name`` is used in error messages)."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        what = "empty" if not data else "not a WAV file (no RIFF/WAVE header)"
        raise BadAudio(f"{name}: {what}")
    if data[:4] == b"RIFX":
        raise BadAudio(f"{name}: big-endian (RIFX) WAV files are not supported")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + size > len(data):
                raise BadAudio(f"{name}: truncated or malformed fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _EXTENSIBLE and size >= 40:
                tag = struct.unpack_from("<H", data, body + 24)[0]     # the sub-format GUID's first two bytes
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise BadAudio(f"{name}: data chunk before the fmt chunk")
            available = len(data) - body
            if size > available:
                tag, channels, rate, bits = fmt
                frame = max(1, channels * max(1, bits // 8))
                raise BadAudio(f"{name}: truncated: the header promises {size // frame / max(rate, 1):.2f} s "
                               f"of audio, the file holds {available // frame / max(rate, 1):.2f} s")
            return _decode(data[body:body + size], fmt, name)
        pos = body + size + (size & 1)
    if fmt is None:
        raise BadAudio(f"{name}: not a usable WAV file (no fmt chunk)")
    raise BadAudio(f"{name}: truncated: no data chunk")


def _decode(raw: bytes, fmt: tuple[int, int, int, int], name: str) -> Audio:
    tag, channels, rate, bits = fmt
    if channels < 1 or not 1000 <= rate <= 384000:
        raise BadAudio(f"{name}: implausible format ({channels} channels at {rate} Hz)")
    if tag == _PCM and bits == 16:
        x = np.frombuffer(raw[:len(raw) // 2 * 2], "<i2").astype(np.int16)
    elif tag == _PCM and bits == 8:
        x = ((np.frombuffer(raw, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(raw[:len(raw) // 3 * 3], np.uint8).reshape(-1, 3)
        x = ((b[:, 2].astype(np.int8).astype(np.int32) << 8) | b[:, 1]).astype(np.int16)
    elif tag == _PCM and bits == 32:
        x = (np.frombuffer(raw[:len(raw) // 4 * 4], "<i4") >> 16).astype(np.int16)
    elif tag == _FLOAT and bits in (32, 64):
        f = np.frombuffer(raw[:len(raw) // (bits // 8) * (bits // 8)], "<f4" if bits == 32 else "<f8")
        x = np.clip(np.rint(np.nan_to_num(f) * 32768.0), -32768, 32767).astype(np.int16)
    elif tag == _MULAW and bits == 8:
        x = _MULAW_TABLE[np.frombuffer(raw, np.uint8)]
    elif tag == _ALAW and bits == 8:
        x = _ALAW_TABLE[np.frombuffer(raw, np.uint8)]
    else:
        raise BadAudio(f"{name}: unsupported WAV encoding (format tag {tag:#x}, {bits} bits per sample)")
    frames = len(x) // channels
    return Audio(np.ascontiguousarray(x[:frames * channels].reshape(frames, channels)), rate)


def _mulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, ((t + 0x108) << np.maximum(seg - 1, 0)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


_MULAW_TABLE = _mulaw_table()
_ALAW_TABLE = _alaw_table()


def to_rate(pcm: np.ndarray, rate_in: int, rate_out: int, fold: float = 0.0) -> np.ndarray:
    """``pcm`` (mono int16) at ``rate_out``; ``fold`` is the bandwidth extension when upsampling 2x/3x."""
    if rate_in == rate_out:
        return np.asarray(pcm, dtype=np.int16)
    try:
        return Resampler(rate_in, rate_out, fold).process(pcm)
    except UnsupportedRate:
        pass
    x = np.asarray(pcm, dtype=np.float64)
    if rate_out < rate_in:                                   # anti-alias before decimating
        cutoff = 0.5 * rate_out / rate_in
        n = np.arange(-64, 65)
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(len(n), 8.0)
        x = np.convolve(x, h / h.sum(), mode="same")
    count = int(round(len(x) * rate_out / rate_in))
    y = np.interp(np.arange(count) * (rate_in / rate_out), np.arange(len(x)), x) if len(x) else x[:0]
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)

"""The redacted copy of a recording: the same audio with chosen intervals silenced (card numbers read out...).

``silence(src, dst, intervals)`` copies ``src`` to ``dst`` in chunks, zeroing every sample inside the intervals
(seconds from the start of the file). ``intervals`` is either one list applied to every channel, or a mapping
from a channel to its own list: a channel index (0 = left) or, for a call's stereo file, a speaker name
("customer" = left, "agent" = right), the form ``asr.analysis`` reports. The source is never modified;
``dst`` appears complete or not at all (see recordings/wavstream.py), and may be ``src`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from recordings.exceptions import UnsupportedFormat
from recordings.files import FinishedRecording
from recordings.wavstream import CHUNK_FRAMES, PcmReader, PcmWriter

Interval = tuple[float, float]
CHANNEL_NAMES = {"customer": 0, "caller": 0, "left": 0, "agent": 1, "right": 1}


def _channel(key: int | str, channels: int, src: Path) -> int:
    index = CHANNEL_NAMES.get(key) if isinstance(key, str) else key
    if index is None:
        raise ValueError(f"unknown channel {key!r} (use an index or one of: {', '.join(CHANNEL_NAMES)})")
    if not 0 <= index < channels:
        raise UnsupportedFormat(f"{src}: has {channels} channel(s), no channel {key!r}")
    return index


def _frames(intervals: Sequence[Interval], rate: int, total: int) -> list[tuple[int, int]]:
    out = []
    for iv in intervals:
        start, end = float(iv[0]), float(iv[1])
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise ValueError(f"bad interval {iv!r}: need finite start <= end, in seconds")
        lo, hi = max(0, int(np.floor(start * rate))), min(total, int(np.ceil(end * rate)))
        if hi > lo:
            out.append((lo, hi))
    return out


def silence(src: Path, dst: Path,
            intervals: Sequence[Interval] | Mapping[int | str, Sequence[Interval]]) -> FinishedRecording:
    """Write ``dst``: ``src`` with the intervals silenced; returns its checksum, size and duration.

    Raises ValueError for a malformed interval or channel name (before anything is written),
    RecordingDamaged / UnsupportedFormat for a source that is not a 16-bit PCM WAV.
    """
    with PcmReader(src) as r:
        if isinstance(intervals, Mapping):
            per: dict[int, list[tuple[int, int]]] = {}
            for key, ivs in intervals.items():
                per.setdefault(_channel(key, r.channels, src), []).extend(_frames(ivs, r.rate, r.frames))
        else:
            everywhere = _frames(intervals, r.rate, r.frames)
            per = {c: list(everywhere) for c in range(r.channels)}
        with PcmWriter(dst, r.channels, r.rate, r.frames) as w:
            pos = 0
            while pos < r.frames:
                n = min(CHUNK_FRAMES, r.frames - pos)
                block = r.read(n).copy()
                if len(block) < n:
                    block = np.concatenate((block, np.zeros((n - len(block), r.channels), dtype=np.int16)))
                for c, spans in per.items():
                    for lo, hi in spans:
                        a, b = max(lo, pos), min(hi, pos + n)
                        if b > a:
                            block[a - pos: b - pos, c] = 0
                w.write(block)
                pos += n
            return w.finish()

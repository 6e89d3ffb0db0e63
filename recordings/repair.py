"""Repair WAV recordings left behind by a crashed (kill -9) recorder.

The recorder writes a PCM header with placeholder sizes, then appends frames; a crash leaves the RIFF and ``data``
sizes stale, so ``wave`` refuses the file or sees 0 frames. ``repair_wav`` walks the RIFF chunks, takes the real data
length from the file size, drops a partial trailing frame and rewrites the two size fields in place (audio bytes are
never rewritten). A file whose sizes already agree with it is left untouched. ``is_intact`` is the cheap check.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from recordings.exceptions import RecordingDamaged

_PCM = 0x0001
_EXTENSIBLE = 0xFFFE
_PCM_SUBFORMAT = bytes.fromhex("0100000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM, little-endian
_FMT_SIZES = (16, 18, 40)
_HEADER = 44  # RIFF/WAVE + 16-byte fmt chunk + data chunk header: the smallest complete header


@dataclass(frozen=True, slots=True)
class RepairResult:
    path: Path
    repaired: bool  # True if the header was rewritten or the file was truncated
    frames: int  # sample frames of audio kept
    seconds: float
    sha256: str  # of the file after repair
    bytes: int  # file size after repair
    note: str  # "ok", "header rewritten: data 0 -> 12345 bytes, riff 0 -> 12381 bytes", "trailing 3 bytes dropped"


@dataclass(frozen=True, slots=True)
class _Layout:
    riff: int  # RIFF size field as stored
    block_align: int
    rate: int
    data_offset: int  # offset of the first audio byte
    declared: int  # data size field as stored
    length: int  # data bytes to keep
    end: int  # file size after repair


def _damaged(path: Path, problem: str) -> RecordingDamaged:
    return RecordingDamaged(f"{path}: {problem}")


def _u32(raw: bytes) -> int:
    value: int = struct.unpack("<I", raw)[0]
    return value


def _parse_fmt(path: Path, body: bytes) -> tuple[int, int]:
    """(block_align, sample rate) of a PCM fmt chunk body."""
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _EXTENSIBLE:
        if len(body) != 40 or body[24:40] != _PCM_SUBFORMAT:
            raise _damaged(path, "not PCM (WAVE_FORMAT_EXTENSIBLE with a non-PCM subformat)")
    elif tag != _PCM:
        raise _damaged(path, f"not PCM (format tag 0x{tag:04x})")
    if not channels or not bits or not rate:
        raise _damaged(path, f"fmt chunk has channels={channels} bits={bits} rate={rate}")
    return channels * ((bits + 7) // 8), rate


def _chunks_fill(f: BinaryIO, pos: int, size: int) -> bool:
    """True when well-formed chunks run from ``pos`` to the end of the file (a final pad byte may be missing)."""
    while pos < size:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8 or not all(0x20 <= b <= 0x7E for b in head[:4]):
            return False
        n = _u32(head[4:])
        if pos + 8 + n > size:
            return False
        pos += 8 + n + (n & 1)
    return True


def _layout(path: Path, f: BinaryIO, size: int) -> _Layout:
    if size < _HEADER:
        raise _damaged(path, f"{size} bytes, shorter than a WAV header")
    f.seek(0)
    head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise _damaged(path, "not a RIFF/WAVE file")
    fmt: tuple[int, int] | None = None
    pos = 12
    while True:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            raise _damaged(path, "no data chunk")
        cid, n = chunk[:4], _u32(chunk[4:])
        if cid == b"data":
            break
        if cid == b"fmt ":
            if n not in _FMT_SIZES:
                raise _damaged(path, f"fmt chunk of {n} bytes (expected 16, 18 or 40)")
            body = f.read(n)
            if len(body) < n:
                raise _damaged(path, "fmt chunk truncated")
            fmt = _parse_fmt(path, body)
        pos += 8 + n + (n & 1)
    if fmt is None:
        raise _damaged(path, "no fmt chunk before the data chunk")
    block_align, rate = fmt
    data_offset = pos + 8
    avail = size - data_offset
    if n <= avail and _chunks_fill(f, data_offset + n + (n & 1), size):
        return _Layout(_u32(head[4:8]), block_align, rate, data_offset, n, n, size)  # sizes are consistent
    length = avail - avail % block_align  # crash: the data runs to the end of the file; keep whole frames only
    return _Layout(_u32(head[4:8]), block_align, rate, data_offset, n, length, data_offset + length)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def repair_wav(path: Path) -> RepairResult:
    """Make the header of a crashed recording match its audio; raise RecordingDamaged if it cannot be done."""
    size = path.stat().st_size
    with path.open("rb") as f:
        lay = _layout(path, f, size)
    if lay.end - 8 > 0xFFFFFFFF:
        raise _damaged(path, f"{lay.end} bytes, too large for a RIFF file")
    changes = []
    if lay.length != lay.declared:
        changes.append(f"data {lay.declared} -> {lay.length} bytes")
    if lay.riff != lay.end - 8:
        changes.append(f"riff {lay.riff} -> {lay.end - 8} bytes")
    dropped = size - lay.end
    notes = []
    if changes:
        notes.append("header rewritten: " + ", ".join(changes))
    if dropped:
        notes.append(f"trailing {dropped} byte{'' if dropped == 1 else 's'} dropped")
    if notes:
        with path.open("r+b") as f:
            if dropped:
                f.truncate(lay.end)
            f.seek(4)
            f.write(struct.pack("<I", lay.end - 8))
            f.seek(lay.data_offset - 4)
            f.write(struct.pack("<I", lay.length))
            f.flush()
            os.fsync(f.fileno())
    frames = lay.length // lay.block_align
    return RepairResult(
        path=path,
        repaired=bool(notes),
        frames=frames,
        seconds=frames / lay.rate,
        sha256=_sha256(path),
        bytes=path.stat().st_size,
        note="; ".join(notes) or "ok",
    )


def is_intact(path: Path) -> bool:
    """True when the header's sizes match the file (reads the chunk headers only, never the audio)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            lay = _layout(path, f, size)
    except (OSError, RecordingDamaged):
        return False
    return lay.end == size and lay.length == lay.declared and lay.riff == size - 8

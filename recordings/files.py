"""Where recordings live and how a finished one is checked: valid WAV header, duration, checksum."""

from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FinishedRecording:
    path: Path
    sha256: str
    bytes: int
    seconds: float


def leg_location(root: Path, call_id: str, leg: str, when: datetime) -> Path:
    """``root/YYYY/MM/DD/<call id>.<leg>.wav``, the day being the call's start."""
    return root / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}" / f"{call_id}.{leg}.wav"


def leg_path(root: Path, call_id: str, leg: str, when: datetime) -> Path:
    """``leg_location``, with its folder created."""
    path = leg_location(root, call_id, leg, when)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def fresh_leg_path(root: Path, call_id: str, leg: str, when: datetime) -> Path:
    """``leg_path``, or ``<call id>.<leg>-2.wav``, ``-3``... if a recording of that leg is there already
    (a caller transferred from one agent to another: each agent's leg is kept, never overwritten)."""
    path = leg_path(root, call_id, leg, when)
    n = 2
    while path.exists():
        path = path.with_name(f"{call_id}.{leg}-{n}.wav")
        n += 1
    return path


def size(path: Path) -> int | None:
    """The file's size in bytes; None if it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def finish(path: Path) -> FinishedRecording | None:
    """Checksum and measure a closed recording; None if the file was never written."""
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    try:
        with wave.open(str(path), "rb") as w:
            seconds = w.getnframes() / w.getframerate() if w.getframerate() else 0.0
    except (wave.Error, EOFError):
        seconds = 0.0
    return FinishedRecording(path, digest.hexdigest(), path.stat().st_size, seconds)

"""One agent channel from several agents' legs: a caller transferred from agent to agent.

Each agent's leg is recorded on its own (``<call>.agent.wav``, then ``<call>.agent-2.wav``...:
recordings/files.py ``fresh_leg_path``). The stereo file, the transcript and QA want one agent
channel on the call's timeline, so ``join`` lays the segments end to end at their start times into
one mono WAV (``<call>.agents.wav``), silence between them. Segments are taken in order of start;
where one starts before the previous ended (the hand-over of an attended transfer overlaps by a
few milliseconds), the later one's overlapping start is dropped. The per-agent files stay as they
are. Streams in chunks like recordings/stereo.py; written atomically (recordings/wavstream.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recordings.exceptions import UnsupportedFormat
from recordings.files import FinishedRecording
from recordings.wavstream import CHUNK_FRAMES, PcmReader, PcmWriter


def join(segments: Sequence[tuple[Path, float]], out: Path) -> FinishedRecording:
    """``segments``: (mono WAV, start in seconds on a common clock). The output starts at the earliest
    start; returns its metadata. UnsupportedFormat for a stereo segment or mixed sample rates."""
    if not segments:
        raise ValueError("join: no segments")
    ordered = sorted(segments, key=lambda s: s[1])
    t0 = ordered[0][1]
    readers = [PcmReader(path) for path, _ in ordered]
    try:
        rate = readers[0].rate
        for r in readers:
            if r.channels != 1:
                raise UnsupportedFormat(f"{r.path}: {r.channels} channels (a leg is mono)")
            if r.rate != rate:
                raise UnsupportedFormat(f"{r.path}: {r.rate} Hz, the first segment is {rate} Hz")
        plan = []                                   # (reader, zeros before it, frames of it to skip)
        pos = 0
        for r, (_, start) in zip(readers, ordered, strict=True):
            at = int(round((start - t0) * rate))
            gap, skip = max(0, at - pos), max(0, pos - at)
            skip = min(skip, r.frames)
            plan.append((r, gap, skip))
            pos += gap + r.frames - skip
        with PcmWriter(out, 1, rate, pos) as w:
            for r, gap, skip in plan:
                while gap > 0:
                    n = min(gap, CHUNK_FRAMES)
                    w.write(np.zeros(n, dtype=np.int16))
                    gap -= n
                left = r.frames
                while left > 0:
                    block = r.read(min(left, CHUNK_FRAMES))
                    if len(block) == 0:
                        raise UnsupportedFormat(f"{r.path}: shorter than its header says")
                    left -= len(block)
                    if skip:
                        cut = min(skip, len(block))
                        block, skip = block[cut:], skip - cut
                    if len(block):
                        w.write(block)
            return w.finish()
    finally:
        for r in readers:
            r.close()

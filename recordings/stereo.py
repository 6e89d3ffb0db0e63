"""The stereo file of a call: the caller's leg on the left, the agent's on the right, on one timeline.

Each leg is its own mono recording (recordings/files.py); the agent's starts when the agent was bridged,
``agent_offset_s`` after the caller's. ``mix`` lays both onto one 16-bit stereo WAV in chunks (memory stays
constant however long the call), resampling a leg whose rate differs from the output's, and padding the
shorter side with silence; pauses are already silence in the legs, so they need nothing here. A call that
never reached an agent gets a silent right channel, so every call has a stereo file of the same shape.
``split`` is the inverse the transcription worker uses: one mono file per channel, on the call's timeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recordings.exceptions import UnsupportedFormat
from recordings.files import FinishedRecording
from recordings.wavstream import CHUNK_FRAMES, Pcm, PcmReader, PcmWriter, Resampler


class _Channel:
    """One leg as a stream of exactly ``length`` samples at the output rate, ``lead`` zeros first."""

    def __init__(self, reader: PcmReader | None, rate: int, lead: int) -> None:
        self.reader = reader
        self.lead = lead
        if reader is None:
            self.length = lead
            self._resampler: Resampler | None = None
        else:
            self.length = lead + int(round(reader.frames * rate / reader.rate))
            self._resampler = Resampler(reader.rate, rate)
        self._pending = np.zeros(0, dtype=np.int16)
        self._pos = 0          # samples handed out so far
        self._eof = reader is None

    def _fill(self, need: int) -> None:
        parts = [self._pending]
        have = len(self._pending)
        while have < need and not self._eof:
            assert self.reader is not None and self._resampler is not None
            block = self.reader.read(CHUNK_FRAMES)
            if len(block) == 0:
                out = self._resampler.flush()
                self._eof = True
            else:
                out = self._resampler.process(block[:, 0])
            parts.append(out)
            have += len(out)
        self._pending = np.concatenate(parts)

    def take(self, n: int) -> Pcm:
        """The next ``n`` samples (silence before the lead ends and after the leg ends)."""
        out = np.zeros(n, dtype=np.int16)
        start, end = self._pos, self._pos + n
        self._pos = end
        lo, hi = max(start, self.lead), min(end, self.length)
        if hi <= lo:
            return out
        self._fill(hi - lo)
        got = self._pending[: hi - lo]
        self._pending = self._pending[hi - lo:]
        out[lo - start: lo - start + len(got)] = got
        return out


def mix(caller: Path, agent: Path | None, out: Path, *, agent_offset_s: float = 0.0,
        rate: int | None = None) -> FinishedRecording:
    """Write ``out``: ``caller`` left, ``agent`` right starting ``agent_offset_s`` into the call, at ``rate``
    (default: the caller leg's). Returns its checksum, size and duration.

    Raises FileNotFoundError for a missing leg, RecordingDamaged for a file that is not a WAV,
    UnsupportedFormat for one that is not 16-bit PCM, ValueError for a negative offset or rate.
    The legs are mono; of a leg with more channels, the first is used.
    """
    if agent_offset_s < 0:
        raise ValueError(f"agent_offset_s must be >= 0, not {agent_offset_s!r}")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive, not {rate!r}")
    with PcmReader(caller) as left:
        right = PcmReader(agent) if agent is not None else None
        try:
            out_rate = rate or left.rate
            channels = (_Channel(left, out_rate, 0),
                        _Channel(right, out_rate, int(round(agent_offset_s * out_rate)) if right else 0))
            frames = max(c.length for c in channels)
            with PcmWriter(out, 2, out_rate, frames) as w:
                for n in _blocks(frames):
                    w.write(np.column_stack([c.take(n) for c in channels]))
                return w.finish()
        finally:
            if right is not None:
                right.close()


def split(src: Path, outs: dict[int, Path]) -> dict[int, FinishedRecording]:
    """Copy channels of ``src`` (0 = left) to mono files: ``outs`` maps a channel to its file."""
    with PcmReader(src) as r:
        bad = sorted(c for c in outs if not 0 <= c < r.channels)
        if bad:
            raise UnsupportedFormat(f"{src}: has {r.channels} channel(s), no channel {bad[0]}")
        writers = {c: PcmWriter(p, 1, r.rate, r.frames) for c, p in outs.items()}
        try:
            for n in _blocks(r.frames):
                block = r.read(n)
                if len(block) < n:     # the header promised more than the file holds: pad with silence
                    block = np.concatenate((block, np.zeros((n - len(block), r.channels), dtype=np.int16)))
                for c, w in writers.items():
                    w.write(block[:, c])
            return {c: w.finish() for c, w in writers.items()}
        except BaseException:
            for w in writers.values():
                w.abort()
            raise


def _blocks(frames: int) -> Iterator[int]:
    for start in range(0, frames, CHUNK_FRAMES):
        yield min(CHUNK_FRAMES, frames - start)

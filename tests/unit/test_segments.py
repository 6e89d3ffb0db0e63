"""recordings.segments.join: several agents' legs of one transferred call become one agent channel."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np
import pytest

from recordings.exceptions import UnsupportedFormat
from recordings.segments import join
from tests.unit.test_stereo import tone, write


def read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_segments_are_laid_at_their_start_times_with_silence_between(tmp_path: Path) -> None:
    first = write(tmp_path / "c.agent.wav", tone(2.0, 600))
    second = write(tmp_path / "c.agent-2.wav", tone(1.5, 900))
    done = join([(second, 1003.5), (first, 1000.0)], tmp_path / "c.agents.wav")   # (any order)
    pcm = read(done.path)
    assert len(pcm) == int(5.0 * 8000) and done.seconds == pytest.approx(5.0)
    assert np.array_equal(pcm[:16000], tone(2.0, 600))
    assert not pcm[16000:28000].any()                                   # 2.0 .. 3.5 s: between the agents
    assert np.array_equal(pcm[28000:], tone(1.5, 900))
    assert done.sha256 == hashlib.sha256(done.path.read_bytes()).hexdigest()
    assert not (tmp_path / "c.agents.wav.part").exists()


def test_an_overlapping_start_is_dropped_not_mixed(tmp_path: Path) -> None:
    first = write(tmp_path / "a.wav", tone(1.0, 600))
    second = write(tmp_path / "b.wav", tone(1.0, 900))
    pcm = read(join([(first, 10.0), (second, 10.75)], tmp_path / "out.wav").path)
    assert len(pcm) == 8000 + 6000                                      # b's first 0.25 s overlapped a's end
    assert np.array_equal(pcm[:8000], tone(1.0, 600)) and np.array_equal(pcm[8000:], tone(1.0, 900)[2000:])


def test_bad_segments_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    mono = write(tmp_path / "a.wav", tone(1.0, 600))
    stereo = write(tmp_path / "s.wav", np.stack([tone(1.0, 600)] * 2, axis=1))
    other_rate = write(tmp_path / "r.wav", tone(1.0, 600, rate=16000), rate=16000)
    for bad in (stereo, other_rate):
        with pytest.raises(UnsupportedFormat):
            join([(mono, 0.0), (bad, 2.0)], tmp_path / "out.wav")
    with pytest.raises(ValueError):
        join([], tmp_path / "out.wav")
    assert not list(tmp_path.glob("out.wav*"))

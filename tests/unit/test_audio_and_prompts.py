from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from callcenter.server import convert_prompt
from ivr.exceptions import PromptError
from ivr.prompts import PromptCache
from tests.support.audio import active_seconds, dominant_frequency, tone
from voice.audio import Audio, read_wav, resample, write_wav
from voice.exceptions import AudioFormatError


def test_resample_keeps_tone_and_duration() -> None:
    src = tone(1000, 1.0, rate=22050)
    out = resample(src, 8000)
    assert out.rate == 8000 and abs(out.duration - 1.0) < 0.01
    assert abs(dominant_frequency(out) - 1000) < 5


def test_resample_removes_what_cannot_be_represented() -> None:
    # 6 kHz is above the 4 kHz Nyquist limit of 8 kHz audio: it must not alias into the band.
    out = resample(tone(6000, 1.0, rate=22050, level=10000), 8000)
    assert np.sqrt((out.samples.astype(float) ** 2).mean()) < 300


def test_wav_round_trip_and_truncated_file(tmp_path: Path) -> None:
    a = tone(440, 0.5)
    write_wav(tmp_path / "a.wav", a)
    b = read_wav(tmp_path / "a.wav")
    assert b.rate == 8000 and np.array_equal(a.samples, b.samples)
    (tmp_path / "t.wav").write_bytes((tmp_path / "a.wav").read_bytes()[:30])
    with pytest.raises(AudioFormatError, match="not a usable WAV"):
        read_wav(tmp_path / "t.wav")
    # A header that promises more frames than the file holds: read what is there.
    (tmp_path / "c.wav").write_bytes((tmp_path / "a.wav").read_bytes()[:2044])
    assert len(read_wav(tmp_path / "c.wav").samples) == 1000


async def test_prompt_is_spoken_converted_and_cached(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, 8000, convert_prompt)
    path = await cache.render("Please hold.")
    audio = read_wav(path)
    assert audio.rate == 8000 and 0.4 < audio.duration < 3.0
    assert active_seconds(audio) > 0.3  # real speech, not silence
    mtime = path.stat().st_mtime_ns
    assert await cache.render("Please hold.") == path and path.stat().st_mtime_ns == mtime
    assert cache.path_for("Please hold.") != PromptCache(tmp_path, 16000, convert_prompt).path_for("Please hold.")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


async def test_prompt_failure_is_a_clear_error(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, 8000, convert_prompt, voice="no-such-voice-xyz")
    with pytest.raises(PromptError, match="text-to-speech failed"):
        await cache.render("hello")


def test_audio_duration() -> None:
    assert Audio(np.zeros(8000, dtype=np.int16), 8000).duration == 1.0


@pytest.mark.parametrize("fmt", [["-b", "24", "-c", "2", "-r", "44100"], ["-e", "mu-law", "-r", "8000"],
                                 ["-e", "floating-point", "-b", "32", "-r", "16000"]])
def test_any_wav_an_operator_names_is_converted_to_the_engine_rate(tmp_path: Path, fmt: list[str]) -> None:
    src = tmp_path / "greeting.wav"
    subprocess.run(["sox", "-n", *fmt, str(src), "synth", "1.5", "sine", "440"], check=True)
    convert_prompt(src, tmp_path / "out.wav", 8000)
    out = read_wav(tmp_path / "out.wav")
    assert out.rate == 8000 and abs(out.duration - 1.5) < 0.01
    assert abs(dominant_frequency(out) - 440) < 10


def test_a_file_that_is_not_sound_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "greeting.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    with pytest.raises(AudioFormatError, match="greeting.wav"):
        convert_prompt(bad, tmp_path / "out.wav", 8000)

"""recordings.stereo (mix, split), recordings.redact (silence) and the streaming resampler, on real WAV files."""

from __future__ import annotations

import hashlib
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest

from recordings.exceptions import RecordingDamaged, UnsupportedFormat
from recordings.redact import silence
from recordings.stereo import mix, split
from recordings.wavstream import Resampler


def tone(seconds: float, hz: float, rate: int = 8000, level: int = 12000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def write(path: Path, samples: np.ndarray, rate: int = 8000, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes() if width == 2 else samples.tobytes())
    return path


def read(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return data, w.getframerate()


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def test_mix_puts_the_caller_left_and_the_agent_right_from_its_offset(tmp_path: Path) -> None:
    caller = tone(3.0, 440)
    agent = tone(2.5, 1000)
    fin = mix(write(tmp_path / "c.wav", caller), write(tmp_path / "a.wav", agent), tmp_path / "s.wav",
              agent_offset_s=1.25)
    data, rate = read(tmp_path / "s.wav")
    assert rate == 8000 and data.shape == (int(3.75 * 8000), 2)       # the agent ends after the caller
    assert np.array_equal(data[:len(caller), 0], caller) and not data[len(caller):, 0].any()
    lead = int(1.25 * 8000)
    assert not data[:lead, 1].any()
    assert np.array_equal(data[lead:, 1], agent)
    assert fin.seconds == pytest.approx(3.75)
    assert fin.bytes == (tmp_path / "s.wav").stat().st_size == 44 + data.size * 2
    assert fin.sha256 == hashlib.sha256((tmp_path / "s.wav").read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.part"))


def test_a_call_without_agent_gets_a_silent_right_channel(tmp_path: Path) -> None:
    caller = tone(1.0, 300)
    mix(write(tmp_path / "c.wav", caller), None, tmp_path / "s.wav")
    data, _ = read(tmp_path / "s.wav")
    assert np.array_equal(data[:, 0], caller) and not data[:, 1].any()


def test_a_leg_at_another_rate_is_resampled_to_the_output_rate(tmp_path: Path) -> None:
    caller = tone(2.0, 440)
    agent16 = tone(2.0, 1000, rate=16000)
    mix(write(tmp_path / "c.wav", caller), write(tmp_path / "a.wav", agent16, rate=16000), tmp_path / "s.wav")
    data, rate = read(tmp_path / "s.wav")
    assert rate == 8000 and len(data) == 16000
    assert dominant_hz(data[:, 1], 8000) == pytest.approx(1000, abs=5)
    assert np.abs(data[200:-200, 1].astype(int)).max() == pytest.approx(12000, rel=0.03)
    mix(tmp_path / "c.wav", tmp_path / "a.wav", tmp_path / "s16.wav", rate=16000)   # and up
    data16, rate16 = read(tmp_path / "s16.wav")
    assert rate16 == 16000 and len(data16) == 32000
    assert dominant_hz(data16[:, 0], 16000) == pytest.approx(440, abs=5)


def test_mix_streams_a_long_call_in_constant_memory(tmp_path: Path) -> None:
    noise = np.random.default_rng(7).integers(-8000, 8000, 8000 * 600, dtype=np.int16)  # 10 minutes
    write(tmp_path / "c.wav", noise)
    write(tmp_path / "a.wav", noise[: 8000 * 300])
    del noise
    tracemalloc.start()
    try:
        fin = mix(tmp_path / "c.wav", tmp_path / "a.wav", tmp_path / "s.wav", agent_offset_s=200)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fin.bytes > 19_000_000            # the output is 19 MB...
    assert peak < 4_000_000, peak            # ...but no more than a few chunks were held at once


def test_split_gives_back_each_channel_on_the_call_timeline(tmp_path: Path) -> None:
    caller, agent = tone(2.0, 440), tone(1.0, 700)
    mix(write(tmp_path / "c.wav", caller), write(tmp_path / "a.wav", agent), tmp_path / "s.wav", agent_offset_s=0.5)
    out = split(tmp_path / "s.wav", {0: tmp_path / "l.wav", 1: tmp_path / "r.wav"})
    left, _ = read(tmp_path / "l.wav")
    right, _ = read(tmp_path / "r.wav")
    assert np.array_equal(left[:, 0], caller)
    assert np.array_equal(right[4000:12000, 0], agent) and not right[:4000].any()
    assert out[1].seconds == pytest.approx(2.0)
    with pytest.raises(UnsupportedFormat, match="no channel 2"):
        split(tmp_path / "s.wav", {2: tmp_path / "x.wav"})


def test_bad_legs_get_a_clear_error_and_leave_nothing_behind(tmp_path: Path) -> None:
    good = write(tmp_path / "c.wav", tone(0.5, 440))
    (tmp_path / "junk.wav").write_bytes(b"this is not audio" * 10)
    with pytest.raises(RecordingDamaged, match="junk.wav: not a readable WAV"):
        mix(tmp_path / "junk.wav", None, tmp_path / "s.wav")
    with pytest.raises(RecordingDamaged, match="junk.wav"):
        mix(good, tmp_path / "junk.wav", tmp_path / "s.wav")
    eight = write(tmp_path / "8bit.wav", np.full(800, 128, dtype=np.uint8), width=1)
    with pytest.raises(UnsupportedFormat, match="8-bit samples"):
        mix(good, eight, tmp_path / "s.wav")
    with pytest.raises(FileNotFoundError):
        mix(good, tmp_path / "missing.wav", tmp_path / "s.wav")
    with pytest.raises(ValueError, match="agent_offset_s"):
        mix(good, good, tmp_path / "s.wav", agent_offset_s=-1)
    assert not (tmp_path / "s.wav").exists() and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(("rate_in", "rate_out"), [(16000, 8000), (8000, 16000), (44100, 8000), (8000, 11025),
                                                   (48000, 8000)])
def test_resampler_gives_the_same_samples_whatever_the_chunking(rate_in: int, rate_out: int) -> None:
    x = tone(1.0, 300, rate=rate_in)
    whole = Resampler(rate_in, rate_out)
    ref = np.concatenate([whole.process(x), whole.flush()])
    for size in (1, 160, 777, 5000):
        r = Resampler(rate_in, rate_out)
        got = np.concatenate([r.process(x[i:i + size]) for i in range(0, len(x), size)] + [r.flush()])
        assert np.array_equal(got, ref), size
    n = int(round(len(x) * rate_out / rate_in))
    assert len(ref) >= n and dominant_hz(ref[:n], rate_out) == pytest.approx(300, abs=3)


def test_silence_zeroes_exactly_the_intervals_of_a_mono_file(tmp_path: Path) -> None:
    x = tone(2.0, 440)
    fin = silence(write(tmp_path / "m.wav", x), tmp_path / "r.wav", [(0.5, 0.75), (1.9, 5.0)])
    y, _ = read(tmp_path / "r.wav")
    assert not y[4000:6000].any() and not y[15200:].any()
    assert np.array_equal(y[:4000, 0], x[:4000]) and np.array_equal(y[6000:15200, 0], x[6000:15200])
    assert fin.sha256 == hashlib.sha256((tmp_path / "r.wav").read_bytes()).hexdigest()
    assert np.array_equal(read(tmp_path / "m.wav")[0][:, 0], x)      # the source is untouched


def test_silence_takes_per_channel_intervals_by_speaker_for_a_stereo_file(tmp_path: Path) -> None:
    caller, agent = tone(2.0, 440), tone(2.0, 700)
    stereo = tmp_path / "s.wav"
    mix(write(tmp_path / "c.wav", caller), write(tmp_path / "a.wav", agent), stereo)
    silence(stereo, tmp_path / "r.wav", {"customer": [(1.0, 1.5)], "agent": [(0.0, 0.25)]})
    y, _ = read(tmp_path / "r.wav")
    assert not y[8000:12000, 0].any() and np.array_equal(y[:8000, 0], caller[:8000])
    assert np.array_equal(y[8000:12000, 1], agent[8000:12000])          # the agent was not silenced there
    assert not y[:2000, 1].any() and np.array_equal(y[2000:, 1], agent[2000:])
    silence(stereo, stereo, {1: [(0.0, 2.0)]})                             # in place
    z, _ = read(stereo)
    assert np.array_equal(z[:, 0], caller) and not z[:, 1].any()


def test_silence_refuses_bad_intervals_before_writing(tmp_path: Path) -> None:
    src = write(tmp_path / "m.wav", tone(1.0, 440))
    with pytest.raises(ValueError, match="bad interval"):
        silence(src, tmp_path / "r.wav", [(0.8, 0.2)])
    with pytest.raises(ValueError, match="unknown channel 'boss'"):
        silence(src, tmp_path / "r.wav", {"boss": [(0.0, 0.1)]})
    with pytest.raises(UnsupportedFormat, match="no channel 'agent'"):
        silence(src, tmp_path / "r.wav", {"agent": [(0.0, 0.1)]})
    assert not (tmp_path / "r.wav").exists() and not list(tmp_path.glob("*.part"))

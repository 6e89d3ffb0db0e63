"""In-band DTMF: voice.tones generates the keys, voice.dtmf must hear them, and nothing else.

Every signal is real audio pushed through a G.711 mu-law encode/decode (the standard segment
algorithm, written out below), as it would arrive from a phone line. Talk-off is tested on
speech from espeak-ng (several voices and languages, three levels) and on synthetic hold music
(or /usr/share/asterisk/moh when it exists).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from voice.audio import Audio, read_wav, resample
from voice.dtmf import DtmfDetector, detect
from voice.exceptions import AudioFormatError
from voice.tones import (
    DIGITS,
    FREQUENCIES,
    beep,
    dbm0_amplitude,
    dtmf_sequence,
    dtmf_tone,
    fallback_tone,
    silence,
    write_tone_wav,
)

RATE = 8000
BLOCK_S = 105 / RATE
F64 = npt.NDArray[np.float64]


# -- the phone line ------------------------------------------------------------------------------
def ulaw_encode(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """G.711 mu-law (the 0x84-bias segment algorithm)."""
    s = pcm.astype(np.int32)
    sign = (s < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(s), 32635) + 0x84
    exp = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8)


def ulaw_decode(code: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    c = ~code.astype(np.int32) & 0xFF
    exp, mant = (c >> 4) & 7, c & 0x0F
    mag = (((mant << 3) + 0x84) << exp) - 0x84
    return np.where(c & 0x80, -mag, mag).astype(np.int16)


def line(x: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    """What reaches us over a G.711 line: clipped to 16 bits, mu-law encoded and decoded."""
    return ulaw_decode(ulaw_encode(np.clip(np.rint(x), -32768, 32767).astype(np.int16)))


def pure(key: str, ms: float, level_db: float = -10.0, twist_db: float = 0.0, dev_low: float = 0.0,
         dev_high: float = 0.0, seed: int = 0) -> F64:
    """A key's tones with no ramp, at a random phase, each tone optionally off its frequency."""
    low, high = FREQUENCIES[key]
    t = np.arange(int(ms * RATE / 1000)) / RATE
    ph = np.random.default_rng(seed).uniform(0, 2 * np.pi, 2)
    return (dbm0_amplitude(level_db) * np.sin(2 * np.pi * low * (1 + dev_low) * t + ph[0])
            + dbm0_amplitude(level_db + twist_db) * np.sin(2 * np.pi * high * (1 + dev_high) * t + ph[1]))


def padded(*parts: F64 | npt.NDArray[np.int16], lead: int = 400) -> F64:
    return np.concatenate([np.zeros(lead), *[np.asarray(p, np.float64) for p in parts], np.zeros(400)])


def keys(x: npt.NDArray[np.int16], rate: int = RATE) -> str:
    return "".join(k for k, _ in detect(x, rate))


# -- tones.py ------------------------------------------------------------------------------------
def peak_freqs(x: npt.NDArray[np.int16], n: int = 2) -> list[float]:
    spec = np.abs(np.fft.rfft(x.astype(np.float64), 8 * len(x)))
    freqs = np.fft.rfftfreq(8 * len(x), 1 / RATE)
    found: list[float] = []
    for i in np.argsort(spec)[::-1]:
        if all(abs(freqs[i] - f) > 50 for f in found):
            found.append(float(freqs[i]))
        if len(found) == n:
            break
    return sorted(found)


@pytest.mark.parametrize("key", list(DIGITS))
def test_dtmf_tone_has_the_itu_frequencies_and_level(key: str) -> None:
    x = dtmf_tone(key, 100, RATE, level_db=-6.0)
    assert x.dtype == np.int16 and len(x) == 800
    low, high = FREQUENCIES[key]
    assert peak_freqs(x) == pytest.approx([low, high], abs=2)
    # Two tones at -6 dBm0 each: -3 dBm0 together; 0 dBm0 is RMS 32767 / 10^(3.14/20) / sqrt(2).
    rms_db = 20 * np.log10(np.sqrt(np.mean(x[40:-40].astype(np.float64) ** 2)) / (dbm0_amplitude(0) / np.sqrt(2)))
    assert rms_db == pytest.approx(-3.0, abs=0.1)


def test_tone_helpers() -> None:
    assert dtmf_tone("a", 50).shape == (400,)  # letters in either case
    seq = dtmf_sequence("1 2 3", tone_ms=100, gap_ms=80)
    assert len(seq) == 3 * 800 + 2 * 640
    assert not seq[800:1440].any()
    assert len(dtmf_sequence("")) == 0
    assert len(silence(20, 16000)) == 320 and not silence(20).any()
    b = beep()
    assert len(b) == 3200 and peak_freqs(b, 1) == pytest.approx([1000], abs=2)
    fb = fallback_tone()
    assert len(fb) / RATE == pytest.approx(0.8, abs=0.05)
    first, second = fb[: len(fb) // 2], fb[len(fb) // 2:]
    assert peak_freqs(first, 1)[0] > peak_freqs(second, 1)[0] + 100  # two descending tones
    assert np.abs(fb).max() > 5000
    assert len(dtmf_tone("0", 100, 16000)) == 1600
    for bad in ("E", "11", "", "x"):
        with pytest.raises(ValueError, match="not a DTMF key"):
            dtmf_tone(bad)
    with pytest.raises(ValueError, match="not a DTMF key"):
        dtmf_sequence("12x")
    with pytest.raises(ValueError, match="sample rate"):
        dtmf_tone("1", rate=0)
    with pytest.raises(ValueError, match="duration"):
        beep(-5)
    with pytest.raises(ValueError, match="beep frequency"):
        beep(freq=5000)


def test_write_tone_wav_round_trips(tmp_path: Path) -> None:
    pcm = dtmf_sequence("159#")
    path = write_tone_wav(tmp_path / "keys.wav", pcm, RATE)
    back = read_wav(path)
    assert back.rate == RATE and np.array_equal(back.samples, pcm)
    assert keys(back.samples) == "159#"


# -- detection -----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(DIGITS))
def test_every_key_is_detected_once_at_its_start(key: str) -> None:
    x = line(padded(dtmf_tone(key, 100), lead=1000))
    found = detect(x)
    assert [k for k, _ in found] == [key]
    assert found[0][1] == pytest.approx(1000 / RATE, abs=BLOCK_S + 0.003)


def test_fastest_q24_sequence_with_random_alignment() -> None:
    """40 ms tones, 40 ms gaps: the shortest Q.24 asks a receiver to accept, at any offset."""
    rng = np.random.default_rng(5)
    for trial in range(12):
        order = "".join(rng.permutation(list(DIGITS)))
        parts: list[F64] = []
        for i, key in enumerate(order):
            parts += [np.zeros(320 + int(rng.integers(0, 105))), pure(key, 40, float(rng.uniform(-25, -4)), seed=i)]
        assert keys(line(padded(*parts, lead=int(rng.integers(0, 200))))) == order, trial


def test_repeated_key_needs_a_gap_and_a_dropout_does_not_split_it() -> None:
    x = line(padded(dtmf_sequence("5555", tone_ms=40, gap_ms=40)))
    assert keys(x) == "5555"
    tone = pure("5", 200)
    held = tone.copy()
    held[800:840] = 0  # 5 ms interruption
    assert keys(line(padded(held))) == "5"
    split = tone.copy()
    split[800:1120] = 0  # 40 ms gap: a second press
    assert keys(line(padded(split))) == "55"
    # A different key straight after, no gap at all: both are reported.
    assert keys(line(padded(pure("1", 80), pure("9", 80)))) == "19"


def test_short_tones_are_rejected() -> None:
    for ms in (10, 15):
        for lead in range(0, 105, 7):
            assert keys(line(padded(pure("8", ms, -6), lead=400 + lead))) == "", (ms, lead)


@pytest.mark.parametrize("level_db", [-3, -6, -10, -20, -25, -30])
def test_levels_from_minus_3_to_minus_30_dbm0(level_db: float) -> None:
    x = line(padded(dtmf_sequence("0123456789*#ABCD", tone_ms=50, gap_ms=50, level_db=level_db)))
    assert keys(x) == "0123456789*#ABCD"


def test_too_quiet_is_ignored() -> None:
    assert keys(line(padded(dtmf_sequence("123", level_db=-45)))) == ""


@pytest.mark.parametrize(("twist", "expected"), [(-8, True), (-6, True), (4, True), (-12, False), (8, False)])
def test_twist(twist: float, expected: bool) -> None:
    """Negative: the high group weaker (normal twist); positive: stronger (reverse twist)."""
    for key in DIGITS:
        x = line(padded(pure(key, 60, -6 if twist < 0 else -12, twist, seed=ord(key))))
        assert (keys(x) == key) is expected, key


@pytest.mark.parametrize(("dev", "expected"), [(0.015, True), (-0.015, True), (0.04, False), (-0.04, False)])
def test_frequency_tolerance(dev: float, expected: bool) -> None:
    """Q.24: accept tones 1.5 % off their nominal frequencies, reject 3.5 % and beyond."""
    for key in DIGITS:
        for dl, dh in ((dev, 0), (0, dev), (dev, dev)):
            x = line(padded(pure(key, 60, -10, dev_low=dl, dev_high=dh, seed=ord(key))))
            assert (keys(x) == key) is expected, (key, dl, dh)


def test_a_third_tone_in_a_group_is_not_a_key() -> None:
    """Two rows (or two columns) at once is no key, even beside a clean one from the other group."""
    t = np.arange(int(0.1 * RATE)) / RATE
    third = dbm0_amplitude(-14) * np.sin(2 * np.pi * 852 * t)  # 4 dB under the key's own tones
    assert keys(line(padded(pure("1", 100, -10) + third))) == ""
    third = dbm0_amplitude(-14) * np.sin(2 * np.pi * 1477 * t)
    assert keys(line(padded(pure("1", 100, -10) + third))) == ""
    assert keys(line(padded(pure("1", 100, -10) + third / 4))) == "1"  # 16 dB under: still a "1"


def test_single_tones_beeps_and_noise_are_not_keys() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(RATE) / RATE
    for f in (697, 941, 1209, 1633, 1000, 440):
        assert keys(line(10000 * np.sin(2 * np.pi * f * t))) == "", f
    assert keys(line(np.concatenate([beep(), fallback_tone()]))) == ""
    for level_db in (-10, -25, -40):
        noise = rng.normal(0, dbm0_amplitude(level_db) / np.sqrt(2), 20 * RATE)
        assert keys(line(noise)) == "", level_db
    sweep = 8000 * np.sin(2 * np.pi * np.cumsum(np.linspace(300, 3400, 10 * RATE)) / RATE)
    assert keys(line(sweep)) == ""


def test_keys_in_noise() -> None:
    rng = np.random.default_rng(4)
    x = padded(dtmf_sequence("42#7", tone_ms=60, gap_ms=60, level_db=-20))
    noise = rng.normal(0, dbm0_amplitude(-40) / np.sqrt(2), len(x))
    assert keys(line(x + noise)) == "42#7"


@pytest.mark.parametrize("chunk", [1, 160, 320, 333])
def test_any_chunk_size_gives_the_same_keys_and_times(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    parts: list[F64] = []
    for i, key in enumerate("1397*#0D"):
        parts += [np.zeros(int(rng.integers(320, 900))), pure(key, float(rng.choice([40, 70, 120])), -12, seed=i)]
    x = line(padded(*parts))
    whole = detect(x)
    det = DtmfDetector()
    streamed: list[tuple[str, float]] = []
    digits: list[str] = []
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk]
        got = det.feed_timed(part)
        streamed += got
        digits += [k for k, _ in got]
    assert "".join(k for k, _ in whole) == "1397*#0D"
    assert streamed == whole
    det.reset()
    plain = [d for i in range(0, len(x), chunk) for d in det.feed(x[i:i + chunk])]
    assert plain == digits


def test_held_key_and_bytes_input() -> None:
    det = DtmfDetector()
    tone = line(pure("#", 100))
    assert det.feed(tone[:400].tobytes()) == ["#"]
    assert det.held == "#"
    det.feed(tone[400:])
    det.feed(np.zeros(400, np.int16))
    assert det.held is None


def test_other_rates() -> None:
    seq = line(padded(dtmf_sequence("2580", tone_ms=45, gap_ms=45)))
    up = resample(Audio(seq, RATE), 16000).samples
    assert keys(up, 16000) == "2580"
    assert keys(dtmf_sequence("2580", rate=48000), 48000) == "2580"
    assert DtmfDetector(16000).block == 210


def test_bad_input_is_refused_clearly() -> None:
    det = DtmfDetector()
    with pytest.raises(ValueError, match="1-D int16"):
        det.feed(np.zeros(160, np.float32))
    with pytest.raises(ValueError, match="1-D int16"):
        det.feed(np.zeros((2, 160), np.int16))
    with pytest.raises(TypeError, match="numpy array"):
        det.feed([0] * 160)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        det.feed(b"\x00\x01\x02")
    for rate in (4000, 8000.0, True):
        with pytest.raises(ValueError, match="sample rate"):
            DtmfDetector(rate)  # type: ignore[arg-type]


# -- talk-off: speech and music ------------------------------------------------------------------
SPEECH = ("Hello, thank you for calling. Press one for sales, two for billing, or hold for an agent. "
          "Your account number is nine eight seven six five four three two one zero. Goodbye!")


def test_speech_is_not_keys(tmp_path: Path) -> None:
    total = 0.0
    for i, voice in enumerate(("en", "en-us", "en+f3", "en+m7", "de", "fr", "cmn")):
        path = tmp_path / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), SPEECH], check=True, capture_output=True)
        speech = resample(read_wav(path), RATE).samples.astype(np.float64)
        for gain in (0.3, 1.0, 3.0):
            x = line(speech * gain)
            total += len(x) / RATE
            assert detect(x) == [], (voice, gain)
    assert total > 150  # seconds of speech heard
    # ...and keys pressed while the caller talks are still heard.
    talk = resample(read_wav(tmp_path / "s0.wav"), RATE).samples.astype(np.float64) * 0.1
    talk[8000:8000 + 1600] += dtmf_sequence("37", tone_ms=80, gap_ms=40)[:1600]
    assert keys(line(talk)) == "37"


def hold_music(seconds: float, seed: int = 7) -> F64:
    """Notes of 1-3 voices, each with 3-6 decaying harmonics, in the 260-2000 Hz range."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int((seconds + 1) * RATE))
    pos = 0
    while pos < seconds * RATE:
        dur = float(rng.choice([0.125, 0.25, 0.5]))
        t = np.arange(int(1.5 * dur * RATE)) / RATE
        env = np.minimum(1, t / 0.01) * np.exp(-3 * t)
        for note in rng.integers(60, 96, size=int(rng.integers(1, 4))):
            f = 440 * 2 ** ((note - 69) / 12)
            nh = int(rng.integers(3, 7))
            seg = sum(1 / k * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6.3)) for k in range(1, nh + 1)
                      if f * k < 3900)
            out[pos:pos + len(t)] += 3000 * env * seg
        pos += int(dur * RATE)
    return out[: int(seconds * RATE)]


def test_music_is_not_keys() -> None:
    moh = sorted(Path("/usr/share/asterisk/moh").glob("*.wav")) if Path("/usr/share/asterisk/moh").is_dir() else []
    for path in moh[:3]:
        try:
            moh_pcm = resample(read_wav(path), RATE).samples
        except AudioFormatError:  # Asterisk ships some WAVs as GSM or other codecs
            continue
        assert detect(line(moh_pcm)) == [], path
    music = hold_music(90)
    music *= 20000 / np.abs(music).max()
    for gain in (1.0, 0.2):
        assert detect(line(music * gain)) == [], gain

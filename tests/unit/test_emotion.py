"""Emotion (asr/emotion.py) and prosody (asr/prosody.py): lexicon with negation, pitch and energy from synthetic
and espeak-ng audio, a call whose last quarter rises in pitch and loudness against a calm one."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from asr.emotion import ANGRY_SCORE, emotion, ends_angry, lexicon_score, valence_sum
from asr.exceptions import BadAudio
from asr.prosody import Pcm, measure, pitch_track, read_wav
from asr.transcript import Speaker, Transcript, Utterance, Word

RATE = 8000


def utt(speaker: Speaker, start: float, end: float, text: str) -> Utterance:
    parts = text.split()
    step = (end - start) / len(parts)
    return Utterance(speaker, start, end, text, 0.9,
                     tuple(Word(w, start + i * step, start + (i + 1) * step, 0.9) for i, w in enumerate(parts)))


def voice(seconds: float, f0: float, level: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Speech-like: a harmonic series at f0 with a 4 Hz syllable envelope and a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(0.6 ** k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(5))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t) ** 2
    noise = np.random.default_rng(seed).normal(0, 0.02, len(t))
    return level * (x * env / 2.0 + noise)


def write_wav(path: Path, *channels: np.ndarray, rate: int = RATE) -> Path:
    data = np.stack(channels, axis=1) if len(channels) > 1 else channels[0][:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(data, -32768, 32767).astype("<i2").tobytes())
    return path


def track(duration: float, segments: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Silence with (start, end, f0, level) stretches of voice."""
    x = np.zeros(int(duration * RATE))
    for i, (s, e, f0, level) in enumerate(segments):
        seg = voice(e - s, f0, level, seed=i)[: len(x) - int(s * RATE)]
        x[int(s * RATE): int(s * RATE) + len(seg)] = seg
    return x


# -- lexicon ---------------------------------------------------------------------------------------

def test_lexicon_polarity_negation_and_intensifiers() -> None:
    assert lexicon_score("hello my name is john".split()) == 0
    assert lexicon_score("thank you this is great".split()) > 0.6
    assert lexicon_score("this is terrible".split()) < -0.6
    assert lexicon_score("I am not happy".split()) < 0 < lexicon_score("I am happy".split())
    assert lexicon_score("not bad at all".split()) > 0 > lexicon_score("bad".split())
    assert valence_sum("never been so frustrated".split()) == pytest.approx(-0.5 + -2 * -0.75 * 1.3)
    assert valence_sum("very bad".split()) == pytest.approx(1.3 * valence_sum(["bad"]))
    assert valence_sum("not that I ever said I am happy".split()) == valence_sum(["happy"])   # beyond 3 words
    assert valence_sum(["Don't,", "LOVE", "it!"]) == pytest.approx(-0.75 * 3)
    assert -1 < lexicon_score(["terrible"] * 50) < -0.99


# -- prosody ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("f0", [85.0, 120.0, 180.0, 250.0, 340.0])
def test_pitch_by_autocorrelation(f0: float) -> None:
    p = measure(Pcm(voice(2.0, f0, 8000), RATE))
    assert p.pitch_hz == pytest.approx(f0, rel=0.02)
    assert p.voiced_s > 1.5


def test_noise_and_silence_are_unvoiced_and_energy_follows_level() -> None:
    noise = np.random.default_rng(1).normal(0, 2000, RATE * 2)
    assert (pitch_track(noise, RATE) > 0).mean() < 0.05
    assert measure(Pcm(np.zeros(RATE), RATE)).energy_db == 0 and measure(Pcm(np.zeros(RATE), RATE)).pitch_hz == 0
    quiet, loud = measure(Pcm(voice(2, 150, 2000), RATE)), measure(Pcm(voice(2, 150, 5000), RATE))
    assert loud.energy_db - quiet.energy_db == pytest.approx(20 * np.log10(2.5), abs=0.3)


def test_measure_within_intervals_only() -> None:
    x = np.concatenate([voice(2, 100, 6000), voice(2, 250, 6000)])
    assert measure(Pcm(x, RATE), [(0.0, 2.0)]).pitch_hz == pytest.approx(100, rel=0.02)
    assert measure(Pcm(x, RATE), [(2.0, 4.0)]).pitch_hz == pytest.approx(250, rel=0.02)
    assert measure(Pcm(x, RATE), [(9.0, 10.0)]).pitch_hz == 0          # beyond the file: nothing


def test_read_wav_errors_and_channels(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(BadAudio, match="bad.wav"):
        read_wav(bad)
    with pytest.raises(BadAudio):
        read_wav(tmp_path / "missing.wav")
    stereo = write_wav(tmp_path / "s.wav", voice(1, 200, 6000), voice(1, 110, 6000))
    assert measure(read_wav(stereo, 0)).pitch_hz == pytest.approx(200, rel=0.02)
    assert measure(read_wav(stereo, 1)).pitch_hz == pytest.approx(110, rel=0.02)


def test_prosody_on_espeak_speech(tmp_path: Path) -> None:
    def say(name: str, *opts: str) -> Path:
        path = tmp_path / f"{name}.wav"
        subprocess.run(["espeak-ng", *opts, "-w", str(path), "I would like to speak to someone about my bill"],
                       check=True, capture_output=True)
        return path

    calm, excited = read_wav(say("calm", "-p", "30", "-a", "60")), read_wav(say("excited", "-p", "85", "-a", "180"))
    c, e = measure(calm), measure(excited)
    assert 60 < c.pitch_hz < e.pitch_hz < 400 and e.pitch_hz > 1.15 * c.pitch_hz
    assert e.energy_db > c.energy_db + 6


# -- emotion over a call ---------------------------------------------------------------------------

QUARTERS = [(1.0, 8.0), (11.0, 18.0), (21.0, 28.0), (31.0, 38.0)]
TEXT = ["hello I am calling about my bill", "it shows a charge I don't know",      # 7 words a quarter
        "I called last week about it too", "I am unhappy with all of this"]


def _call() -> Transcript:
    utts = [utt("customer", s, e, text) for (s, e), text in zip(QUARTERS, TEXT, strict=True)]
    utts += [utt("agent", e + 0.5, e + 2.0, "okay I see") for s, e in QUARTERS]
    return Transcript("c1", 40.0, "pocketsphinx", utterances=tuple(sorted(utts, key=lambda u: u.start)))


def _channels(tmp_path: Path, agitated: bool) -> dict[Speaker, Path]:
    segs = [(s, e, 120.0, 3000.0) for s, e in QUARTERS[:3]]
    segs.append((*QUARTERS[3], 175.0, 7500.0) if agitated else (*QUARTERS[3], 120.0, 3000.0))
    agent = track(40.0, [(e + 0.5, e + 2.0, 105.0, 3000.0) for _, e in QUARTERS])
    return {"customer": write_wav(tmp_path / f"c{agitated}.wav", track(40.0, segs)),
            "agent": write_wav(tmp_path / "a.wav", agent)}


def test_a_rising_louder_last_quarter_ends_angry_and_a_calm_one_does_not(tmp_path: Path) -> None:
    t = _call()
    calm = {(r.speaker, r.quarter): r for r in emotion(t, _channels(tmp_path, False))}
    hot = {(r.speaker, r.quarter): r for r in emotion(t, _channels(tmp_path, True))}
    for q in (1, 2, 3, 4):
        assert calm[("customer", q)].pitch_hz == pytest.approx(120, rel=0.03)
        assert calm[("customer", q)].arousal == pytest.approx(0, abs=0.05)
        assert calm[("agent", q)].pitch_hz == pytest.approx(105, rel=0.03)
    c4, h4 = calm[("customer", 4)], hot[("customer", 4)]
    assert c4.lexicon == h4.lexicon < 0                                     # the same words: mildly negative
    assert h4.pitch_hz == pytest.approx(175, rel=0.03)
    assert h4.energy_db - c4.energy_db == pytest.approx(20 * np.log10(2.5), abs=0.5)
    assert h4.rate_wps == c4.rate_wps == pytest.approx(1.0)                 # 7 words in 7 s
    assert h4.arousal == pytest.approx(2 / 3, abs=0.01)                     # pitch and energy maxed, rate 0
    assert c4.score == pytest.approx(c4.lexicon, abs=0.01) and c4.score > ANGRY_SCORE
    assert h4.score < ANGRY_SCORE
    assert not ends_angry(list(calm.values()))
    assert ends_angry(list(hot.values()))
    assert hot[("agent", 4)].arousal == pytest.approx(0, abs=0.05)


def test_strong_words_end_angry_without_audio_and_happy_excitement_does_not(tmp_path: Path) -> None:
    words = [*TEXT[:3], "this is terrible and ridiculous I hate it"]
    utts = tuple(utt("customer", s, e, x) for (s, e), x in zip(QUARTERS, words, strict=True))
    angry = Transcript("c2", 40.0, "pocketsphinx", utterances=utts)
    rows = emotion(angry)                                                   # no channels: words only
    assert all(r.pitch_hz == 0 and r.energy_db == 0 for r in rows) and ends_angry(rows)
    happy_words = [*TEXT[:3], "great thank you so much that is perfect"]
    happy = Transcript("c3", 40.0, "pocketsphinx", utterances=tuple(
        utt("customer", s, e, x) for (s, e), x in zip(QUARTERS, happy_words, strict=True)))
    rows = emotion(happy, _channels(tmp_path, True))
    q4 = next(r for r in rows if r.speaker == "customer" and r.quarter == 4)
    assert q4.arousal > 0.5 and q4.score > 0.5 and not ends_angry(rows)


def test_a_customer_silent_at_the_end_is_judged_on_their_last_quarter() -> None:
    utts = (utt("customer", 1, 8, "fine thanks"), utt("customer", 21, 28, "this is terrible I hate this"),
            utt("agent", 31, 38, "goodbye then"))
    rows = emotion(Transcript("c4", 40.0, "pocketsphinx", utterances=utts))
    assert ends_angry(rows)                                           # quarter 3 is the customer's last
    early = (utt("customer", 1, 8, "this is terrible I hate this"), utt("agent", 21, 38, "goodbye then"))
    assert not ends_angry(emotion(Transcript("c5", 40.0, "pocketsphinx", utterances=early)))


def test_one_stereo_file_for_both_speakers_and_a_bad_file(tmp_path: Path) -> None:
    t = _call()
    cust = track(40.0, [(s, e, 200.0, 3000.0) for s, e in QUARTERS])
    agent = track(40.0, [(e + 0.5, e + 2.0, 110.0, 3000.0) for _, e in QUARTERS])
    stereo = write_wav(tmp_path / "mix.wav", cust, agent)
    rows = emotion(t, {"customer": stereo, "agent": stereo})
    assert {(r.speaker, round(r.pitch_hz / 10)) for r in rows} == {("customer", 20), ("agent", 11)}
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF")
    rows = emotion(t, {"customer": bad})
    assert all(r.pitch_hz == 0 for r in rows) and any(r.lexicon < 0 for r in rows)


def test_offsets_shift_a_late_agent_leg(tmp_path: Path) -> None:
    t = _call()
    # The agent's leg starts 10 s into the call: its file's 0 s is the call's 10 s.
    agent = track(30.0, [(e + 0.5 - 10, e + 2.0 - 10, 110.0, 3000.0) for _, e in QUARTERS[1:]])
    path = write_wav(tmp_path / "late.wav", agent)
    rows = {(r.speaker, r.quarter): r for r in emotion(t, {"agent": path}, offsets={"agent": 10.0})}
    assert rows[("agent", 1)].pitch_hz == 0                 # before the leg started
    assert [rows[("agent", q)].pitch_hz == pytest.approx(110, rel=0.03) for q in (2, 3, 4)] == [True] * 3

"""asr/vad.py: speech segments from real speech (espeak-ng through 8 kHz mu-law), silence and noise."""

from __future__ import annotations

import functools
import subprocess
from typing import Literal

import numpy as np
import pytest

from asr.exceptions import AsrConfigError
from asr.vad import Segment, VadConfig, frame_decisions, smooth, speech_segments

RATE = 8000


@functools.cache
def speech(text: str, rate: int = RATE) -> np.ndarray:
    """``text`` by espeak-ng at 150 wpm as ``rate`` Hz 16-bit PCM (through mu-law at 8 kHz)."""
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "--stdout", text],
                         capture_output=True, check=True).stdout
    enc = ["-e", "mu-law"] if rate == RATE else []
    out = subprocess.run(["sox", "-t", "wav", "-", "-r", str(rate), *enc, "-t", "wav", "-"],
                         input=wav, capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-e", "signed", "-b", "16", "-t", "raw", "-"],
                         input=out, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def noise(seconds: float, level: float = 20.0, rate: int = RATE, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(rate * seconds)).astype(np.int16)


def loud_span(x: np.ndarray, rate: int = RATE) -> tuple[float, float]:
    idx = np.flatnonzero(np.abs(x.astype(np.int32)) > 300)
    return idx[0] / rate, idx[-1] / rate


def two_turns(rate: int = RATE, level: float = 20.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Line noise, a sentence at 1.0 s, 2.5 s of line noise, another sentence; with where each is loud."""
    a, b = speech("Thank you for calling, how can I help?", rate), speech("I would like to pay my bill.", rate)
    parts = [noise(1.0, level, rate), a, noise(2.5, level, rate, seed=4), b, noise(1.0, level, rate, seed=5)]
    x = np.concatenate(parts)
    start_b = (len(parts[0]) + len(a) + len(parts[2])) / rate
    sa, ea = loud_span(a, rate)
    sb, eb = loud_span(b, rate)
    return x, [(1.0 + sa, 1.0 + ea), (start_b + sb, start_b + eb)]


@pytest.mark.parametrize("method", ["webrtc", "energy"])
def test_two_sentences_become_two_segments_around_the_speech(method: Literal["webrtc", "energy"]) -> None:
    x, truth = two_turns()
    segments = speech_segments(x, RATE, VadConfig(method=method))
    assert len(segments) == 2
    early = 0.0 if method == "webrtc" else 0.2                 # the energy detector loses a quiet final consonant
    for seg, (onset, offset) in zip(segments, truth, strict=True):
        assert seg.start <= onset <= seg.start + 0.3          # padded before the onset, not by much
        assert seg.end - 0.35 <= offset <= seg.end + early    # and after the last loud sample
    assert segments[0].end < segments[1].start                 # the 2.5 s gap separates them


def test_other_sample_rates_are_resampled_for_webrtcvad() -> None:
    x, truth = two_turns(rate=22050, level=3.0)        # (wideband white noise at 20 passes for speech)
    segments = speech_segments(x, 22050)
    assert len(segments) == 2
    assert segments[0].start <= truth[0][0] and truth[1][1] <= segments[1].end


def test_silence_and_steady_line_noise_have_no_speech() -> None:
    assert speech_segments(np.zeros(RATE * 3, np.int16), RATE) == []
    assert speech_segments(noise(3.0), RATE, VadConfig(method="energy")) == []
    assert speech_segments(np.zeros(0, np.int16), RATE) == []
    assert not frame_decisions(np.zeros(RATE * 2, np.int16), RATE).any()


def test_short_pauses_stay_inside_one_utterance() -> None:
    a = speech("Please enter your account number.")
    onset, offset = loud_span(a)
    a = a[int(onset * RATE):int(offset * RATE) + 1]             # without espeak's own leading/trailing silence
    x = np.concatenate((noise(0.5), a, noise(0.3, seed=8), a, noise(0.5, seed=9)))
    assert len(speech_segments(x, RATE)) == 1                  # 0.3 s < the 0.45 s hangover
    y = np.concatenate((noise(0.5), a, noise(1.0, seed=8), a, noise(0.5, seed=9)))
    assert len(speech_segments(y, RATE)) == 2


def test_long_speech_is_cut_into_bounded_segments_at_quiet_points() -> None:
    a = speech("This is a long monologue about my account and the billing problem I have had for months.")
    x = np.concatenate([a, noise(0.2)] * 4)
    limit = 4.0
    segments = speech_segments(x, RATE, VadConfig(max_segment_s=limit))
    assert len(segments) >= 3
    assert all(s.duration <= limit + 1e-6 for s in segments)
    assert all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))   # contiguous cuts


def test_smoothing_rules_on_crafted_decisions() -> None:
    cfg = VadConfig(frame_ms=30, start_ms=90, hangover_ms=300, ratio=0.75, min_speech_ms=150)
    d = np.zeros(100, bool)
    d[10:12] = True                      # a 60 ms click: below min_speech_ms
    d[30:45] = True
    d[48:60] = True                      # a 90 ms pause inside: one segment
    d[80:90] = True                      # after a 600 ms gap: another
    assert smooth(d, cfg) == [(30, 60), (80, 90)]
    assert smooth(np.zeros(0, bool), cfg) == []
    assert smooth(np.ones(20, bool), cfg) == [(0, 20)]


def test_segments_are_clipped_to_the_signal() -> None:
    a = speech("Hello")
    segments = speech_segments(a, RATE)                     # speech from the first to the last sample
    assert segments and segments[0].start == 0.0
    assert segments[-1].end <= len(a) / RATE
    assert isinstance(segments[0], Segment)


@pytest.mark.parametrize("bad", [dict(method="silero"), dict(aggressiveness=4), dict(frame_ms=25),
                                 dict(ratio=0.2), dict(hangover_ms=5), dict(max_segment_s=0.1)])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(AsrConfigError):
        VadConfig(**bad)

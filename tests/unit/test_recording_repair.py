"""recordings.repair: WAVs left by a killed recorder get their header sizes rewritten; the audio is never touched."""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import wave
from array import array
from pathlib import Path

import pytest

from recordings.exceptions import RecordingDamaged, RecordingError
from recordings.repair import is_intact, repair_wav


def sine(frames: int, rate: int = 8000, channels: int = 1, hz: float = 440.0) -> bytes:
    samples = array("h")
    for i in range(frames):
        value = int(12000 * math.sin(2 * math.pi * hz * i / rate))
        samples.extend([value] if channels == 1 else [value, -value])
    return samples.tobytes()


def write_wav(path: Path, audio: bytes, rate: int = 8000, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio)


def crash(path: Path, riff: int = 0, data: int = 0, data_size_at: int = 40) -> None:
    """What a kill -9 leaves: the header still holds the sizes written before the audio."""
    with path.open("r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", riff))
        f.seek(data_size_at)
        f.write(struct.pack("<I", data))


def read_back(path: Path) -> tuple[int, int, int, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getnframes(), w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def fmt_body(tag: int = 1, channels: int = 1, rate: int = 8000, bits: int = 16) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def riff(*chunks: bytes, size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def check_repaired(path: Path, result_frames: int, audio: bytes, rate: int = 8000, channels: int = 1) -> None:
    frames, got_rate, got_channels, got = read_back(path)
    assert (frames, got_rate, got_channels) == (result_frames, rate, channels)
    assert got == audio
    assert is_intact(path)


def test_zero_sizes_are_rewritten_from_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "call.in.wav"
    audio = sine(8000)
    write_wav(path, audio)
    crash(path)
    assert not is_intact(path)
    result = repair_wav(path)
    assert result.repaired
    assert result.frames == 8000 and result.seconds == 1.0
    assert result.note == "header rewritten: data 0 -> 16000 bytes, riff 0 -> 16036 bytes"
    assert result.bytes == path.stat().st_size == 44 + 16000
    assert result.sha256 == sha(path)
    assert result.path == path
    check_repaired(path, 8000, audio)


def test_stale_smaller_sizes_recover_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "stale.wav"
    audio = sine(4000)
    write_wav(path, audio)
    crash(path, riff=36 + 1000, data=1000)  # the last periodic header update said 500 frames
    result = repair_wav(path)
    assert result.repaired and result.frames == 4000
    assert result.note == "header rewritten: data 1000 -> 8000 bytes, riff 1036 -> 8036 bytes"
    check_repaired(path, 4000, audio)


def test_sizes_larger_than_the_file_are_cut_to_what_is_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "big.wav"
    audio = sine(800)
    write_wav(path, audio)
    crash(path, riff=0xFFFFFFFF, data=0xFFFFFFFF - 36)
    result = repair_wav(path)
    assert result.frames == 800
    check_repaired(path, 800, audio)


def test_partial_trailing_frame_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    audio = sine(1000)
    write_wav(path, audio)
    with path.open("ab") as f:
        f.write(b"\x7f")  # half a 16-bit sample: the process died mid-write
    crash(path)
    result = repair_wav(path)
    assert result.repaired and result.frames == 1000
    assert result.note == "header rewritten: data 0 -> 2000 bytes, riff 0 -> 2036 bytes; trailing 1 byte dropped"
    assert path.stat().st_size == 44 + 2000 == result.bytes
    assert result.sha256 == sha(path)
    check_repaired(path, 1000, audio)


def test_partial_frame_with_correct_sizes_only_truncates(tmp_path: Path) -> None:
    path = tmp_path / "tail.wav"
    audio = sine(100)
    write_wav(path, audio)
    with path.open("ab") as f:
        f.write(b"\x01")
    result = repair_wav(path)  # the data size is right; the one stray byte is not a chunk, so it is a crash tail
    assert result.note == "trailing 1 byte dropped"
    check_repaired(path, 100, audio)


def test_list_chunk_before_data_with_odd_size_padding(tmp_path: Path) -> None:
    path = tmp_path / "list.wav"
    audio = sine(1200)
    info = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00ccv1\x00")  # 17 bytes: odd, padded to 18
    path.write_bytes(riff(chunk(b"fmt ", fmt_body()), info, b"data" + struct.pack("<I", 0), size=0) + audio)
    assert not is_intact(path)
    result = repair_wav(path)
    data_offset = 12 + 24 + len(info) + 8
    assert result.frames == 1200
    assert result.note == f"header rewritten: data 0 -> 2400 bytes, riff 0 -> {data_offset + 2400 - 8} bytes"
    assert path.read_bytes()[data_offset:] == audio
    check_repaired(path, 1200, audio)


def test_16khz_stereo_with_partial_frame(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    audio = sine(16000, rate=16000, channels=2)
    write_wav(path, audio, rate=16000, channels=2)
    with path.open("ab") as f:
        f.write(b"\x01\x02\x03")  # three of a frame's four bytes
    crash(path)
    result = repair_wav(path)
    assert result.frames == 16000 and result.seconds == 1.0
    assert result.note.endswith("; trailing 3 bytes dropped")
    check_repaired(path, 16000, audio, rate=16000, channels=2)


def test_fmt_chunk_of_18_bytes(tmp_path: Path) -> None:
    path = tmp_path / "fmt18.wav"
    audio = sine(500)
    path.write_bytes(riff(chunk(b"fmt ", fmt_body() + b"\x00\x00"), chunk(b"data", b""), size=0) + audio)
    result = repair_wav(path)
    assert result.frames == 500
    check_repaired(path, 500, audio)


def test_extensible_pcm_is_repairable(tmp_path: Path) -> None:
    path = tmp_path / "ext.wav"
    audio = sine(300)
    pcm_guid = bytes.fromhex("0100000000001000800000aa00389b71")
    ext = fmt_body(tag=0xFFFE) + struct.pack("<HHI", 22, 16, 0x4) + pcm_guid
    path.write_bytes(riff(chunk(b"fmt ", ext), chunk(b"data", b""), size=0) + audio)
    result = repair_wav(path)
    assert result.repaired and result.frames == 300
    raw = path.read_bytes()  # Python 3.11's wave cannot read WAVE_FORMAT_EXTENSIBLE; check the header directly
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    assert raw[60:64] == b"data" and struct.unpack_from("<I", raw, 64)[0] == 600
    assert raw[68:] == audio
    assert is_intact(path)


def test_header_only_file_becomes_a_valid_empty_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    write_wav(path, b"")
    crash(path, riff=0)
    assert path.stat().st_size == 44
    result = repair_wav(path)
    assert result.repaired and result.frames == 0 and result.seconds == 0.0
    assert result.note == "header rewritten: riff 0 -> 36 bytes"
    check_repaired(path, 0, b"")


def test_valid_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "good.wav"
    audio = sine(2000)
    write_wav(path, audio)
    before, stat = path.read_bytes(), path.stat()
    assert is_intact(path)
    result = repair_wav(path)
    assert not result.repaired and result.note == "ok"
    assert result.frames == 2000 and result.seconds == 0.25
    assert result.sha256 == hashlib.sha256(before).hexdigest() == sha(path)
    assert path.read_bytes() == before and result.bytes == len(before)
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


def test_valid_chunk_after_data_is_not_mistaken_for_audio(tmp_path: Path) -> None:
    path = tmp_path / "trailer.wav"
    audio = sine(700)
    path.write_bytes(riff(chunk(b"fmt ", fmt_body()), chunk(b"data", audio), chunk(b"LIST", b"INFOabc")))
    before = path.read_bytes()
    assert is_intact(path)
    result = repair_wav(path)
    assert result.note == "ok" and result.frames == 700
    assert path.read_bytes() == before


def _no_data_chunk() -> bytes:
    return riff(chunk(b"fmt ", fmt_body()), chunk(b"junk", b"12345678"))


DAMAGED = {
    "empty": (b"", "shorter than a WAV header"),
    "garbage": (bytes(range(256)) * 4, "not a RIFF/WAVE file"),
    "rifx": (b"RIFX" + riff(chunk(b"fmt ", fmt_body()), chunk(b"data", b"\0" * 8))[4:], "not a RIFF/WAVE file"),
    "float": (riff(chunk(b"fmt ", fmt_body(tag=3, bits=32)), chunk(b"data", b"\0" * 8)), "not PCM"),
    "ext-float": (
        riff(
            chunk(b"fmt ", fmt_body(tag=0xFFFE) + struct.pack("<HHI", 22, 16, 4)
                  + bytes.fromhex("0300000000001000800000aa00389b71")),
            chunk(b"data", b"\0" * 8),
        ),
        "not PCM",
    ),
    "fmt-20": (riff(chunk(b"fmt ", fmt_body() + b"\0" * 4), chunk(b"data", b"\0" * 8)), "fmt chunk of 20 bytes"),
    "no-fmt": (riff(chunk(b"fmx ", fmt_body()), chunk(b"data", b"\0" * 8)), "no fmt chunk"),
    "no-data": (_no_data_chunk(), "no data chunk"),
    "zero-channels": (riff(chunk(b"fmt ", fmt_body(channels=0)), chunk(b"data", b"\0" * 8)), "channels=0"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_unrepairable_files_raise_and_stay_unchanged(tmp_path: Path, name: str) -> None:
    content, problem = DAMAGED[name]
    path = tmp_path / f"{name}.wav"
    path.write_bytes(content)
    with pytest.raises(RecordingDamaged, match=re.escape(problem)) as err:
        repair_wav(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert isinstance(err.value, RecordingError)
    assert path.read_bytes() == content
    assert not is_intact(path)


def test_is_intact_is_false_for_a_missing_file(tmp_path: Path) -> None:
    assert not is_intact(tmp_path / "nope.wav")
    with pytest.raises(FileNotFoundError):
        repair_wav(tmp_path / "nope.wav")


def test_repair_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "twice.wav"
    write_wav(path, sine(100))
    crash(path)
    first = repair_wav(path)
    second = repair_wav(path)
    assert first.repaired and not second.repaired
    assert second.sha256 == first.sha256 and second.frames == first.frames == 100
    assert os.path.getsize(path) == first.bytes

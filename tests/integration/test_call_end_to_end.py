"""A real SIP call from the pjsua2 test phone: the prompt is heard, the caller is recorded, the row is complete."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.audio import active_seconds, dominant_frequency, follows, tone
from tests.support.server import SHORT_FLOW, ServerProcess, run_phone
from voice.audio import read_wav, write_wav

WELCOME = "Welcome to the call center test. Your call is being recorded. Thank you for calling, goodbye."


@pytest.fixture
def welcome_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """One prompt of about six seconds (long enough to compare its loudness over time), then hang up."""
    srv = ServerProcess(tmp_path, SHORT_FLOW.replace("Hello, this is a test.", WELCOME)).start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log(), srv.log()[-5000:]


def test_caller_hears_prompt_and_is_recorded(welcome_server: ServerProcess, tmp_path: Path) -> None:
    server = welcome_server
    heard = tmp_path / "heard.wav"
    sent = tmp_path / "tone.wav"
    write_wav(sent, tone(440, 2.0))

    report = run_phone(server.uri, "--record", str(heard), "--play", str(sent))

    # The server answered, spoke, and hung up at the end of the prompt (a 200 BYE from its side).
    assert report["connected"] and report["media"], report
    assert report["codec"] == "PCMU"
    assert report["status_code"] == 200
    prompt = read_wav(server.prompt(WELCOME))
    talk = report["ended_at"] - report["answered_at"]
    assert prompt.duration - 0.5 < talk < prompt.duration + 2.0, (talk, prompt.duration)

    # The prompt's audio really arrived: speech energy for most of the call, not silence.
    audio = read_wav(heard)
    assert audio.rate == 8000
    assert abs(audio.duration - prompt.duration) < 1.5
    speech = active_seconds(audio)
    assert speech > 0.6 * active_seconds(prompt), (speech, active_seconds(prompt))
    # ...and it is the prompt: its loudness over time follows the rendered prompt's.
    assert follows(audio, prompt) > 0.8
    assert follows(tone(440, prompt.duration), prompt) < 0.3  # the check can fail

    # The call row is complete and the recording holds the caller's tone.
    token = server.token("supervisor")
    calls = server.calls(token)
    assert len(calls) == 1
    call = calls[0]
    assert call["sip_call_id"] == report["sip_call_id"]
    # Who called whom, parsed from the INVITE: the caller's number and name, the dialled number.
    assert call["caller"] == "phone" and call["callee"] == "ivr", call
    assert "phone@127.0.0.1" in call["caller_uri"]
    assert call["started_at"] <= call["answered_at"] <= call["ended_at"]
    assert call["disposition"] == "completed"
    assert call["codec"] == "PCMU"
    assert call["recording_url"] == f"/api/calls/{call['id']}/recording"
    rec = server.get(call["recording_url"], token)
    assert rec.status_code == 200 and rec.headers["content-type"] == "audio/wav"
    assert hashlib.sha256(rec.content).hexdigest() == call["recording_sha256"]
    assert len(rec.content) == call["recording_bytes"]
    recorded = read_wav(server.data_dir / call["recording_path"])
    assert abs(recorded.duration - call["recording_seconds"]) < 0.01
    assert active_seconds(recorded) > 0.8 * call["recording_seconds"] - 0.5
    assert abs(dominant_frequency(recorded) - 440) < 10

    # The CLI shows the same call.
    out = server.cli("calls", "list")
    assert out.returncode == 0 and call["id"] in out.stdout


def test_caller_hangs_up_first_over_tcp(server: ServerProcess, tmp_path: Path) -> None:
    report = run_phone(server.uri, "--transport", "tcp", "--hangup-after", "1.0",
                       "--record", str(tmp_path / "h.wav"))
    assert report["connected"] and report.get("local_hangup")
    token = server.token("qa")
    call = server.wait_for(lambda: [c for c in server.calls(token) if c["ended_at"]])[0]
    assert call["disposition"] == "caller_hangup"
    assert 0.5 < call["recording_seconds"] < 3.0
    assert read_wav(server.data_dir / call["recording_path"]).duration == call["recording_seconds"]


def test_call_with_no_acceptable_codec_gets_488(server: ServerProcess) -> None:
    # The phone offers only G.722, the server only G.711.
    report = run_phone(server.uri, "--codec", "G722")
    assert report["status_code"] == 488, report
    assert not report["connected"]
    # ...and the server still answers the next call.
    assert run_phone(server.uri, "--hangup-after", "0.5")["connected"]


def test_healthz_and_openapi_need_no_token(server: ServerProcess) -> None:
    assert httpx.get(f"{server.http}/healthz").json()["status"] == "ok"
    schema = httpx.get(f"{server.http}/openapi.json").json()
    assert "/api/calls" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_call_goes_on_when_recording_cannot_start(tmp_path: Path) -> None:
    # A file where the recordings folder should be: every recording fails to start, as on a full disk.
    server = ServerProcess(tmp_path, SHORT_FLOW)
    (server.data_dir / "recordings").write_text("in the way")
    server.start()
    try:
        report = run_phone(server.uri, "--record", str(tmp_path / "heard.wav"))
        assert report["connected"] and report["status_code"] == 200
        assert active_seconds(read_wav(tmp_path / "heard.wav")) > 0.5  # the prompt was still played
        [call] = server.calls(server.token("admin"))
        assert call["disposition"] == "completed" and call["recording_path"] is None
        assert call["recording_url"] is None
        assert "recording failed to start" in server.log()
    finally:
        assert server.stop() == 0

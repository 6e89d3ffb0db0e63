"""From a real call to the QA reviewer: a caller talks to an agent through the ACD; after the call the
server mixes the stereo file, transcribes each leg offline (pocketsphinx, real decoding), runs the
keyword rules and the scorecards, and the QA API finds the call by what was said.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest

from tests.integration.test_acd_calls import QUEUE_FLOW, AgentPhone, Caller, cli_ok
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration

# A human voice (Debian's asterisk-core-sounds-en-wav): "Welcome to the directory", "Thank you for your patience".
SOUNDS = Path("/usr/share/asterisk/sounds/en")
CALLER_SAYS = "I would like a refund please. I want to cancel my account"


def speech(tmp: Path, name: str, text: str) -> Path:
    raw, out = tmp / f"{name}-raw.wav", tmp / f"{name}.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.5", "1.5"],
                   check=True, capture_output=True)
    return out


def test_a_bridged_call_is_mixed_transcribed_scored_and_found(tmp_path: Path) -> None:
    caller_wav = speech(tmp_path, "caller", CALLER_SAYS)
    agent_wav = tmp_path / "agent.wav"
    subprocess.run(["sox", str(SOUNDS / "dir-welcome.wav"), str(SOUNDS / "queue-thankyou.wav"), str(agent_wav),
                    "pad", "0.5", "1.5"], check=True, capture_output=True)
    root = Path(__file__).resolve().parents[2] / "config"
    extra = (f'[transcription]\nworkers = 1\nkeywords = "{root / "keywords.yaml"}"\n'
             f'scorecards = "{root / "scorecards.yaml"}"\n')
    server = ServerProcess(tmp_path, QUEUE_FLOW, config_extra=extra)
    agent = AgentPhone(tmp_path, "alice", "--answer-after", "0.3", "--hangup-after", "12", "--play", str(agent_wav))
    try:
        cli_ok(server, "agent", "add", "alice", "--uri", agent.uri, "--skills", "support:1")
        cli_ok(server, "agent", "login", "alice")
        cli_ok(server, "queue", "add", "support", "--announce-every", "0")
        server.start()
        report = Caller(server, tmp_path, "+15550900", "--play", str(caller_wav)).report()
        assert report["connected"], report
        call_id = server.wait_for(lambda: server.query("SELECT id FROM calls WHERE agent = 'alice'"))[0][0]
        server.wait_for(lambda: server.query(
            f"SELECT 1 FROM transcription_jobs WHERE call_id = '{call_id}' AND state = 'done'"), timeout=120)
        token = server.token("qa")
        legs = dict(server.query(f"SELECT leg, path FROM recordings WHERE call_id = '{call_id}'"))
        review = server.get(f"/api/qa/calls/{call_id}", token).json()
        words = [w for u in server.get(f"/api/qa/calls/{call_id}", token).json()["utterances"]
                 for w in u["text"].split() if len(w) > 3 and w.isalpha()]
        found = server.get(f"/api/qa/search?q={words[0]}", token).json() if words else {"calls": []}
        hits = server.query(f"SELECT rule, speaker, source FROM keyword_hits WHERE call_id = '{call_id}'")
        scores = server.query(f"SELECT item, auto_score FROM qa_scores WHERE call_id = '{call_id}'")
        vtt = server.get(f"/api/qa/calls/{call_id}/transcript.vtt", token)
    finally:
        agent.stop()
        server.stop()
    # Both legs, and the stereo mix with the caller on the left and the agent on the right.
    assert {"caller", "agent", "stereo"} <= set(legs), legs
    with wave.open(str(server.data_dir / legs["stereo"])) as w:
        assert w.getnchannels() == 2 and w.getnframes() > 8000 * 5
    # Each channel transcribed on its own: utterances of both speakers, in time order, with word times.
    utterances = review["utterances"]
    speakers = {u["speaker"] for u in utterances}
    assert speakers == {"customer", "agent"}, utterances
    starts = [u["start_s"] for u in utterances]
    assert starts == sorted(starts)
    # The agent's greeting and closing were found (in the transcript, or by spotting them in the agent's audio),
    # and no forbidden word was (none was said).
    rules = {(rule, speaker) for rule, speaker, _ in hits}
    assert {("greeting", "agent"), ("closing", "agent")} <= rules, hits
    assert not any(rule == "forbidden_words" for rule, _ in rules), hits
    assert scores, "no scorecard was filled"
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    # Full-text search finds the call by a word its transcript holds.
    assert words and call_id in [c["id"] for c in found["calls"]], (words[:5], found)

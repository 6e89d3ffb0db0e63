"""The ACD on real calls: a real server, pjsua2 agent softphones and callers, each in its own process.

Agents and queues are configured with the CLI (as an operator would), callers are test phones
(tests/support/phone.py) calling the server's flow, whose queue node hands them to the ACD; the
ACD rings the agents' softphones (tests/support/agent_phone.py), bridges, records both legs.
Tones tell who hears whom: each caller sends 1000 Hz, each agent 600 Hz.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.audio import tone
from tests.support.ports import free_port
from tests.support.server import ROOT, ServerProcess, phone_command
from voice.audio import read_wav, write_wav

pytestmark = pytest.mark.integration

AGENT_PHONE = ROOT / "tests" / "support" / "agent_phone.py"
CALLER_HZ, AGENT_HZ, RATE = 1000.0, 600.0, 8000

QUEUE_FLOW = """
name: acd_test
start: q
nodes:
  q:
    type: queue
    queue: support
    no_agents: nobody
    next: after
  nobody:
    type: hangup
    prompt: "Nobody is here."
  after:
    type: play
    say: "Thank you, goodbye."
    next: bye
  bye:
    type: hangup
"""


class AgentPhone:
    """An agent softphone process; its JSON lines are read from a file."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.port = free_port()
        self.name = name
        self.out = tmp / f"{name}.jsonl"
        self.record_dir = tmp / f"{name}-heard"
        self.record_dir.mkdir()
        with self.out.open("wb") as out, (tmp / f"{name}.log").open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(AGENT_PHONE), "--port", str(self.port), "--record-dir", str(self.record_dir),
                 "--timeout", "120", *args], stdout=out, stderr=err, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait(lambda lines: any(x["type"] == "ready" for x in lines), 20)

    @property
    def uri(self) -> str:
        return f"sip:{self.name}@127.0.0.1:{self.port}"

    def lines(self) -> list[dict[str, Any]]:
        text = self.out.read_text() if self.out.exists() else ""
        return [json.loads(x) for x in text.splitlines() if x.strip()]

    def calls(self) -> list[dict[str, Any]]:
        return [x for x in self.lines() if x["type"] == "call"]

    def _wait(self, pred: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.lines()):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"agent phone {self.name} exited: {self.proc.returncode}")
            time.sleep(0.1)
        raise AssertionError(f"agent phone {self.name}: condition not met; lines: {self.lines()}")

    def wait_calls(self, n: int, timeout: float = 40) -> list[dict[str, Any]]:
        self._wait(lambda lines: sum(x["type"] == "call" for x in lines) >= n, timeout)
        return self.calls()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Caller:
    def __init__(self, server: ServerProcess, tmp: Path, number: str, *args: str) -> None:
        self.number = number
        self.heard = tmp / f"caller-{number}.wav"
        self.proc = subprocess.Popen(
            phone_command(server.uri, "--from", f"<sip:{number}@127.0.0.1>", "--record", str(self.heard),
                          "--timeout", "90", *args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def report(self, timeout: float = 90) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err[-2000:]
        return dict(json.loads(out.strip().splitlines()[-1]))


def power(pcm: np.ndarray, freq: float) -> float:
    x = pcm.astype(np.float64)
    if len(x) == 0:
        return 0.0
    n = np.arange(len(x))
    return float(abs(np.dot(x, np.exp(-2j * np.pi * freq * n / RATE))) ** 2 / len(x))


def hears(path: Path, wanted: float, other: float, last_s: float = 1.5) -> None:
    """The last seconds of a recording carry ``wanted`` and (almost) none of ``other``."""
    pcm = read_wav(path).samples[-int(last_s * RATE):]
    mine, theirs = power(pcm, wanted), power(pcm, other)
    assert mine > 1e8, f"{path.name}: no {wanted:g} Hz ({mine:.3g})"
    assert mine > 30 * max(theirs, 1.0), f"{path.name}: {wanted:g} Hz {mine:.3g} vs {other:g} Hz {theirs:.3g}"


def dominant(path: Path) -> float:
    pcm = read_wav(path).samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / RATE)[int(np.argmax(spectrum[1:])) + 1])


@pytest.fixture
def tones(tmp_path: Path) -> tuple[Path, Path]:
    caller, agent = tmp_path / "caller-tone.wav", tmp_path / "agent-tone.wav"
    write_wav(caller, tone(CALLER_HZ, 1.0))
    write_wav(agent, tone(AGENT_HZ, 1.0))
    return caller, agent


def cli_ok(server: ServerProcess, *args: str) -> str:
    out = server.cli(*args)
    assert out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
    return out.stdout


def events(server: ServerProcess, kind: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    rows = server.query(f"SELECT call_id, queue, agent, data FROM events WHERE event = '{kind}' ORDER BY id")
    return [(c, q, a, json.loads(d)) for c, q, a, d in rows]


def caller_of(server: ServerProcess) -> dict[str, str]:
    return {cid: caller for cid, caller in server.query("SELECT id, caller FROM calls")}


def test_three_agents_five_callers_in_order_and_both_directions_heard(tmp_path: Path, tones: tuple[Path, Path]) -> None:
    caller_tone, agent_tone = tones
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    agents = [AgentPhone(tmp_path, f"a{i}", "--answer-after", "0.5", "--hangup-after", "3", "--play", str(agent_tone))
              for i in (1, 2, 3)]
    try:
        for i, a in enumerate(agents, 1):
            cli_ok(server, "agent", "add", a.name, "--uri", a.uri, "--skills", "support:3", "--wrap-up", "1",
                   "--order", str(i))
            cli_ok(server, "agent", "login", a.name)
        cli_ok(server, "queue", "add", "support", "--skills", "support:1", "--strategy", "linear",
               "--ring-timeout", "10", "--announce-every", "0")
        server.start()
        callers = []
        for i in range(5):
            callers.append(Caller(server, tmp_path, f"+1555000{i}", "--play", str(caller_tone)))
            time.sleep(0.6)
        reports = [c.report() for c in callers]
        for a in agents:
            a.wait_calls(1)
    finally:
        for a in agents:
            a.stop()
        server.stop()
    assert all(r["connected"] and r["media"] for r in reports), reports
    # Every caller reached an agent, in the order they called.
    connects = events(server, "CONNECT")
    numbers = caller_of(server)
    assert [numbers[c] for c, *_ in connects] == [f"+1555000{i}" for i in range(5)], connects
    # Linear: the first three go to a1, a2, a3; the two waiting ones to the first agents free again.
    assert [a for _, _, a, _ in connects[:3]] == ["a1", "a2", "a3"]
    assert {a for _, _, a, _ in connects[3:]} <= {"a1", "a2", "a3"}
    assert len(events(server, "ENTERQUEUE")) == 5
    assert len(events(server, "COMPLETEAGENT")) == 5  # the agents hung up
    # Each side heard the other: the caller the agent's 600 Hz, the agent the caller's 1000 Hz.
    for c in callers:
        hears(c.heard, AGENT_HZ, CALLER_HZ)
    for a in agents:
        for call in a.calls():
            hears(Path(call["recording"]), CALLER_HZ, AGENT_HZ)
    # Each leg recorded separately on the server: the caller's leg holds the caller, the agent's the agent.
    rows = server.query("SELECT recording_path, agent_recording_path, agent, agent_recording_sha256 FROM calls")
    assert len(rows) == 5
    for caller_leg, agent_leg, agent, sha in rows:
        assert agent in ("a1", "a2", "a3") and agent_leg and sha, rows
        assert abs(dominant(server.data_dir / caller_leg) - CALLER_HZ) < 15
        assert abs(dominant(server.data_dir / agent_leg) - AGENT_HZ) < 15


def test_no_answer_moves_on_and_repeated_no_answers_put_the_agent_on_break(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    sleepy = AgentPhone(tmp_path, "sleepy", "--no-answer")
    awake = AgentPhone(tmp_path, "awake", "--answer-after", "0.3", "--hangup-after", "1")
    try:
        cli_ok(server, "agent", "add", "sleepy", "--uri", sleepy.uri, "--skills", "support:3", "--order", "1",
               "--wrap-up", "0")
        cli_ok(server, "agent", "add", "awake", "--uri", awake.uri, "--skills", "support:3", "--order", "2",
               "--wrap-up", "0")
        for name in ("sleepy", "awake"):
            cli_ok(server, "agent", "login", name)
        cli_ok(server, "queue", "add", "support", "--strategy", "linear", "--ring-timeout", "2",
               "--announce-every", "0", "--set", "max_no_answer=2")
        server.start()
        token = server.token("supervisor")
        for i in range(2):
            report = Caller(server, tmp_path, f"+1555010{i}").report()
            assert report["connected"], report
        status = server.get("/api/agents/sleepy/status", token).json()
        sleepy_calls = sleepy.wait_calls(2)
    finally:
        sleepy.stop()
        awake.stop()
        server.stop()
    no_answers = events(server, "RINGNOANSWER")
    assert [a for _, _, a, _ in no_answers] == ["sleepy", "sleepy"], no_answers
    assert all(d["reason"] == "timeout" for *_, d in no_answers)
    assert [a for _, _, a, _ in events(server, "CONNECT")] == ["awake", "awake"]
    # The ringing stopped when the offer timed out (a CANCEL reached the phone).
    assert all(c["canceled"] for c in sleepy_calls), sleepy_calls
    assert status["state"] == "break" and status["reason"] == "no-answer", status
    pauses = events(server, "PAUSE")
    assert pauses and pauses[-1][2] == "sleepy" and pauses[-1][3].get("auto") is True


def test_caller_hanging_up_stops_the_ringing_at_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    agent = AgentPhone(tmp_path, "slow", "--no-answer")
    try:
        cli_ok(server, "agent", "add", "slow", "--uri", agent.uri, "--skills", "support:1")
        cli_ok(server, "agent", "login", "slow")
        cli_ok(server, "queue", "add", "support", "--ring-timeout", "30", "--announce-every", "0")
        server.start()
        report = Caller(server, tmp_path, "+15550200", "--hangup-after", "3").report()
        calls = agent.wait_calls(1, timeout=10)
    finally:
        agent.stop()
        server.stop()
    assert report["connected"], report
    assert calls[0]["canceled"] and calls[0]["answered_at"] is None
    # The CANCEL came with the caller's BYE: the phone rang about as long as the caller stayed (3 s).
    assert calls[0]["ended_at"] - calls[0]["invite_at"] < 4.5, calls
    abandons = events(server, "ABANDON")
    assert len(abandons) == 1 and abandons[0][3]["ringing"] is True
    assert events(server, "RINGCANCELED") or events(server, "RINGNOANSWER")


def test_max_wait_overflows_into_another_queue(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    backup = AgentPhone(tmp_path, "backup", "--answer-after", "0.3", "--hangup-after", "1")
    try:
        # The support agent is logged in but on a break: callers wait, then overflow after 3 s.
        cli_ok(server, "agent", "add", "busy", "--uri", "sip:busy@127.0.0.1:9", "--skills", "support:3")
        cli_ok(server, "agent", "login", "busy")
        cli_ok(server, "agent", "pause", "busy", "--reason", "lunch")
        cli_ok(server, "agent", "add", "backup", "--uri", backup.uri, "--skills", "backup:1")
        cli_ok(server, "agent", "login", "backup")
        cli_ok(server, "queue", "add", "backup", "--skills", "backup:1", "--announce-every", "0")
        cli_ok(server, "queue", "add", "support", "--skills", "support:1", "--max-wait", "3",
               "--overflow", "queue:backup", "--announce-every", "0")
        server.start()
        report = Caller(server, tmp_path, "+15550300").report()
        backup.wait_calls(1)
    finally:
        backup.stop()
        server.stop()
    assert report["connected"], report
    timeouts = events(server, "EXITWITHTIMEOUT")
    assert len(timeouts) == 1 and timeouts[0][1] == "support" and timeouts[0][3]["waittime"] >= 2.9
    connects = events(server, "CONNECT")
    assert len(connects) == 1 and connects[0][1] == "backup" and connects[0][2] == "backup"


def test_callback_keeps_its_place_across_a_restart(tmp_path: Path) -> None:
    customer = AgentPhone(tmp_path, "customer", "--answer-after", "0.5", "--hangup-after", "2")
    agent = AgentPhone(tmp_path, "agent1", "--answer-after", "0.3")
    trunk = (f'[trunk]\nuri = "sip:{{number}}@127.0.0.1:{customer.port}"\nallow = ["+1555*"]\n'
             '[acd]\ncallback_retry_s = 5\n')
    server = ServerProcess(tmp_path, QUEUE_FLOW, config_extra=trunk)
    try:
        cli_ok(server, "agent", "add", "agent1", "--uri", agent.uri, "--skills", "support:1")
        cli_ok(server, "agent", "login", "agent1")
        cli_ok(server, "agent", "pause", "agent1", "--reason", "meeting")
        cli_ok(server, "queue", "add", "support", "--announce-every", "0")
        server.start()
        # The caller waits (the only agent is on a break), presses 1, hears the goodbye, hangs up.
        report = Caller(server, tmp_path, "+15550400", "--dtmf", "1@2.0").report()
        assert report["connected"], report
        rows = server.wait_for(lambda: server.query("SELECT call_id, number, state, entered_at FROM callbacks"))
        assert rows[0][1] == "+15550400" and rows[0][2] == "waiting"
        entered = rows[0][3]
        server.stop()
        server.start()  # the request survives the restart; the agent's break too
        token = server.token("admin")
        r = httpx.post(f"{server.http}/api/agents/agent1/state", json={"action": "resume"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        customer_calls = customer.wait_calls(1, timeout=30)
        agent_calls = agent.wait_calls(1, timeout=30)
        state = server.wait_for(lambda: (s := server.query("SELECT state, entered_at FROM callbacks")[0])[0] == "done"
                                and s)
    finally:
        customer.stop()
        agent.stop()
        server.stop()
    assert state[1] == entered  # the place in line it kept
    assert customer_calls[0]["answered_at"] is not None and agent_calls[0]["answered_at"] is not None
    assert customer_calls[0]["from"]  # the trunk call came from the server
    assert len(events(server, "CALLBACKREQ")) == 1
    assert len(events(server, "CALLBACKANSWER")) == 1
    assert [d.get("callback") for *_, d in events(server, "CONNECT")] == [True]
    ivr = server.query("SELECT data FROM events WHERE event = 'IVR_QUEUE'")
    assert [json.loads(d)["outcome"] for (d,) in ivr] == ["called_back"]


def test_waiting_callers_hear_music_and_their_position(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    try:
        cli_ok(server, "agent", "add", "away", "--uri", "sip:away@127.0.0.1:9", "--skills", "support:1")
        cli_ok(server, "agent", "login", "away")
        cli_ok(server, "agent", "pause", "away", "--reason", "training")
        cli_ok(server, "queue", "add", "support", "--announce-every", "4")
        server.start()
        first = Caller(server, tmp_path, "+15550500", "--hangup-after", "11")
        time.sleep(1.0)
        second = Caller(server, tmp_path, "+15550501", "--hangup-after", "9")
        first.report()
        second.report()
    finally:
        server.stop()
    numbers = caller_of(server)
    said = [(numbers[c], d["position"], d["text"]) for c, _, _, d in events(server, "ANNOUNCE")]
    assert ("+15550500", 1, "You are next in line. Your estimated wait is less than a minute.") in said or any(
        n == "+15550500" and p == 1 and t.startswith("You are next in line.") for n, p, t in said), said
    assert any(n == "+15550501" and p == 2 and t.startswith("You are number 2 in line.") for n, p, t in said), said
    # No callback is offered without a trunk.
    assert not any("press 1" in t for _, _, t in said)
    # Between the announcements the callers heard music: most of the recording is sound, and
    # after the first seconds (set-up, a track's quiet intro) no stretch of silence is long, so
    # the music came back after every announcement. (Tracks have quiet bars: windows at a mean
    # level of 30 of 32767 are far above the server's digital silence but below some music.)
    audio = read_wav(first.heard)
    pcm = audio.samples[: len(audio.samples) // 800 * 800].astype(np.int32)
    level = np.abs(pcm).reshape(-1, 800).mean(axis=1)  # 100 ms windows
    sound = level > 30
    profile = "".join("#" if s else "." for s in sound)
    assert sound.mean() > 0.6, profile
    longest_silence = max((len(run) for run in profile[20:].split("#")), default=0)
    assert longest_silence <= 20, profile
    assert len(events(server, "ABANDON")) == 2


def test_caller_hanging_up_first_keeps_both_legs_recorded(tmp_path: Path, tones: tuple[Path, Path]) -> None:
    caller_tone, agent_tone = tones
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    agent = AgentPhone(tmp_path, "carol", "--answer-after", "0.3", "--play", str(agent_tone))
    try:
        cli_ok(server, "agent", "add", "carol", "--uri", agent.uri, "--skills", "support:1")
        cli_ok(server, "agent", "login", "carol")
        cli_ok(server, "queue", "add", "support", "--announce-every", "0")
        server.start()
        caller = Caller(server, tmp_path, "+15550600", "--play", str(caller_tone), "--hangup-after", "5")
        # While they talk: one caller for the flows, two SIP calls for the engine (the caller, the agent's leg)
        health = server.wait_for(lambda: (h := server.get("/healthz").json())["sip_calls"] == 2 and h)
        report = caller.report()
        calls = agent.wait_calls(1)
        row = server.wait_for(lambda: server.query(
            "SELECT agent_recording_path, agent_recording_sha256, agent_recording_seconds, disposition FROM calls "
            "WHERE agent = 'carol' AND agent_recording_sha256 IS NOT NULL"))[0]
        legs = server.wait_for(lambda: dict(server.query("SELECT leg, seconds FROM recordings")).get("agent")
                               and dict(server.query("SELECT leg, seconds FROM recordings")))
    finally:
        agent.stop()
        server.stop()
    assert report["connected"] and calls[0]["answered_at"] is not None
    assert health == {"status": "ok", "active_calls": 1, "sip_calls": 2, "max_calls": 512}, health
    assert row[3] == "caller_hangup" and row[2] > 1.0, row
    assert abs(dominant(server.data_dir / row[0]) - AGENT_HZ) < 15
    assert {"caller", "agent", "stereo"} <= set(legs), legs
    assert len(events(server, "COMPLETECALLER")) == 1


def test_max_wait_overflows_to_a_mailbox(tmp_path: Path, tones: tuple[Path, Path]) -> None:
    caller_tone, _ = tones
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    try:
        cli_ok(server, "agent", "add", "away", "--uri", "sip:away@127.0.0.1:9", "--skills", "support:1")
        cli_ok(server, "agent", "login", "away")
        cli_ok(server, "agent", "pause", "away", "--reason", "meeting")
        cli_ok(server, "queue", "add", "support", "--max-wait", "2", "--overflow", "voicemail:support",
               "--announce-every", "0")
        server.start()
        report = Caller(server, tmp_path, "+15550950", "--play", str(caller_tone), "--dtmf", "#@16").report()
        rows = server.wait_for(lambda: server.query("SELECT mailbox, seconds, caller_number, path FROM voicemails"))
        disposition = server.wait_for(lambda: server.query("SELECT disposition FROM calls WHERE ended_at IS NOT NULL"))
    finally:
        server.stop()
    assert report["connected"], report
    mailbox, seconds, number, path = rows[0]
    assert (mailbox, number) == ("support", "+15550950") and 1.0 < seconds < 10.0, rows
    assert abs(dominant(server.data_dir / path) - CALLER_HZ) < 15  # the caller's message, not our prompts
    assert disposition[0][0] == "completed"  # we said goodbye and hung up
    assert events(server, "EXITWITHTIMEOUT")[0][3]["target"] == "voicemail:support"

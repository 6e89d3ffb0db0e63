"""A browser agent takes a real call: the whole server, a pjsua2 caller, headless Chromium on /agent.

The agent signs in on /login, goes available, the caller (tests/support/phone.py) dials the flow's
queue, the page rings, the agent answers: the caller's 1000 Hz tone reaches the page (its WebRTC
audio, analysed in the page) and the page's fake microphone (a 600 Hz WAV) reaches the caller. Then
a supervisor in a second browser whispers (the agent hears the supervisor's 1300 Hz, the caller does
not), hold (the caller hears music, not the agent), resume, and the agent hangs up and wraps up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.integration.test_acd_calls import AGENT_HZ, CALLER_HZ, QUEUE_FLOW, RATE, Caller, cli_ok, events, power
from tests.support.audio import tone
from tests.support.browser import chromium, missing, screenshot, wait_for
from tests.support.server import ServerProcess
from voice.audio import read_wav, write_wav

pytestmark = pytest.mark.integration
SUPERVISOR_HZ = 1300.0


def attr(driver: object, selector: str, name: str) -> str:
    return str(driver.execute_script(  # type: ignore[attr-defined]
        "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
        selector, name))


def click(driver: object, element_id: str) -> None:
    driver.execute_script("document.getElementById(arguments[0]).click()", element_id)  # type: ignore[attr-defined]


def test_browser_agent_answers_a_call_and_both_directions_carry_audio(tmp_path: Path) -> None:
    assert missing() is None, missing()
    mic = tmp_path / "agent-mic.wav"
    write_wav(mic, tone(AGENT_HZ, 30.0))
    caller_tone = tmp_path / "caller-tone.wav"
    write_wav(caller_tone, tone(CALLER_HZ, 1.0))
    sup_mic = tmp_path / "supervisor-mic.wav"
    write_wav(sup_mic, tone(SUPERVISOR_HZ, 30.0, level=20000))  # louder than the caller: the page's peak
    password = tmp_path / "password"
    password.write_text("correct horse battery\n")
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    cli_ok(server, "user", "add", "alice", "--role", "agent", "--password-file", str(password))
    cli_ok(server, "user", "add", "sam", "--role", "supervisor", "--password-file", str(password))
    cli_ok(server, "agent", "add", "alice", "--uri", "desk", "--user", "alice", "--skills", "support:1",
           "--wrap-up", "5")
    cli_ok(server, "queue", "add", "support", "--announce-every", "0", "--ring-timeout", "20")
    server.start()
    try:
        with chromium(fake_audio=mic) as driver:
            driver.get(f"{server.http}/login?next=/agent")
            driver.find_element("id", "name").send_keys("alice")
            driver.find_element("id", "password").send_keys("correct horse battery")
            click(driver, "submit")
            wait_for(driver, lambda d: d.current_url.endswith("/agent"), 15, "the agent page")
            wait_for(driver, lambda d: attr(d, "#conn", "data-status") == "connected", 15, "the desk socket")
            click(driver, "btn-available")
            wait_for(driver, lambda d: attr(d, "#acd-state", "data-state") == "available", 10, "available")
            caller = Caller(server, tmp_path, "+15550700", "--play", str(caller_tone), "--hangup-after", "25")
            wait_for(driver, lambda d: attr(d, "#call", "data-phase") == "ringing", 20, "the call rings")
            screenshot(driver, tmp_path / "ringing.png")
            click(driver, "btn-answer")
            wait_for(driver, lambda d: attr(d, "#call", "data-phase") == "connected", 20, "connected")
            # The caller's tone plays in the page.
            heard = wait_for(driver, lambda d: (hz := d.execute_script("return window.__desk.rtc.peakHz()"))
                             and abs(hz - CALLER_HZ) < 40 and hz, 15, "the caller's tone in the page")
            screenshot(driver, tmp_path / "connected.png")
            call_id = server.wait_for(lambda: server.query("SELECT id FROM calls WHERE agent = 'alice'"))[0][0]
            with chromium(fake_audio=sup_mic) as sup:
                sup.get(f"{server.http}/login?next=/supervisor")
                sup.find_element("id", "name").send_keys("sam")
                sup.find_element("id", "password").send_keys("correct horse battery")
                click(sup, "submit")
                wait_for(sup, lambda d: d.current_url.endswith("/supervisor"), 15, "the supervisor page")
                wait_for(sup, lambda d: d.find_element("css selector", f'[data-testid="whisper-{call_id}"]'), 20,
                         "the call on the board")
                sup.execute_script("arguments[0].click()",
                                   sup.find_element("css selector", f'[data-testid="whisper-{call_id}"]'))
                wait_for(sup, lambda d: attr(d, "#monitor", "data-mode") == "whisper", 15, "whispering")
                # The agent hears the supervisor (louder than the caller: the page's loudest tone).
                whispered = wait_for(driver, lambda d: (hz := d.execute_script("return window.__desk.rtc.peakHz()"))
                                     and abs(hz - SUPERVISOR_HZ) < 40 and hz, 15, "the supervisor in the agent's ear")
                screenshot(sup, tmp_path / "supervisor-whisper.png")
                time.sleep(5)
                sup.execute_script("arguments[0].click()",
                                   sup.find_element("css selector", f'[data-testid="stop-{call_id}"]'))
                wait_for(sup, lambda d: attr(d, "#monitor", "data-mode") in ("off", None, "None"), 10, "stopped")
            time.sleep(1)
            click(driver, "btn-hold")
            wait_for(driver, lambda d: attr(d, "#btn-hold", "aria-pressed") == "true", 10, "held")
            time.sleep(4)
            click(driver, "btn-hold")  # resume
            wait_for(driver, lambda d: attr(d, "#btn-hold", "aria-pressed") == "false", 10, "resumed")
            time.sleep(3)
            click(driver, "btn-hangup")
            wait_for(driver, lambda d: attr(d, "#call", "data-phase") == "wrapup", 15, "wrap-up")
            driver.execute_script("document.querySelector('[data-testid^=disp-]').click()")
            driver.find_element("id", "wrap-note").send_keys("asked about a refund")
            click(driver, "btn-wrap-done")
            report = caller.report()
            wrap = server.wait_for(lambda: server.query(
                "SELECT wrap_up_disposition, wrap_up_note FROM calls WHERE wrap_up_at IS NOT NULL"), timeout=15)
    finally:
        server.stop()
    assert abs(heard - CALLER_HZ) < 40
    assert report["connected"], report
    assert abs(whispered - SUPERVISOR_HZ) < 40
    # The caller heard the page's microphone while connected, never the supervisor, and hold music (not the
    # agent) while held. Counted back from the hang-up: about 3 s resumed, 4 s (and a little) held, 1 s, then
    # 5 s of whisper (the agent still talking to the caller).
    pcm = read_wav(caller.heard).samples
    hold = pcm[-int(6.5 * RATE): -int(4.0 * RATE)]
    talk = pcm[-int(12.5 * RATE): -int(9.5 * RATE)]  # during the whisper
    assert power(talk, AGENT_HZ) > 1e8, power(talk, AGENT_HZ)
    assert power(pcm, SUPERVISOR_HZ) < power(pcm, AGENT_HZ) / 300, (power(pcm, SUPERVISOR_HZ), power(pcm, AGENT_HZ))
    assert power(hold, AGENT_HZ) < power(talk, AGENT_HZ) / 100, (power(hold, AGENT_HZ), power(talk, AGENT_HZ))
    assert np.abs(hold.astype(np.int32)).mean() > 100  # music, not silence
    assert wrap[0][1] == "asked about a refund" and wrap[0][0]
    assert [a for _, _, a, _ in events(server, "CONNECT")] == ["alice"]
    assert events(server, "HOLD") and events(server, "UNHOLD")
    assert [d.get("mode") for *_, d in events(server, "MONITOR")][:1] == ["whisper"]


def test_browser_agent_transfers_the_caller_to_a_queue(tmp_path: Path) -> None:
    from tests.integration.test_acd_calls import AgentPhone

    assert missing() is None, missing()
    backup_hz = 450.0
    mic, caller_tone, backup_tone = tmp_path / "mic.wav", tmp_path / "caller.wav", tmp_path / "backup.wav"
    write_wav(mic, tone(AGENT_HZ, 30.0))
    write_wav(caller_tone, tone(CALLER_HZ, 1.0))
    write_wav(backup_tone, tone(backup_hz, 1.0))
    password = tmp_path / "password"
    password.write_text("correct horse battery\n")
    server = ServerProcess(tmp_path, QUEUE_FLOW)
    bob = AgentPhone(tmp_path, "bob", "--answer-after", "0.3", "--play", str(backup_tone))
    cli_ok(server, "user", "add", "alice", "--role", "agent", "--password-file", str(password))
    cli_ok(server, "agent", "add", "alice", "--uri", "desk", "--user", "alice", "--skills", "support:1")
    cli_ok(server, "agent", "add", "bob", "--uri", bob.uri, "--skills", "backup:1")
    cli_ok(server, "agent", "login", "bob")
    cli_ok(server, "queue", "add", "support", "--skills", "support:1", "--announce-every", "0")
    cli_ok(server, "queue", "add", "backup", "--skills", "backup:1", "--announce-every", "0")
    server.start()
    try:
        with chromium(fake_audio=mic) as driver:
            driver.get(f"{server.http}/login?next=/agent")
            driver.find_element("id", "name").send_keys("alice")
            driver.find_element("id", "password").send_keys("correct horse battery")
            click(driver, "submit")
            wait_for(driver, lambda d: attr(d, "#conn", "data-status") == "connected", 20, "the desk socket")
            click(driver, "btn-available")
            wait_for(driver, lambda d: attr(d, "#acd-state", "data-state") == "available", 10, "available")
            caller = Caller(server, tmp_path, "+15550800", "--play", str(caller_tone), "--hangup-after", "14")
            wait_for(driver, lambda d: attr(d, "#call", "data-phase") == "ringing", 20, "the call rings")
            click(driver, "btn-answer")
            wait_for(driver, lambda d: attr(d, "#call", "data-phase") == "connected", 20, "connected")
            time.sleep(2)
            click(driver, "btn-transfer")
            wait_for(driver, lambda d: d.execute_script(
                "return [...document.getElementById('xfer-queue').options].some(o => o.value === 'backup')"), 10,
                "the queues in the transfer picker")
            driver.execute_script("const s = document.getElementById('xfer-queue'); s.value = 'backup';"
                                  "s.dispatchEvent(new Event('change'))")
            click(driver, "btn-xfer-go")
            wait_for(driver, lambda d: attr(d, "#call", "data-phase") in ("wrapup", "none"), 20, "the call left")
            report = caller.report()
            bob_calls = bob.wait_calls(1)
    finally:
        bob.stop()
        server.stop()
    assert report["connected"]
    assert [a for _, _, a, _ in events(server, "CONNECT")] == ["alice", "bob"]
    assert events(server, "REQUEUE")[0][1] == "backup"
    # The caller ended up talking to bob: his tone in the caller's last seconds, the caller's in his recording.
    pcm = read_wav(caller.heard).samples[-int(3 * RATE):]
    assert power(pcm, backup_hz) > 1e8 and power(pcm, backup_hz) > 30 * power(pcm, AGENT_HZ)
    bob_heard = read_wav(Path(bob_calls[0]["recording"])).samples[-int(3 * RATE):]
    assert power(bob_heard, CALLER_HZ) > 1e8
    assert server.query("SELECT agent FROM calls")[0][0] == "bob"
    # Both agents are on the call's one agent channel, alice's part then bob's, each at its place
    [(path, seconds)] = server.query("SELECT agent_recording_path, agent_recording_seconds FROM calls")
    assert path.endswith(".agents.wav"), path
    [(data,)] = server.query("SELECT data FROM events WHERE event = 'AGENTLEGS'")
    legs = json.loads(data)["legs"]
    assert len(legs) == 2 and legs[0]["offset_s"] == 0 and legs[1]["offset_s"] > legs[0]["seconds"] - 0.1, legs
    agents = read_wav(server.data_dir / path).samples
    alice_part = agents[: int(legs[0]["seconds"] * RATE)]
    bob_part = agents[int(legs[1]["offset_s"] * RATE):]
    assert power(alice_part, AGENT_HZ) > 30 * power(alice_part, backup_hz), "alice's part"
    assert power(bob_part, backup_hz) > 30 * power(bob_part, AGENT_HZ), "bob's part"
    assert abs(seconds - (legs[1]["offset_s"] + legs[1]["seconds"])) < 0.05
    assert not list(server.data_dir.rglob("*.agent-2.wav"))      # the per-agent files were joined, not left over
    registered = dict(server.wait_for(lambda: server.query("SELECT leg, path FROM recordings")))
    assert registered["agent"] == path and "stereo" in registered

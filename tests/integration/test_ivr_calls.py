"""Real callers navigate real flows: keys by RFC 4733, SIP INFO and in-band tones, spoken words,
sensitive input, voicemail, HTTP lookups against a dead server, unknown numbers."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.ports import free_port
from tests.support.server import ServerProcess, run_phone
from voice.audio import Audio, read_wav, resample, write_wav

MENUS = """
name: menus
start: main
nodes:
  main:
    type: menu
    prompt: "Main menu. For sales press 1. For support press 2."
    options: {"1": sales, "2": support}
    timeout: 10
  sales:
    type: menu
    prompt: "Sales. For new orders press 3. For returns press 4."
    options: {"3": orders, "4": returns}
    timeout: 10
  orders:
    type: collect
    prompt: "Please enter your order number, then press hash."
    variable: order
    min_length: 3
    max_length: 6
    timeout: 10
    next: thanks
  thanks:
    type: play
    say: "Thank you. Your order number is {order}."
    next: bye
  returns:
    type: play
    say: "Returns."
    next: bye
  support:
    type: play
    say: "Support."
    next: bye
  bye:
    type: hangup
"""


def ivr_path(srv: ServerProcess, token: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    [call] = srv.wait_for(lambda: [c for c in srv.calls(token) if c["ended_at"]], timeout=20)
    r = srv.get(f"/api/calls/{call['id']}", token)
    assert r.status_code == 200, r.text
    body = r.json()
    return body, body["ivr_path"]


def nodes(path: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["node"] for e in path if e["event"] == "IVR_NODE"]


def keys(path: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["data"]["digit"], e["data"]["source"]) for e in path if e["event"] == "IVR_KEY"]


@pytest.fixture
def menus(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path, MENUS, ivr_extra='inband_dtmf = "auto"\n').start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log(), srv.log()[-4000:]


@pytest.mark.parametrize("method", ["rfc4733", "info"])
def test_caller_navigates_menus_by_keys(menus: ServerProcess, method: str) -> None:
    report = run_phone(menus.uri, "--dtmf", "1@1.0,3@3.5,4711#@6.0", "--dtmf-method", method,
                       "--hangup-after", "25")
    assert report["connected"], report
    assert report.get("local_hangup") is not True, "the flow should have hung up, not the phone"
    token = menus.token("supervisor")
    call, path = ivr_path(menus, token)
    assert nodes(path) == ["main", "sales", "orders", "thanks", "bye"], path
    assert keys(path) == [("1", method), ("3", method), ("4", method), ("7", method), ("1", method),
                          ("1", method), ("#", method)], path
    assert any(e["event"] == "IVR_VAR" and e["data"]["name"] == "order" and e["data"]["value"] == "4711"
               for e in path), path
    assert call["disposition"] == "completed" and call["flow"] == "menus"


def test_in_band_tones_work_when_the_trunk_has_no_telephone_event(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, MENUS, ivr_extra='inband_dtmf = "always"\n').start()
    try:
        report = run_phone(srv.uri, "--dtmf", "2@1.5", "--dtmf-method", "inband", "--hangup-after", "15")
        assert report["connected"], report
        call, path = ivr_path(srv, srv.token("qa"))
        assert nodes(path) == ["main", "support", "bye"], path
        assert keys(path) == [("2", "inband")], path
    finally:
        assert srv.stop() == 0


SPEECH = """
name: speech
start: ask
nodes:
  ask:
    type: speech
    prompt: "Please say sales, billing or support."
    phrases: {sales: sales, billing: billing, support: support}
    variable: department
    timeout: 8
    retries: 0
    no_match: lost
    no_input: lost
  sales: {type: play, say: "Sales.", next: bye}
  billing: {type: play, say: "Billing.", next: bye}
  support: {type: play, say: "Support.", next: bye}
  lost: {type: play, say: "Sorry.", next: bye}
  bye: {type: hangup}
"""


def spoken(word: str, path: Path) -> Path:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(raw), word], check=True)
    write_wav(path, resample(read_wav(raw), 8000))
    return path


@pytest.mark.parametrize("word", ["billing", "support"])
def test_caller_answers_a_speech_menu_by_voice(tmp_path: Path, word: str) -> None:
    srv = ServerProcess(tmp_path, SPEECH).start()
    try:
        said = spoken(word, tmp_path / f"{word}.wav")
        report = run_phone(srv.uri, "--say", f"{said}@3.0", "--hangup-after", "20")
        assert report["connected"], report
        call, path = ivr_path(srv, srv.token("qa"))
        assert nodes(path) == ["ask", word, "bye"], path
        [heard] = [e["data"] for e in path if e["event"] == "IVR_SPEECH"]
        assert heard["phrase"] == word and heard["confidence"] >= 0.5, heard
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log(), srv.log()[-4000:]


SENSITIVE = """
name: pin
start: pin
variables:
  pin: {type: string, sensitive: true}
nodes:
  pin:
    type: collect
    prompt: "Enter your PIN."
    variable: pin
    min_length: 4
    max_length: 4
    sensitive: true
    timeout: 8
    next: ok
  ok: {type: play, say: "Thank you.", next: leave}
  leave:
    type: voicemail
    mailbox: support
    beep: true
    max_length: 3
    next: bye
  bye: {type: hangup}
"""


def test_sensitive_digits_are_masked_and_voicemail_is_saved(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, SENSITIVE).start()
    try:
        tone = tmp_path / "tone.wav"
        write_wav(tone, Audio((8000 * np.sin(2 * np.pi * 440 * np.arange(8000 * 8) / 8000)).astype(np.int16), 8000))
        report = run_phone(srv.uri, "--dtmf", "9876@1.0", "--play", str(tone), "--hangup-after", "25")
        assert report["connected"], report
        token = srv.token("supervisor")
        call, path = ivr_path(srv, token)
        assert nodes(path) == ["pin", "ok", "leave", "bye"], path
        assert [d for d, _ in keys(path)] == ["*", "*", "*", "*"], path
        text = str(call) + srv.log()
        assert "9876" not in text, "a sensitive value leaked into the API or the log"
        events = [e for (e,) in srv.query("select event from events order by id")]
        assert events.index("RECPAUSE") < events.index("RECRESUME")
        [vm] = srv.get("/api/voicemails", token).json()
        assert vm["mailbox"] == "support" and vm["call_id"] == call["id"]
        assert 2.0 < vm["seconds"] < 4.5, vm
        audio = srv.get(f"/api/voicemails/{vm['id']}/audio", token)
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    finally:
        assert srv.stop() == 0


class SilentHttpServer:
    """Accepts connections and never answers: a CRM that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, name="silent-http", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
        for c in self.conns:
            c.close()


def test_http_node_against_a_server_that_never_answers(tmp_path: Path) -> None:
    dead = SilentHttpServer()
    flow = f"""
name: lookup
start: lookup
nodes:
  lookup:
    type: http
    url: "http://127.0.0.1:{dead.port}/customers/{{caller_number}}"
    timeout: 1.5
    results: {{customer: name}}
    next: found
    error: failed
  found: {{type: play, say: "Found.", next: bye}}
  failed: {{type: play, say: "Our systems are slow today.", next: bye}}
  bye: {{type: hangup}}
variables:
  customer: string
"""
    srv = ServerProcess(tmp_path, flow).start()
    try:
        report = run_phone(srv.uri, "--hangup-after", "20")
        assert report["connected"] and report.get("local_hangup") is not True, report
        # The call was not held past the timeout: lookup (1.5 s) + a short prompt.
        assert report["ended_at"] - report["answered_at"] < 8, report
        call, path = ivr_path(srv, srv.token("qa"))
        assert nodes(path) == ["lookup", "failed", "bye"], path
        [http] = [e["data"] for e in path if e["event"] == "IVR_HTTP"]
        assert http["error"] == "timeout" and http["status"] is None, http
        assert dead.conns, "the flow never reached the HTTP server"
    finally:
        assert srv.stop() == 0
        dead.close()


def test_unknown_number_is_refused_with_404(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, MENUS, default_flow=False).start()
    try:
        report = run_phone(f"sip:5550100@127.0.0.1:{srv.sip_port}")
        assert report["status_code"] == 404 and not report["connected"], report
        [row] = srv.wait_for(lambda: srv.query("select callee, disposition from calls where ended_at is not null"))
        assert row == ("5550100", "no_flow")
    finally:
        assert srv.stop() == 0


def test_demo_flow_in_mandarin_with_a_crm_lookup(tmp_path: Path) -> None:
    from tests.support.server import DEMO_FLOW

    srv = ServerProcess(tmp_path, DEMO_FLOW.read_text(), ivr_extra="demo_crm = true\n").start()
    try:
        report = run_phone(srv.uri, "--dtmf", "2@1.0,1@4.0,1234#@7.0", "--hangup-after", "16")
        assert report["connected"], report
        token = srv.token("supervisor")
        call, path = ivr_path(srv, token)
        assert nodes(path)[:7] == ["welcome", "language", "chinese", "chinese_menu", "account", "lookup",
                                   "balance"], path
        [http] = [e["data"] for e in path if e["event"] == "IVR_HTTP"]
        assert http["status"] == 200 and http["error"] == "", http
        values = {e["data"]["name"]: e["data"]["value"] for e in path if e["event"] == "IVR_VAR"}
        assert values["language"] == "zh" and values["customer_name"] == "Ann Smith" and values["balance"] == 42.5
        assert values["account"] == "****"
        assert "1234" not in str(call) + srv.log(), "the sensitive account number leaked"
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log(), srv.log()[-4000:]


TRANSFER = """
name: front
start: route
nodes:
  route:
    type: branch
    rules:
      - if: "dialled_number == 'desk'"
        next: desk
    else: go
  go:
    type: transfer
    prompt: "Transferring you now."
    target: "sip:desk@127.0.0.1:{port}"
    error: refused
  refused: {type: hangup, prompt: "Sorry, that number is not allowed."}
  desk: {type: play, say: "This is the front desk.", next: bye}
  bye: {type: hangup}
"""


@pytest.mark.parametrize("allowed", [True, False])
def test_transfer_node_refers_the_caller_only_to_allowed_targets(tmp_path: Path, allowed: bool) -> None:
    port = free_port()  # the server's own SIP port: the target is a number on the same server
    allow = f'transfer_allow = ["sip:desk@127.0.0.1:{port}"]\n' if allowed else ""
    srv = ServerProcess(tmp_path, TRANSFER.replace("{port}", str(port)), ivr_extra=allow)
    srv.sip_port = port
    srv.start()
    try:
        report = run_phone(srv.uri, "--accept-refer", "--hangup-after", "15")
        assert report["connected"], report
        token = srv.token("qa")
        calls = srv.wait_for(lambda: [c for c in srv.calls(token) if c["ended_at"]]
                             if len(srv.calls(token)) == (2 if allowed else 1) else None, timeout=20)
        first = next(c for c in calls if c["callee"] == "ivr")
        _, path = ivr_path_of(srv, token, first["id"])
        if allowed:
            assert report["refer"]["target"].startswith(f"<sip:desk@127.0.0.1:{port}") or \
                report["refer"]["target"].startswith(f"sip:desk@127.0.0.1:{port}"), report
            assert report["transfer_call"]["connected"], report
            [step] = [e["data"] for e in path if e["event"] == "IVR_TRANSFER"]
            assert step["ok"] is True, step
            assert nodes(path) == ["route", "go"]
            desk = next(c for c in calls if c["callee"] == "desk")
            assert desk["flow"] == "front"
        else:
            assert "refer" not in report, "nothing may be dialled"
            assert nodes(path) == ["route", "go", "refused"], path
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log(), srv.log()[-4000:]


def ivr_path_of(srv: ServerProcess, token: str, call_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    r = srv.get(f"/api/calls/{call_id}", token)
    assert r.status_code == 200, r.text
    return r.json(), r.json()["ivr_path"]

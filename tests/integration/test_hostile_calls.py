"""Calls that would otherwise never end, hold and resume, churn, fuzzing, floods of log lines."""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path

from tests.support.health import assert_healthy
from tests.support.rawsip import RawCall, request, sdp
from tests.support.server import LONG_FLOW, SHORT_FLOW, ServerProcess
from tests.support.sipp_run import run_sipp
from voice.audio import read_wav


def rows(server: ServerProcess) -> list[dict[str, object]]:
    return server.calls(server.token("admin"), 1000)


def test_inactive_calls_cannot_exhaust_the_lines(tmp_path: Path) -> None:
    # Five lines, ten callers whose media never starts (inactive, sendonly): each is answered and
    # ended for "no media" within seconds, so real callers get through again.
    srv = ServerProcess(tmp_path, LONG_FLOW, sip_extra="max_calls = 5\nmedia_timeout_s = 2\n").start()
    try:
        calls = [RawCall(srv.sip_port, sdp(direction="inactive" if i % 2 else "sendonly")) for i in range(5)]
        assert [c.invite() for c in calls] == [200] * 5
        assert RawCall(srv.sip_port, sdp()).invite() == 503  # full
        t0 = time.monotonic()
        for c in calls:
            assert c.wait_bye(10.0) is not None, srv.log()[-3000:]
            c.close()
        assert time.monotonic() - t0 < 6.0
        ended = srv.wait_for(lambda: [r for r in rows(srv) if r["disposition"] == "timeout"]
                             if len([r for r in rows(srv) if r["disposition"] == "timeout"]) == 5 else None)
        assert all("no two-way audio within 2 s" in str(r["hangup_cause"]) for r in ended)
        assert "ending call: no two-way audio" in srv.log()
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()


def test_a_call_that_stops_sending_rtp_is_ended(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, LONG_FLOW, sip_extra="rtp_timeout_s = 2\n").start()
    try:
        call = RawCall(srv.sip_port, sdp())  # sendrecv, but not a single RTP packet
        assert call.invite() == 200
        assert call.wait_bye(15.0) is not None
        call.close()
        [row] = srv.wait_for(lambda: [r for r in rows(srv) if r["ended_at"]])
        assert row["disposition"] == "timeout" and "no RTP for 2 s" in str(row["hangup_cause"])
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0


def test_a_video_stream_before_the_audio_one_is_a_normal_call(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, SHORT_FLOW).start()
    try:
        stats = run_sipp(srv, tmp_path, "uac_video_first.xml", 3, 3, 3, "-rtp_echo", timeout=60)
        assert stats["SuccessfulCall(C)"] == "3", stats
        assert {r["disposition"] for r in rows(srv)} == {"completed"}
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0


def test_hold_and_resume_keep_the_flow_and_the_recording_going(tmp_path: Path) -> None:
    text = ("Hello, this is a test of holding a call. The caller puts us on hold and takes us off hold again, "
            "and this prompt must still end on time.")
    srv = ServerProcess(tmp_path, SHORT_FLOW.replace("Hello, this is a test.", text),
                        sip_extra="rtp_timeout_s = 3\n").start()
    try:
        stats = run_sipp(srv, tmp_path, "uac_hold_resume.xml", 1, 1, 1, "-rtp_echo", timeout=90)
        assert stats["SuccessfulCall(C)"] == "1", stats  # the server hung up at the prompt's end
        [row] = srv.wait_for(lambda: [r for r in rows(srv) if r["ended_at"]])
        assert row["disposition"] == "completed", row
        prompt = read_wav(srv.prompt(text))
        rec = read_wav(srv.data_dir / str(row["recording_path"]))
        # The recording spans the whole call, held part included (silence, not a gap).
        assert abs(rec.duration - float(row["recording_seconds"])) < 0.01  # type: ignore[arg-type]
        assert rec.duration > prompt.duration - 0.5, (rec.duration, prompt.duration)
        assert [e for (e,) in srv.query("select event from events where event like '%HOLD' order by id")] == \
            ["HOLD", "UNHOLD"]
        log = srv.log()
        assert "call held" in log and "call resumed" in log
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()


def test_fast_churn_leaves_no_call_behind(tmp_path: Path) -> None:
    # INVITE -> 200 -> ACK + BYE at once, 2,000 times: every call is answered (never 603), ends,
    # and is closed; nothing leaks.
    srv = ServerProcess(tmp_path, SHORT_FLOW, sip_extra='trusted_peers = ["127.0.0.1"]\n').start()
    try:
        stats = run_sipp(srv, tmp_path, "uac_churn.xml", 2000, 200, 200, timeout=300)
        assert stats["SuccessfulCall(C)"] == "2000" and stats["FailedCall(C)"] == "0", stats
        srv.wait_for(lambda: srv.get("/healthz").json()["active_calls"] == 0, 60)
        srv.wait_for(lambda: srv.query("select count(*) from calls where ended_at is not null") == [(2000,)], 60)
        dispositions = {d for (d,) in srv.query("select distinct disposition from calls")}
        assert dispositions <= {"caller_hangup", "completed"}, dispositions
        assert "Decline" not in srv.log() and "cause=603" not in srv.log()
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()


def _mutate(rng: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randrange(len(data)) if data else 0
        if op < 0.4:
            data[pos] = rng.randrange(256)
        elif op < 0.6:
            del data[pos:pos + rng.randint(1, 40)]
        elif op < 0.8:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        else:  # duplicate a line (headers twice, bodies twice)
            start = data.rfind(b"\r\n", 0, pos) + 2
            end = data.find(b"\r\n", pos)
            if end > start:
                data[end:end] = b"\r\n" + data[start:end]
    return bytes(data)


def test_seeded_fuzz_over_udp_and_tcp(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, SHORT_FLOW, sip_extra='trusted_peers = ["127.0.0.1"]\nmedia_timeout_s = 3\n').start()
    rng = random.Random(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    lport = udp.getsockname()[1]
    try:
        bases = [request("INVITE", srv.sip_port, lport, body=sdp()),
                 request("INVITE", srv.sip_port, lport, body=sdp(direction="inactive", video_first=True)),
                 request("OPTIONS", srv.sip_port, lport), request("BYE", srv.sip_port, lport, to_tag="x"),
                 request("REFER", srv.sip_port, lport, extra=("Refer-To: <sip:1@127.0.0.1:9>",))]
        for i in range(2400):
            udp.sendto(_mutate(rng, rng.choice(bases)), ("127.0.0.1", srv.sip_port))
            if i % 20 == 0:
                time.sleep(0.02)  # about 1,000 messages a second
        for _ in range(12):  # TCP: streams of mutated messages, connections cut mid-message
            with socket.create_connection(("127.0.0.1", srv.sip_port), timeout=3) as tcp:
                for _ in range(50):
                    msg = _mutate(rng, rng.choice(bases)).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
                    try:
                        tcp.sendall(msg[: rng.randint(1, len(msg))] if rng.random() < 0.1 else msg)
                    except OSError:
                        break
        assert srv.proc is not None and srv.proc.poll() is None, srv.log()[-3000:]
        assert_healthy(srv, timeout=60)
        # The flood is summarized, not echoed line by line.
        assert srv.log().count("\n") < 3000, srv.log().count("\n")
    finally:
        udp.close()
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()


def test_a_huge_invite_cannot_flood_the_log_and_wire_strings_are_cleaned(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, SHORT_FLOW).start()
    try:
        before = srv.log().count("\n")
        codecs = tuple(range(96, 128)) * 15  # ~500 payload types, none usable but PCMU
        body = sdp(codecs=(0, *codecs)) + "".join(f"a=rtpmap:{c} X-CODEC{i}/8000\r\n" for i, c in enumerate(codecs))
        evil = 'From: "Evil\x1b[2J\x1b]0;pwned\x07" <sip:evil@127.0.0.1>;tag=1'
        call = RawCall(srv.sip_port, body, from_header=evil)
        assert call.invite() == 200
        call.wait_bye(20)
        call.close()
        srv.wait_for(lambda: all(r["ended_at"] for r in rows(srv)) and rows(srv))
        assert srv.log().count("\n") - before < 60
        assert "\x1b" not in srv.log()
        out = srv.cli("calls", "list")
        assert out.returncode == 0 and "\x1b" not in out.stdout and "evil" in out.stdout, out.stdout
        [row] = rows(srv)
        assert row["caller"] == "evil"
        # The display name is kept, its control characters escaped.
        [(name, uri)] = srv.query("select caller_name, caller_uri from calls")
        assert "\x1b" not in name + uri and "\\x1b" in name and name.startswith("Evil"), (name, uri)
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0


def test_recording_download_serves_only_regular_files(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, SHORT_FLOW).start()
    try:
        assert_healthy(srv)
        token = srv.token("admin")
        [row] = [r for r in srv.calls(token) if r["recording_path"]]
        assert srv.get(row["recording_url"], token).status_code == 200
        path = srv.data_dir / row["recording_path"]
        secret = tmp_path / "secret.wav"
        secret.write_bytes(path.read_bytes())
        path.unlink()
        os.symlink(secret, path)
        assert srv.get(row["recording_url"], token).status_code == 410
        day = path.parent
        moved = day.with_name(day.name + "-real")
        path.unlink()
        day.rename(moved)
        os.symlink(moved, day)  # a symlinked folder on the way
        (moved / path.name).write_bytes(secret.read_bytes())
        assert srv.get(row["recording_url"], token).status_code == 410
    finally:
        assert srv.stop() == 0

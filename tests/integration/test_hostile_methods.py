"""Requests outside a call get the right refusal, nothing is sent anywhere but back, REFER dials nobody.

After each test the server must still answer and hear a real call, with no call left up and no
row left open (``assert_healthy``).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.health import assert_healthy
from tests.support.rawsip import RawCall, UdpPeer, header, request, sdp, status
from tests.support.server import LONG_FLOW, SHORT_FLOW, ServerProcess, run_phone


@pytest.fixture
def server(short_server: ServerProcess) -> ServerProcess:
    return short_server  # (conftest: a short flow; stops with exit 0 and no traceback)


@pytest.mark.parametrize(
    "method, code",
    [("OPTIONS", 200), ("SUBSCRIBE", 489), ("PUBLISH", 489), ("MESSAGE", 405), ("REGISTER", 405),
     ("INFO", 405), ("REFER", 405), ("NOTIFY", 405), ("FROBNICATE", 501)],
)
def test_methods_outside_a_call(server: ServerProcess, method: str, code: int) -> None:
    peer, contact = UdpPeer(), UdpPeer()  # the Contact names another socket: nothing must reach it
    try:
        extra = ("Event: presence", "Expires: 60") if method in ("SUBSCRIBE", "PUBLISH", "NOTIFY") else ()
        msg = request(method, server.sip_port, peer.port, extra=extra).replace(
            f"Contact: <sip:raw@127.0.0.1:{peer.port}>".encode(),
            f"Contact: <sip:raw@127.0.0.1:{contact.port}>".encode())
        peer.send(msg, server.sip_port)
        reply = peer.final_response()
        assert reply is not None and status(reply) == code, reply
        if code == 405 or code == 501:
            assert "INVITE" in (header(reply, "Allow") or ""), reply
        assert contact.final_status(timeout=1.5) is None
        contact.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            contact.sock.recvfrom(65536)  # no NOTIFY, no request of any kind
    finally:
        peer.close()
        contact.close()
    assert_healthy(server)


@pytest.mark.parametrize(
    "uri, body, code",
    [("tel:+15551234", sdp(), 416),
     (None, sdp().replace("m=audio 49170", "m=audio 0"), 488),
     (None, sdp().replace("m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", "m=video 49172 RTP/AVP 96"), 488),
     (None, sdp().replace("c=IN IP4 127.0.0.1", "c=IN IP4 " + "a" * 200), 488),  # aborted the process
     (None, sdp().replace("c=IN IP4 127.0.0.1", "c=IN IP4 media.example.com"), 488),  # DNS on the engine thread
     (None, sdp().replace("a=sendrecv", "a=rtcp:49171 IN IP4 " + "b" * 150), 488)],
    ids=["tel-uri", "audio-port-0", "video-only", "long-address", "host-name", "long-rtcp-address"],
)
def test_invites_without_a_usable_call_are_refused(server: ServerProcess, uri: str | None, body: str,
                                                  code: int) -> None:
    peer = UdpPeer()
    try:
        peer.send(request("INVITE", server.sip_port, peer.port, uri=uri, body=body), server.sip_port)
        assert status(peer.final_response() or b"") == code
    finally:
        peer.close()
    assert_healthy(server)


def test_requests_for_unknown_dialogs_get_481(server: ServerProcess) -> None:
    peer = UdpPeer()
    try:
        for method in ("BYE", "INFO", "UPDATE", "REFER"):
            peer.send(request(method, server.sip_port, peer.port, to_tag="nosuchtag"), server.sip_port)
            assert status(peer.final_response() or b"") == 481, method
    finally:
        peer.close()
    assert_healthy(server)


def test_in_dialog_refer_is_refused_and_dials_nobody(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, LONG_FLOW).start()
    gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the fraudster's gateway
    gateway.bind(("127.0.0.1", 0))
    gw_port = gateway.getsockname()[1]
    try:
        call = RawCall(srv.sip_port, sdp())
        assert call.invite() == 200
        final = call.final or b""
        to = header(final, "To") or ""
        tag = to.split("tag=", 1)[1].split(";")[0]
        refer = request("REFER", srv.sip_port, call.peer.port, to_tag=tag, call_id=call.call_id, cseq=2,
                        from_header=call.from_header,
                        extra=(f"Refer-To: <sip:+900555000@127.0.0.1:{gw_port}>",
                               f"Referred-By: <sip:raw@127.0.0.1:{call.peer.port}>"))
        call.peer.send(refer, srv.sip_port)
        reply = call.peer.receive(lambda m: (status(m) or 0) >= 200 and b"REFER" in m, 5.0)
        assert reply is not None and status(reply) == 403, reply
        gateway.settimeout(3.0)
        with pytest.raises(TimeoutError):
            gateway.recvfrom(65536)  # no INVITE ever leaves for the gateway
        call.peer.send(request("BYE", srv.sip_port, call.peer.port, to_tag=tag, call_id=call.call_id, cseq=3,
                               from_header=call.from_header), srv.sip_port)
        call.close()
        token = srv.token("admin")
        [row] = srv.wait_for(lambda: [c for c in srv.calls(token) if c["ended_at"]])
        assert row["disposition"] == "caller_hangup"
        [(data,)] = srv.query("select data from events where event = 'TRANSFER_REFUSED'")
        assert "+900555000" in data
        assert "REFER refused" in srv.log() and "+900555000" in srv.log()
        assert_healthy(srv)
    finally:
        gateway.close()
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()


def test_a_full_server_answers_503_with_retry_after(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, LONG_FLOW, sip_extra="max_calls = 3\nretry_after_s = 7\n").start()
    calls = [RawCall(srv.sip_port, sdp(direction="inactive")) for _ in range(3)]
    try:
        assert [c.invite() for c in calls] == [200, 200, 200]
        peer = UdpPeer()
        peer.send(request("INVITE", srv.sip_port, peer.port, body=sdp()), srv.sip_port)
        reply = peer.final_response() or b""
        peer.close()
        assert status(reply) == 503 and header(reply, "Retry-After") == "7", reply
        assert "refused SIP requests" in srv.wait_for(lambda: srv.log() if "refused SIP" in srv.log() else "", 15)
    finally:
        for c in calls:
            c.close()
        assert srv.stop() == 0


def test_one_source_cannot_take_every_line(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, LONG_FLOW, sip_extra="max_calls_per_source = 4\nmedia_timeout_s = 30\n").start()
    calls = [RawCall(srv.sip_port, sdp(direction="inactive")) for _ in range(6)]
    try:
        codes = [c.invite() for c in calls]
        assert codes == [200] * 4 + [503] * 2, codes
        # Another address is still served while the first one is capped.
        report = run_phone(srv.uri, "--local-ip", "127.0.0.2", "--hangup-after", "0.5")
        assert report["connected"], report
    finally:
        for c in calls:
            c.close()
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()


def test_new_calls_per_second_are_capped_per_source(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, SHORT_FLOW, sip_extra="max_new_calls_per_source_per_s = 2\n").start()
    try:
        calls = [RawCall(srv.sip_port, sdp(direction="inactive")) for _ in range(10)]
        codes = [c.invite() for c in calls]  # a burst: the bucket holds 4
        for c in calls:
            c.close()
        assert codes.count(503) >= 5 and codes.count(200) >= 3, codes
        time.sleep(2.5)  # the bucket refills
        assert run_phone(srv.uri, "--hangup-after", "0.5")["connected"]
    finally:
        assert srv.stop() == 0


def test_session_timers_are_offered_to_callers_that_support_them(server: ServerProcess) -> None:
    peer = UdpPeer()
    try:
        peer.send(request("INVITE", server.sip_port, peer.port, body=sdp(),
                          extra=("Supported: timer", "Session-Expires: 120;refresher=uac", "Min-SE: 90")),
                  server.sip_port)
        reply = peer.final_response() or b""
        assert status(reply) == 200, reply
        assert (header(reply, "Session-Expires") or "").startswith("120"), reply
        assert "timer" in (header(reply, "Require") or ""), reply
        small = request("INVITE", server.sip_port, peer.port, body=sdp(),
                        extra=("Supported: timer", "Session-Expires: 30"))
        peer.send(small, server.sip_port)
        reply = peer.final_response() or b""
        assert status(reply) == 422 and header(reply, "Min-SE") == "90", reply  # RFC 4028: too small
    finally:
        peer.close()


def test_a_reinvite_with_an_unsafe_address_is_refused_and_the_call_goes_on(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, LONG_FLOW).start()
    try:
        call = RawCall(srv.sip_port, sdp())
        assert call.invite() == 200
        to = header(call.final or b"", "To") or ""
        tag = to.split("tag=", 1)[1].split(";")[0]
        bad = sdp().replace("c=IN IP4 127.0.0.1", "c=IN IP4 " + "a" * 200)
        call.peer.send(request("INVITE", srv.sip_port, call.peer.port, to_tag=tag, call_id=call.call_id, cseq=2,
                               from_header=call.from_header, body=bad), srv.sip_port)
        reply = call.peer.receive(lambda m: (status(m) or 0) >= 200 and b"2 INVITE" in m, 5.0)
        assert reply is not None and status(reply) == 488, reply
        assert srv.get("/healthz").json()["active_calls"] == 1  # the call is still up
        call.peer.send(request("BYE", srv.sip_port, call.peer.port, to_tag=tag, call_id=call.call_id, cseq=3,
                               from_header=call.from_header), srv.sip_port)
        assert status(call.peer.receive(lambda m: b"3 BYE" in m, 5.0) or b"") == 200
        call.close()
        assert_healthy(srv)
    finally:
        assert srv.stop() == 0
        assert "Traceback" not in srv.log()


def test_the_sip_tcp_listener_has_a_real_backlog(server: ServerProcess) -> None:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{server.sip_port}"], capture_output=True, text=True, check=True)
    [line] = out.stdout.splitlines()
    assert int(line.split()[2]) >= 128, line  # ss shows a listener's backlog as Send-Q (pjsip's default: 5)

"""Broken input gets the right SIP error or is dropped, is logged, and the server keeps answering."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.rawsip import GOOD_SDP, UdpPeer, invite
from tests.support.server import ROOT, ServerProcess, run_phone


def still_answers(server: ServerProcess) -> None:
    report = run_phone(server.uri, "--hangup-after", "0.3")
    assert report["connected"], report


@pytest.fixture
def peer() -> UdpPeer:
    p = UdpPeer()
    yield p  # type: ignore[misc]
    p.close()


def test_random_bytes_are_dropped_and_logged(short_server: ServerProcess, peer: UdpPeer) -> None:
    for _ in range(20):
        peer.send(os.urandom(300), short_server.sip_port)
    peer.send(b"INVITE this is not sip\r\n\r\n", short_server.sip_port)
    assert peer.final_status(timeout=1.0) is None  # nothing to answer
    still_answers(short_server)
    assert "Error processing" in short_server.log()


def test_invite_with_broken_sdp_gets_an_error(short_server: ServerProcess, peer: UdpPeer) -> None:
    broken = "v=0\r\no=garbage\r\nm=audio notaport RTP/AVP\r\n"
    peer.send(invite(short_server.sip_port, broken, peer.port), short_server.sip_port)
    status = peer.final_status()
    assert status is not None and 400 <= status < 500, status
    still_answers(short_server)


def test_truncated_invite_gets_400_or_is_dropped(short_server: ServerProcess, peer: UdpPeer) -> None:
    # Content-Length promises more body than the datagram carries.
    peer.send(invite(short_server.sip_port, GOOD_SDP[:40], peer.port, content_length=len(GOOD_SDP)),
              short_server.sip_port)
    status = peer.final_status(timeout=1.5)
    assert status in (None, 400), status
    # Cut in the middle of the headers.
    peer.send(invite(short_server.sip_port, GOOD_SDP, peer.port)[:90], short_server.sip_port)
    assert peer.final_status(timeout=1.0) in (None, 400)
    still_answers(short_server)


def test_oversized_messages_are_dropped_and_logged(short_server: ServerProcess, peer: UdpPeer) -> None:
    # The largest possible UDP datagram, all junk after a request line.
    peer.send(b"INVITE sip:ivr@127.0.0.1 SIP/2.0\r\n" + os.urandom(65000), short_server.sip_port)
    assert peer.final_status(timeout=1.0) in (None, 400)
    # Over TCP: a message larger than the engine's 64 KiB limit overflows the receive buffer.
    pad = "".join(f"a=x-pad:{'y' * 70}\r\n" for _ in range(1000))  # ~80 kB of SDP
    with socket.create_connection(("127.0.0.1", short_server.sip_port), timeout=3) as tcp:
        try:
            tcp.sendall(invite(short_server.sip_port, GOOD_SDP + pad, peer.port))
            tcp.settimeout(2.0)
            assert not tcp.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            pass  # the server may close the connection: that is fine
    still_answers(short_server)
    assert "ERXOVERFLOW" in short_server.log() or "overflow" in short_server.log().lower()


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def _one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("callcenter: error:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_data_dir_exits_2(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path)
    out = run_cli("serve", "--config", str(srv.config), "--data-dir", str(tmp_path / "nope"),
                  "--sip-port", str(free_port()), "--http-port", str(free_port()))
    _one_line_error(out, "data directory", "does not exist")


def test_unwritable_data_dir_exits_2(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    cmd = [sys.executable, "-m", "callcenter.cli", "serve", "--config", str(srv.config), "--data-dir", str(ro),
           "--sip-port", str(free_port()), "--http-port", str(free_port())]
    if os.geteuid() == 0:
        # Permission bits do not stop root: make the directory a read-only mount in a private namespace.
        script = f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && exec \"$@\""
        cmd = ["unshare", "--mount", "sh", "-c", script, "sh", *cmd]
    else:
        ro.chmod(0o500)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    _one_line_error(out, "not writable")


def test_sip_port_in_use_exits_2(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", srv.sip_port))
        out = run_cli("serve", "--config", str(srv.config), "--data-dir", str(srv.data_dir),
                      "--host", "127.0.0.1", "--sip-port", str(srv.sip_port), "--http-port", str(srv.http_port))
    _one_line_error(out, str(srv.sip_port))


def test_http_port_in_use_exits_2(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", srv.http_port))
        busy.listen()
        out = run_cli("serve", "--config", str(srv.config), "--data-dir", str(srv.data_dir),
                      "--host", "127.0.0.1", "--sip-port", str(srv.sip_port), "--http-port", str(srv.http_port))
    _one_line_error(out, "HTTP port", "in use")


@pytest.mark.parametrize(
    "config, words",
    [
        ("[server\nhost = 1", ("not valid TOML",)),
        ("[server]\nsip_port = 'five'\n", ("sip_port", "expected int")),
        ("[nonsense]\nx = 1\n", ("unknown table",)),
        ("[ivr]\ndefault_flow = 'missing.yaml'\n", ("missing.yaml",)),
    ],
)
def test_broken_config_exits_2(tmp_path: Path, config: str, words: tuple[str, ...]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(config)
    (tmp_path / "data").mkdir()
    out = run_cli("serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data"),
                  "--sip-port", str(free_port()), "--http-port", str(free_port()))
    _one_line_error(out, *words)


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    out = run_cli("serve", "--config", str(tmp_path / "absent.toml"))
    _one_line_error(out, "absent.toml")


def test_broken_flow_exits_2_with_file_and_line(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, "name: x\nstart: a\nnodes:\n  a:\n    type: dance\n")
    out = run_cli("serve", "--config", str(srv.config), "--data-dir", str(srv.data_dir),
                  "--sip-port", str(srv.sip_port), "--http-port", str(srv.http_port))
    _one_line_error(out, "flow.yaml:5:", "dance")

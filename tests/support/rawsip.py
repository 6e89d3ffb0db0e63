"""Hand-made SIP datagrams and streams, for feeding the server broken input."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable


def invite(port: int, sdp: str | None, local_port: int, content_length: int | None = None) -> bytes:
    body = sdp if sdp is not None else ""
    length = len(body.encode()) if content_length is None else content_length
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    lines = [
        f"INVITE sip:ivr@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport",
        f"From: <sip:raw@127.0.0.1:{local_port}>;tag={uuid.uuid4().hex[:8]}",
        f"To: <sip:ivr@127.0.0.1:{port}>",
        f"Call-ID: {uuid.uuid4()}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:raw@127.0.0.1:{local_port}>",
        "Max-Forwards: 70",
        "Content-Type: application/sdp",
        f"Content-Length: {length}",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


GOOD_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class UdpPeer:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3.0)
        self.port: int = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def receive(self, match: Callable[[bytes], bool], timeout: float = 3.0) -> bytes | None:
        """The first message received that ``match``es, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                return None
            if match(data):
                return data
        return None

    def final_response(self, timeout: float = 3.0) -> bytes | None:
        """The first final (non-1xx) response received, or None if none came back."""
        return self.receive(lambda m: (status(m) or 0) >= 200, timeout)

    def final_status(self, timeout: float = 3.0) -> int | None:
        """The first non-1xx status code received, or None if nothing final came back."""
        return status(self.final_response(timeout) or b"")

    def close(self) -> None:
        self.sock.close()


def request(method: str, port: int, local_port: int, *, uri: str | None = None, to_tag: str = "",
            extra: tuple[str, ...] = (), body: str = "", call_id: str | None = None, cseq: int = 1,
            from_header: str | None = None, transport: str = "UDP") -> bytes:
    """Any SIP request to the server on loopback (``uri`` defaults to sip:ivr@127.0.0.1:port)."""
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    lines = [
        f"{method} {uri or f'sip:ivr@127.0.0.1:{port}'} SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch={branch};rport",
        from_header or f"From: <sip:raw@127.0.0.1:{local_port}>;tag={uuid.uuid4().hex[:8]}",
        f"To: <sip:ivr@127.0.0.1:{port}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or uuid.uuid4()}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:raw@127.0.0.1:{local_port}>",
        "Max-Forwards: 70",
        *extra,
        *(["Content-Type: application/sdp"] if body else []),
        f"Content-Length: {len(body.encode())}",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def sdp(media_port: int = 49170, direction: str = "sendrecv", video_first: bool = False,
        codecs: tuple[int, ...] = (0,)) -> str:
    video = "m=video 49172 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" if video_first else ""
    fmts = " ".join(str(c) for c in codecs)
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + video
            + f"m=audio {media_port} RTP/AVP {fmts}\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n")


def header(msg: bytes, name: str) -> str | None:
    for line in msg.decode(errors="replace").split("\r\n")[1:]:
        if not line:
            break
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def status(msg: bytes) -> int | None:
    parts = msg.split(b" ", 2)
    return int(parts[1]) if msg.startswith(b"SIP/2.0 ") and len(parts) > 1 and parts[1].isdigit() else None


class RawCall:
    """One call placed by hand over UDP: INVITE, then ACK of the 200, answering the server's BYE.

    Sends no RTP at all (the far end of a dead or hostile phone)."""

    def __init__(self, port: int, body: str, from_header: str | None = None) -> None:
        self.peer = UdpPeer()
        self.port = port
        self.call_id = str(uuid.uuid4())
        self.from_header = from_header or f"From: <sip:raw@127.0.0.1:{self.peer.port}>;tag={uuid.uuid4().hex[:8]}"
        self.body = body
        self.final: bytes | None = None
        self.bye: bytes | None = None

    def invite(self, timeout: float = 5.0) -> int | None:
        self.peer.send(request("INVITE", self.port, self.peer.port, body=self.body, call_id=self.call_id,
                               from_header=self.from_header), self.port)
        self.final = self.peer.receive(lambda m: (status(m) or 0) >= 200, timeout)
        if self.final is None:
            return None
        code = status(self.final)
        to = header(self.final, "To") or ""
        tag = to.split("tag=", 1)[1].split(";")[0] if "tag=" in to else ""
        ack_via = header(self.final, "Via") or ""
        ack = (request("ACK", self.port, self.peer.port, to_tag=tag, call_id=self.call_id,
                       from_header=self.from_header) if code == 200 else self._ack_non2xx(ack_via, tag))
        self.peer.send(ack, self.port)
        return code

    def _ack_non2xx(self, via: str, tag: str) -> bytes:
        msg = request("ACK", self.port, self.peer.port, to_tag=tag, call_id=self.call_id,
                      from_header=self.from_header)
        lines = msg.split(b"\r\n")
        lines[1] = f"Via: {via}".encode()  # the INVITE's branch: the same transaction
        return b"\r\n".join(lines)

    def wait_bye(self, timeout: float) -> bytes | None:
        """Wait for the server's BYE (answering it 200); None if none came in time."""
        self.bye = self.peer.receive(lambda m: m.startswith(b"BYE "), timeout)
        if self.bye is not None:
            self.peer.send(_response_to(self.bye, 200, "OK"), self.port)
        return self.bye

    def close(self) -> None:
        self.peer.close()


def _response_to(req: bytes, code: int, reason: str) -> bytes:
    keep = [ln for ln in req.decode(errors="replace").split("\r\n")[1:]
            if ln.split(":", 1)[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
    return "\r\n".join([f"SIP/2.0 {code} {reason}", *keep, "Content-Length: 0", "", ""]).encode()

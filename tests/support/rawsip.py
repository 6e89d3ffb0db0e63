"""Hand-made SIP datagrams and streams, for feeding the server broken input."""

from __future__ import annotations

import socket
import uuid


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

    def final_status(self, timeout: float = 3.0) -> int | None:
        """The first non-1xx status code received, or None if nothing final came back."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data, _ = self.sock.recvfrom(65536)
                parts = data.split(b" ", 2)
                if data.startswith(b"SIP/2.0 ") and len(parts) > 1 and not parts[1].startswith(b"1"):
                    return int(parts[1])
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()

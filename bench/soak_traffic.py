"""The traffic bench/soak.py drives, all on loopback: SIPp runs, the fake gateway and the raw junk.

* ``Sipp``: one SIPp process running one scenario (a call count, a rate, a concurrency limit)
  against the server, with its -trace_stat CSV read back while it runs;
* ``FakeGateway``: a UDP socket standing in for a SIP trunk. uac_refer.xml asks the server to
  transfer callers to it; it counts the INVITEs that reach it (there must be none). By default it
  answers nothing, like an unreachable trunk (the server's INVITE times out after 32 s); with
  ``decline`` it answers 603 at once;
* ``Junk``: a thread that sends random mutations of a valid INVITE (seeded ``random.Random``)
  at a low rate, counts the responses by status, and hangs up (ACK, BYE) any call a mutation
  happened to set up, so that nothing it does stays open in the server.
"""

from __future__ import annotations

import contextlib
import csv
import random
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from localhost import HOST, child_setup, free_media_port, free_udp_port


# -- SIPp ---------------------------------------------------------------------------------------------------
class Sipp:
    """One SIPp run of `scenario`: `calls` calls at `rate` per second, at most `limit` at a time."""

    def __init__(self, name: str, scenario: Path, server_port: int, calls: int, rate: float, limit: int,
                 work: Path, ports: set[int], extra: list[str] | None = None, max_call_s: float = 60.0) -> None:
        self.name = name
        self.calls = calls
        self.work = work / name
        self.work.mkdir(parents=True, exist_ok=True)
        self.stat = self.work / "stat.csv"
        self.errors = self.work / "errors.log"
        # -r N is N calls per second; below 1/s, one call every -rp milliseconds.
        pace = ["-r", f"{rate:g}"] if rate >= 1 else ["-r", "1", "-rp", str(max(1, round(1000 / rate)))]
        self.timeout_s = calls / rate * 1.3 + max_call_s + 60
        self.cmd = ["sipp", "-sf", str(scenario), "-s", "ivr", f"{HOST}:{server_port}", "-i", HOST,
                    "-p", str(free_udp_port(ports)), "-mp", str(free_media_port(ports)),
                    "-m", str(calls), "-l", str(limit), *pace,
                    "-timeout", f"{self.timeout_s:.0f}s", "-timeout_error", "-nostdin",
                    "-trace_stat", "-stf", str(self.stat), "-fd", "2",
                    "-trace_err", "-error_file", str(self.errors), "-max_log_size", "20000000", *(extra or [])]
        (self.work / "command.txt").write_text(" ".join(self.cmd) + "\n")
        self.started = time.monotonic()
        with (self.work / "sipp.out").open("wb") as out:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                self.cmd, cwd=self.work, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                preexec_fn=child_setup, start_new_session=True)

    def running(self) -> bool:
        return self.proc.poll() is None

    def overdue(self) -> bool:
        return self.running() and time.monotonic() - self.started > self.timeout_s + 30

    def stats(self) -> dict[str, str]:
        """The last row of SIPp's statistics CSV (cumulative counters end in "(C)"), {} if none yet."""
        try:
            with self.stat.open(newline="", errors="replace") as f:
                rows = [r for r in csv.reader(f, delimiter=";") if r]
        except OSError:
            return {}
        return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}

    def counts(self) -> tuple[int, int, int]:
        """(attempted, successful, failed) so far."""
        row = self.stats()

        def n(key: str) -> int:
            v = row.get(key, "0")
            return int(v) if v.isdigit() else 0

        return n("OutgoingCall(C)"), n("SuccessfulCall(C)"), n("FailedCall(C)")

    def failure_kinds(self) -> dict[str, int]:
        row = self.stats()
        return {k[6:-3]: int(v) for k, v in row.items() if k.startswith("Failed") and k.endswith("(C)")
                and k != "FailedCall(C)" and v.isdigit() and int(v)}

    def unexpected(self) -> dict[int, int]:
        """Responses that failed calls as unexpected messages, by status code (from -trace_err)."""
        try:
            with self.errors.open("rb") as f:
                text = f.read(20_000_000).decode(errors="replace")
        except OSError:
            return {}
        return dict(sorted(Counter(int(c) for c in re.findall(r"received 'SIP/2\.0 (\d{3})", text)).items()))

    def stop(self) -> int | None:
        """Stop it if it still runs (SIGTERM, then SIGKILL); its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# -- raw SIP ----------------------------------------------------------------------------------------------
def parse(data: bytes) -> tuple[str, dict[str, str]]:
    """(first line, {lower-case header name: first value}) of a SIP message; ("", {}) if it is not one."""
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return (head[0], headers) if head and head[0] else ("", {})


def response(headers: dict[str, str], code: int, reason: str) -> bytes:
    lines = [f"SIP/2.0 {code} {reason}"] + [f"{h}: {headers[h.lower()]}" for h in ("Via", "From", "To", "Call-ID",
                                                                                     "CSeq") if h.lower() in headers]
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


class FakeGateway(threading.Thread):
    """Counts the INVITEs that reach it (and their Call-IDs); answers them 603 if `decline`."""

    def __init__(self, decline: bool = False) -> None:
        super().__init__(name="fake-gateway", daemon=True)
        self.decline = decline
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.invites = 0  # datagrams, retransmissions included
        self.call_ids: set[str] = set()
        self.first: str = ""  # the first INVITE's request line, for the report
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            line, headers = parse(data)
            if line.startswith("INVITE "):
                self.invites += 1
                self.call_ids.add(headers.get("call-id", ""))
                self.first = self.first or line
                if not self.decline:
                    continue
                with contextlib.suppress(OSError):
                    self.sock.sendto(response(headers, 603, "Decline"), addr)
            elif self.decline and line and not line.startswith(("SIP/2.0", "ACK ")):
                with contextlib.suppress(OSError):
                    self.sock.sendto(response(headers, 481, "Call/Transaction Does Not Exist"), addr)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.sock.close()


# -- junk datagrams -----------------------------------------------------------------------------------------
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {media} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


def valid_invite(rng: random.Random, server_port: int, local_port: int) -> bytes:
    tag = f"{rng.getrandbits(48):012x}"
    body = SDP.format(media=rng.randrange(6000, 10000, 2))
    lines = [f"INVITE sip:ivr@{HOST}:{server_port} SIP/2.0",
             f"Via: SIP/2.0/UDP {HOST}:{local_port};branch=z9hG4bK{tag}{rng.getrandbits(32):08x};rport",
             f"From: <sip:junk@{HOST}:{local_port}>;tag={tag}", f"To: <sip:ivr@{HOST}:{server_port}>",
             f"Call-ID: junk-{tag}@{HOST}", "CSeq: 1 INVITE", f"Contact: <sip:junk@{HOST}:{local_port}>",
             "Max-Forwards: 70", "Content-Type: application/sdp", f"Content-Length: {len(body)}", "", body]
    return "\r\n".join(lines).encode()


def mutate(rng: random.Random, msg: bytes) -> bytes:
    """One to three random changes to a SIP message: bytes flipped, cut, headers dropped,
    duplicated or bloated, bad lengths, junk inserted, a broken request line or line endings."""
    data = bytearray(msg)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(10)
        lines = bytes(data).split(b"\r\n")
        if kind == 0:  # flip a few bytes anywhere
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:  # cut it short
            del data[rng.randrange(1, len(data)):]
        elif kind == 2 and len(lines) > 2:  # drop a header line
            del lines[rng.randrange(1, len(lines) - 1)]
            data = bytearray(b"\r\n".join(lines))
        elif kind == 3 and len(lines) > 2:  # repeat a header line, maybe with another value
            i = rng.randrange(1, len(lines) - 1)
            other = lines[i].split(b":")[0] + b": " + rng.randbytes(12).hex().encode()
            lines.insert(i, lines[i] if rng.random() < 0.5 else other)
            data = bytearray(b"\r\n".join(lines))
        elif kind == 4:  # a Content-Length that lies
            value = rng.choice([b"-1", b"99999999", b"abc", b"", b"0", str(rng.randrange(1, 2000)).encode()])
            data = bytearray(b"\r\n".join(b"Content-Length: " + value if ln.lower().startswith(b"content-length")
                                          else ln for ln in lines))
        elif kind == 5:  # junk (NULs included) somewhere
            at = rng.randrange(len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind == 6:  # a broken request line
            lines[0] = rng.choice([b"INVITE", b"INVITE sip: SIP/2.0", b"INVITE sip:ivr@127.0.0.1 SIP/3.0",
                                   b"INV\x00ITE sip:ivr@127.0.0.1 SIP/2.0", b" " * 40, rng.randbytes(30)])
            data = bytearray(b"\r\n".join(lines))
        elif kind == 7 and len(lines) > 2:  # a very long header value
            i = rng.randrange(1, len(lines) - 1)
            lines[i] += b";x=" + b"A" * rng.randint(1000, 20000)
            data = bytearray(b"\r\n".join(lines))
        elif kind == 8:  # bare LF or CR line endings
            data = bytearray(bytes(data).replace(b"\r\n", rng.choice([b"\n", b"\r", b"\r\r\n"])))
        else:  # a broken SDP line
            body_at = bytes(data).find(b"\r\n\r\n")
            if body_at >= 0 and body_at + 4 < len(data):
                at = rng.randrange(body_at + 4, len(data))
                data[at:at + 8] = rng.choice([b"m=audio ", b"c=IN IP9", b"\x00\x00\x00\x00", b"a=rtpmap"])
    return bytes(data[:65000])


class Junk(threading.Thread):
    """Sends `count` mutated INVITEs, one every `period` seconds; counts what comes back."""

    def __init__(self, server_port: int, count: int, period: float, seed: int) -> None:
        super().__init__(name="junk", daemon=True)
        self.server_port = server_port
        self.count = count
        self.period = period
        self.rng = random.Random(seed)  # the mutations: the same for the same seed
        self._branches = random.Random(seed + 1)  # ACK and BYE branches (how many depends on answers)
        self._seen: set[str] = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.sent = 0
        self.answers: Counter[int] = Counter()  # final responses by status code
        self.hung_up = 0  # calls a mutation set up, ended here with ACK + BYE
        self._halt = threading.Event()

    def run(self) -> None:
        next_t = time.monotonic()
        deadline = next_t + self.count * self.period + 60
        while not self._halt.is_set() and time.monotonic() < deadline:
            if self.sent < self.count and time.monotonic() >= next_t:
                msg = mutate(self.rng, valid_invite(self.rng, self.server_port, self.port))
                with contextlib.suppress(OSError):
                    self.sock.sendto(msg, (HOST, self.server_port))
                self.sent += 1
                next_t += self.period
            elif self.sent >= self.count and time.monotonic() > next_t + 5:
                return  # five quiet seconds after the last one: done
            self._receive()

    def _receive(self) -> None:
        try:
            data, addr = self.sock.recvfrom(65536)
        except (TimeoutError, OSError):
            return
        line, headers = parse(data)
        parts = line.split(" ", 2)
        if line.startswith("SIP/2.0 ") and len(parts) > 1 and parts[1].isdigit():
            code = int(parts[1])
            call_id = headers.get("call-id", "")
            if code >= 200 and headers.get("cseq", "").endswith("INVITE") and call_id not in self._seen:
                self._seen.add(call_id)  # a retransmitted final response counts once
                self.answers[code] += 1
                if code < 300:
                    self._hang_up(headers, addr)
        elif line and not line.startswith("ACK "):
            with contextlib.suppress(OSError):
                self.sock.sendto(response(headers, 200, "OK"), addr)

    def _hang_up(self, headers: dict[str, str], addr: Any) -> None:
        """ACK the 200 of a call a mutation set up, then BYE it."""
        target = headers.get("contact", f"<sip:{HOST}:{self.server_port}>").split(">")[0].lstrip("<")
        seq = headers.get("cseq", "1").split()[0]
        for method, cseq in (("ACK", f"{seq} ACK"), ("BYE", f"{int(seq) + 1 if seq.isdigit() else 2} BYE")):
            branch = f"z9hG4bK{self._branches.getrandbits(64):016x}"
            msg = "\r\n".join([f"{method} {target} SIP/2.0", f"Via: SIP/2.0/UDP {HOST}:{self.port};branch={branch}",
                               f"From: {headers.get('from', '')}", f"To: {headers.get('to', '')}",
                               f"Call-ID: {headers.get('call-id', '')}", f"CSeq: {cseq}", "Max-Forwards: 70",
                               "Content-Length: 0", "", ""])
            with contextlib.suppress(OSError):
                self.sock.sendto(msg.encode(), addr)
        self.hung_up += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.sock.close()

"""WebRTC bridge benchmark: the latency the gateway adds, its CPU per bridged call, and gaps under load.

    .venv/bin/python bench/bridge.py [--calls 100] [--seconds 20] [--bursts 30]

Three processes besides SIPp, all on loopback:

* the gateway (``--serve``): voice.engine.Engine on uvloop, as ``callcenter serve`` runs it. It
  answers every SIP call, opens a bridge port for it, offers a voice.rtc.RtcPeer (G.711), runs
  a voice.rtc_bridge.RtcBridge on it and bridges the call with the port once the "browser"
  answered. Its CPU is what is measured (utime + stime from /proc over a window of wall time).
* the browsers (``--clients``): aiortc peers standing in for browsers (tests/support/rtc_client.py:
  real ICE and DTLS-SRTP), each saying a steady 1 kHz tone. They cost about what the gateway
  does, on the same cores. ``--nice N`` runs them and SIPp niced; but a starved stand-in sends
  its late frames in bursts (as no browser does), which the gateway's jitter buffer then drops:
  by default everything competes alike.
* this process: the driver, relaying SDP between the two, plus one measurement call: a SIP
  caller of its own (raw SIP over UDP and a raw RTP endpoint: exact send and arrival times) and a
  browser peer of its own. They take turns sending 100 ms tone bursts:

    SIP -> browser: the burst's first RTP packet leaves the caller's socket ... its onset arrives
      in an RTP packet at the browser's peer (decoded as it arrives);
    browser -> SIP: the browser's track hands aiortc the burst's first frame ... its onset
      arrives at the caller's RTP socket.

  Each is what the whole server side adds between the two wires: pjsua's jitter buffer on the
  SIP leg, the conference bridge, the gateway's buffers, aiortc and SRTP. Both ends use
  CLOCK_MONOTONIC in one process.

The other ``--calls - 1`` calls come from SIPp with ``-rtp_echo`` (bench/uac_tap.xml): it sends
back what it hears, so each load call carries the browser's tone to SIP and back, both ways
all the time. Gaps are the gateway's counters summed over every bridge, after a warm-up:
``underruns`` (a frame for the browser more than 60 ms late: silence sent instead),
``port underflows`` (the caller's ear ran dry: browser audio came too late), jitter-buffer
drops and trims, sender drops; and RTP sequence gaps seen by the browsers.

Targets (issue 11): under 100 ms added one way; 100 concurrent bridged calls on this 2-core
machine with no gaps. Results: bench/results/bridge.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

SELF = Path(__file__).resolve()
BENCH = SELF.parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
RATE, FRAME = 8000, 160
SCENARIO = BENCH / "uac_tap.xml"
GAP_KEYS = ("underruns", "port_underflows", "in_dropped", "in_trimmed", "out_dropped", "in_late")


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, summed by kind: the event loop (aiortc, the gateway),
    the SIP engine thread, pjmedia's media clock, aiortc's worker threads, the rest."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        f = (task / "stat").read_text().rsplit(")", 1)[1].split()
        name = names.get(int(task.name), (task / "comm").read_text().strip())
        kind = ("event loop" if name == "MainThread" else "sip engine" if name == "sip-engine"
                else "media clock" if name.startswith("media") or name.startswith("clock") else "other")
        out[kind] = out.get(kind, 0.0) + (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def lines(stream: asyncio.StreamReader) -> Any:
    while raw := await stream.readline():
        text = raw.decode().strip()
        if text.startswith("{"):
            yield json.loads(text)


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


# -- the gateway --------------------------------------------------------------------------------------
async def serve(args: argparse.Namespace) -> None:
    from voice.config import EngineConfig
    from voice.engine import Engine
    from voice.events import CallEnded, IncomingCall, MediaReady
    from voice.rtc import RtcPeer
    from voice.rtc_bridge import RtcBridge

    eng = Engine(EngineConfig(host=HOST, sip_port=args.sip_port, transports=("udp",), rtp_port=args.rtp_port,
                              rtp_port_range=4 * args.calls + 100, pjsip_log_level=1, trusted_peers=(f"{HOST}/32",),
                              max_calls=args.calls + 20))
    await eng.start()
    loop = asyncio.get_running_loop()
    ready: dict[int, asyncio.Event] = {}
    answers: dict[int, asyncio.Future[str]] = {}
    bridges: dict[int, tuple[int, RtcPeer, RtcBridge]] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def on_call(inc: IncomingCall) -> None:
        ev = ready.setdefault(inc.call, asyncio.Event())
        await eng.answer(inc.call)
        await ev.wait()
        port = await eng.open_port(label=f"browser for {inc.call}")
        peer = RtcPeer()
        bridge = RtcBridge(peer, eng.port_audio(port))
        bridges[inc.call] = (port, peer, bridge)
        answers[inc.call] = loop.create_future()
        emit({"type": "offer", "call": inc.call, "probe": "probe" in inc.caller, "sdp": await peer.offer()})
        await peer.accept_answer(await answers[inc.call])
        await eng.bridge(inc.call, port)
        emit({"type": "bridged", "call": inc.call, "codec": peer.codec})

    async def on_events() -> None:
        while True:
            ev = await eng.events.get()
            if isinstance(ev, IncomingCall):
                task = loop.create_task(on_call(ev))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif isinstance(ev, MediaReady):
                ready.setdefault(ev.call, asyncio.Event()).set()
            elif isinstance(ev, CallEnded) and ev.call in bridges:
                port, peer, bridge = bridges.pop(ev.call)
                await bridge.close()
                await peer.close()
                await eng.close_port(port)

    def stats() -> dict[str, Any]:
        all_stats = [b.stats() for _, _, b in bridges.values()]
        out: dict[str, Any] = {k: sum(getattr(s, k) for s in all_stats) for k in (*GAP_KEYS, "frames_out", "frames_in")}
        out["bridges"] = len(all_stats)
        out["threads"] = thread_cpu()
        out["codecs"] = sorted({s.codec for s in all_stats})
        out["buffered_ms_median"] = statistics.median([s.buffered_ms for s in all_stats]) if all_stats else 0
        out["target_ms_median"] = statistics.median([s.target_ms for s in all_stats]) if all_stats else 0
        out["per_bridge"] = {str(c): {k: getattr(b.stats(), k) for k in GAP_KEYS if getattr(b.stats(), k)}
                             for c, (_, _, b) in bridges.items()}
        return out

    events = loop.create_task(on_events())
    reader = await stdin_reader()
    emit({"type": "ready"})
    async for msg in lines(reader):
        kind = msg.get("type")
        if kind == "answer":
            fut = answers.get(msg["call"])
            if fut is not None and not fut.done():
                fut.set_result(msg["sdp"])
        elif kind == "stats":
            emit({"type": "stats", **stats()})
        elif kind == "hangup":
            for call in list(bridges):
                with contextlib.suppress(Exception):
                    await eng.hangup(call, 200)
            emit({"type": "hung_up"})
        elif kind == "quit":
            break
    events.cancel()
    for _, peer, bridge in bridges.values():
        await bridge.close()
        await peer.close()
    await eng.stop()
    emit({"type": "stopped"})


# -- the browsers -------------------------------------------------------------------------------------
async def clients(args: argparse.Namespace) -> None:
    from tests.support.rtc_client import BrowserPeer

    peers: dict[int, BrowserPeer] = {}
    reader = await stdin_reader()
    emit({"type": "ready"})
    async for msg in lines(reader):
        kind = msg.get("type")
        if kind == "offer":
            peer = peers[msg["call"]] = BrowserPeer(1000.0, inline=True, keep_audio=False)
            emit({"type": "answer", "call": msg["call"], "sdp": await peer.answer(msg["sdp"])})
        elif kind == "stats":
            emit({"type": "stats", "packets": sum(p.packets for p in peers.values()),
                  "lost": sum(p.lost for p in peers.values()), "peers": len(peers)})
        elif kind == "quit":
            break
    for peer in peers.values():
        await peer.close()
    emit({"type": "stopped"})


# -- the measurement call's SIP side: raw SIP and RTP -------------------------------------------------
class RtpEnd(asyncio.DatagramProtocol):
    """A caller's RTP: PCMU every 20 ms on its own clock (silence, or bursts), what it hears decoded."""

    def __init__(self) -> None:
        from tests.support.rtc_client import Onsets
        from voice import g711

        self.g711 = g711
        self.onsets = Onsets()
        self.sent: list[float] = []  # monotonic time each burst's first packet left
        self.remote: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: list[int] = []
        self._left = 0
        self._seq, self._ts, self._ssrc = random.randrange(65536), random.randrange(1 << 32), random.randrange(1 << 32)
        self._n = 0
        self._tone = (8000 * np.sin(2 * np.pi * 700 * np.arange(8000) / RATE)).astype(np.int16)
        self._silence = g711.encode(np.zeros(FRAME, dtype=np.int16))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        if len(data) < 12 or data[0] >> 6 != 2 or data[1] & 0x7F != 0:
            return
        head = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # header extension
            head += 4 + 4 * struct.unpack_from("!H", data, head + 2)[0]
        self.onsets.feed(self.g711.decode(data[head:]), now)

    def burst(self, seconds: float = 0.1) -> None:
        self._pending.append(int(seconds * RATE))

    async def run(self) -> None:
        start = time.monotonic()
        while True:
            self._n += 1
            await asyncio.sleep(max(0.0, start + self._n * FRAME / RATE - time.monotonic()))
            if self._left == 0 and self._pending:
                self._left = self._pending.pop(0)
                burst_at = time.monotonic()
                self.sent.append(burst_at)
            if self._left:
                n = min(FRAME, self._left)
                pcm = self._tone[:FRAME].copy()
                pcm[n:] = 0
                payload = self.g711.encode(pcm)
                self._left -= n
            else:
                payload = self._silence
            header = struct.pack("!BBHII", 0x80, 0, self._seq, self._ts, self._ssrc)
            self._seq = (self._seq + 1) & 0xFFFF
            self._ts = (self._ts + FRAME) & 0xFFFFFFFF
            if self.transport is not None and self.remote is not None:
                self.transport.sendto(header + payload, self.remote)


class SipCaller:
    """INVITE (PCMU), ACK, BYE over UDP: just enough SIP for one measurement call."""

    def __init__(self, sip_port: int, rtp_port: int) -> None:
        self.server = (HOST, sip_port)
        self.rtp_port = rtp_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.call_id, self.tag = f"{uuid.uuid4()}@bench", uuid.uuid4().hex[:8]
        self.to_tag = ""

    def _send(self, method: str, cseq: int, body: str = "") -> None:
        uri = f"sip:probe@{HOST}:{self.server[1]}"
        to = f"<{uri}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        branch = f"z9hG4bK{uuid.uuid4().hex[:12]}"
        lines_ = [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/UDP {HOST}:{self.port};branch={branch};rport",
                  f"From: <sip:probe@{HOST}:{self.port}>;tag={self.tag}", f"To: {to}", f"Call-ID: {self.call_id}",
                  f"CSeq: {cseq} {method}", f"Contact: <sip:probe@{HOST}:{self.port}>", "Max-Forwards: 70"]
        if body:
            lines_.append("Content-Type: application/sdp")
        lines_ += [f"Content-Length: {len(body.encode())}", "", body]
        self.sock.sendto("\r\n".join(lines_).encode(), self.server)

    async def _response(self, cseq_method: str, within: float = 10.0) -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), deadline - time.monotonic())
            except TimeoutError:
                break
            text = data.decode(errors="replace")
            m = re.match(r"SIP/2.0 (\d{3})", text)
            if m and re.search(rf"(?im)^CSeq:\s*\d+ {cseq_method}\b", text) and int(m.group(1)) >= 200:
                return int(m.group(1)), text
        raise RuntimeError(f"no final response to {cseq_method}")

    async def invite(self) -> tuple[str, int]:
        sdp = (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
               f"m=audio {self.rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n")
        self._send("INVITE", 1, sdp)
        code, text = await self._response("INVITE")
        if code != 200:
            raise RuntimeError(f"the probe call got {code}")
        tag = re.search(r"(?im)^To:.*;tag=([^;\s]+)", text)
        self.to_tag = tag.group(1) if tag else ""
        self._send("ACK", 1)
        port = re.search(r"(?m)^m=audio (\d+)", text)
        addr = re.search(r"(?m)^c=IN IP4 (\S+)", text)
        assert port and addr, text
        return addr.group(1), int(port.group(1))

    async def bye(self) -> None:
        self._send("BYE", 2)
        with contextlib.suppress(RuntimeError):
            await self._response("BYE", 5)
        self.sock.close()


# -- the driver ---------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_udp(lo: int, hi: int, step: int = 1) -> int:
    for port in range(lo, hi, step):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET,
                                                                                      socket.SOCK_DGRAM) as b:
                a.bind((HOST, port))
                b.bind((HOST, port + 2))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free UDP port in {lo}..{hi}")


def pair(sent: list[float], heard: list[float], window: float = 0.5) -> list[float]:
    """Latency of each sent burst: the first onset heard within ``window`` after it."""
    out = []
    for t in sent:
        later = [h - t for h in heard if 0 <= h - t < window]
        if later:
            out.append(min(later))
    return out


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ms = sorted(v * 1000 for v in values)
    return {"count": len(ms), "median_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1), "max_ms": round(ms[-1], 1)}


class Child:
    """A child process speaking JSON lines; messages of other types go to ``other``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.other: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for msg in lines(self.proc.stdout):
            (self.other if msg["type"] in ("offer", "answer", "bridged") else self.replies).put_nowait(msg)

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())

    async def ask(self, msg: dict[str, Any], within: float = 30.0) -> dict[str, Any]:
        self.send(msg)
        return await asyncio.wait_for(self.replies.get(), within)


async def run(args: argparse.Namespace) -> int:
    from tests.support.rtc_client import BrowserPeer

    work = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    sip_port, sipp_port = free_udp(25000, 26000), free_udp(26000, 27000)
    media_port = free_udp(6000, 9000, 4)
    probe_rtp = free_udp(9100, 9900, 2)
    me = [sys.executable, str(SELF)]
    pipe = asyncio.subprocess.PIPE
    server_log, clients_log = (work / "gateway.log").open("wb"), (work / "clients.log").open("wb")
    server = Child(await asyncio.create_subprocess_exec(
        *me, "--serve", "--sip-port", str(sip_port), "--rtp-port", "32000", "--calls", str(args.calls),
        stdin=pipe, stdout=pipe, stderr=server_log, limit=1 << 20))
    browsers = Child(await asyncio.create_subprocess_exec("nice", "-n", str(args.nice), *me, "--clients", stdin=pipe,
                                                          stdout=pipe,
                                                          stderr=clients_log, limit=1 << 20))
    await asyncio.wait_for(server.replies.get(), 30)
    await asyncio.wait_for(browsers.replies.get(), 30)
    probe_browser = BrowserPeer(1100.0, bursts=True, inline=True, keep_audio=False)
    bridged: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()

    async def relay() -> None:
        while True:
            get_s = loop.create_task(server.other.get())
            get_b = loop.create_task(browsers.other.get())
            done, pending = await asyncio.wait({get_s, get_b}, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in done:
                msg = t.result()
                if msg["type"] == "bridged":
                    bridged.append(msg)
                elif msg["type"] == "offer" and msg["probe"]:
                    server.send({"type": "answer", "call": msg["call"], "sdp": await probe_browser.answer(msg["sdp"])})
                elif msg["type"] == "offer":
                    browsers.send(msg)
                elif msg["type"] == "answer":
                    server.send(msg)

    relay_task = loop.create_task(relay())
    rtp_transport, rtp = await loop.create_datagram_endpoint(RtpEnd, local_addr=(HOST, probe_rtp))
    caller = SipCaller(sip_port, probe_rtp)
    sipp: asyncio.subprocess.Process | None = None
    try:
        rtp.remote = await caller.invite()
        rtp_task = loop.create_task(rtp.run())
        if args.calls > 1:
            sipp = await asyncio.create_subprocess_exec(
                "nice", "-n", str(args.nice), "sipp", "-sf", str(SCENARIO), "-s", "load", f"{HOST}:{sip_port}",
                "-i", HOST, "-p", str(sipp_port),
                "-mp", str(media_port), "-rtp_echo", "-m", str(args.calls - 1), "-l", str(args.calls - 1),
                "-r", "10", "-nostdin", "-timeout", f"{args.seconds + 300}s", "-timeout_error",
                cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60 + args.calls * 0.3
        while len(bridged) < args.calls:
            if time.monotonic() > deadline or (sipp is not None and sipp.returncode is not None):
                raise RuntimeError(f"only {len(bridged)} of {args.calls} calls were bridged")
            await asyncio.sleep(0.2)
        print(f"{args.calls} calls bridged ({', '.join(sorted({b['codec'] for b in bridged}))}); warming up",
              flush=True)
        await asyncio.sleep(args.warmup)
        before = await server.ask({"type": "stats"})
        clients_before = await browsers.ask({"type": "stats"})
        pid = server.proc.pid
        c0, t0 = cpu_seconds(pid), time.monotonic()
        b0 = cpu_seconds(browsers.proc.pid)
        rtp.sent.clear()
        probe_browser.source.sent.clear()
        period = args.seconds / max(1, args.bursts)
        for i in range(args.bursts):  # take turns: the caller, then the browser
            (rtp.burst if i % 2 == 0 else probe_browser.source.burst)()
            await asyncio.sleep(period * random.uniform(0.8, 1.2))
        await asyncio.sleep(max(0.0, t0 + args.seconds - time.monotonic()) + 0.6)
        wall = time.monotonic() - t0
        cores = (cpu_seconds(pid) - c0) / wall
        browser_cores = (cpu_seconds(browsers.proc.pid) - b0) / wall
        after = await server.ask({"type": "stats"})
        clients_after = await browsers.ask({"type": "stats"})
        sip_to_browser = pair(rtp.sent, probe_browser.onsets.times)
        browser_to_sip = pair(probe_browser.source.sent, rtp.onsets.times)
        await server.ask({"type": "hangup"}, 60)
        rtp_task.cancel()
    finally:
        relay_task.cancel()
        with contextlib.suppress(Exception):
            await caller.bye()
        rtp_transport.close()
        await probe_browser.close()
        with contextlib.suppress(Exception):
            await server.ask({"type": "quit"}, 60)
        with contextlib.suppress(Exception):
            await browsers.ask({"type": "quit"}, 60)
        for child in (server, browsers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(child.proc.wait(), 30)
            if child.proc.returncode is None:
                child.proc.kill()
            child.task.cancel()
        if sipp is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sipp.wait(), 30)
            if sipp.returncode is None:
                sipp.kill()
                await sipp.wait()

    gaps = {k: after[k] - before[k] for k in GAP_KEYS}
    gap_calls = {c: v for c, v in after["per_bridge"].items() if v != before["per_bridge"].get(c, {})}
    result = {
        "calls": args.calls, "seconds": args.seconds, "codecs": after["codecs"], "bridges": after["bridges"],
        "sip_to_browser": summary(sip_to_browser), "browser_to_sip": summary(browser_to_sip),
        "gateway_cores": round(cores, 3), "cpu_percent_per_call": round(100 * cores / args.calls, 2),
        "gateway_cores_by_thread": {k: round((after["threads"][k] - before["threads"].get(k, 0)) / args.seconds, 3)
                                    for k in after["threads"]},
        "stand_in_browsers_cores": round(browser_cores, 3),
        "gaps": gaps, "calls_with_gaps": len(gap_calls),
        "frames": {"to_browsers": after["frames_out"] - before["frames_out"],
                   "from_browsers": after["frames_in"] - before["frames_in"]},
        "browser_rtp": {"packets": clients_after["packets"] - clients_before["packets"],
                        "lost": clients_after["lost"] - clients_before["lost"]},
        "jitter_buffered_ms_median": after["buffered_ms_median"],
        "jitter_target_ms_median": after["target_ms_median"],
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "nice": args.nice},
    }
    out = BENCH / "results" / "bridge.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    s2b, b2s = result["sip_to_browser"], result["browser_to_sip"]
    print(f"one-way latency added, SIP -> browser: median {s2b.get('median_ms')} ms, p95 {s2b.get('p95_ms')} ms "
          f"({s2b['count']} bursts)")
    print(f"one-way latency added, browser -> SIP: median {b2s.get('median_ms')} ms, p95 {b2s.get('p95_ms')} ms "
          f"({b2s['count']} bursts)")
    print(f"gateway CPU: {100 * cores:.1f} % of a core for {args.calls} bridged calls = "
          f"{result['cpu_percent_per_call']} % per call")
    print(f"  by thread (cores): {result['gateway_cores_by_thread']}; the stand-in browsers: "
          f"{100 * browser_cores:.1f} % of a core")
    print(f"gaps over {args.seconds:g} s: {gaps} on {len(gap_calls)} call(s); "
          f"browser RTP lost {result['browser_rtp']['lost']} of {result['browser_rtp']['packets']}")
    print(f"results in {out.relative_to(ROOT)} (work files in {work})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--bursts", type=int, default=30, help="tone bursts in the window, half each way")
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness of the load generators (stand-in browsers, SIPp): they must not starve the gateway")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--clients", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sip-port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--rtp-port", type=int, default=32000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve or args.clients:
        import uvloop

        profile = os.environ.get("BRIDGE_BENCH_PROFILE") if args.serve else None
        if profile:  # a profile of the gateway's event loop thread (the engine thread is pjsua's C)
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args) if args.serve else clients(args))
        if profile:
            prof.disable()
            prof.dump_stats(profile)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

"""Tap benchmark: what live call audio in Python costs, and how late it is.

    .venv/bin/python bench/tap.py [--calls 200] [--chunk-ms 40] [--phase-s 15] [--rounds 2]
                                  [--readers each,group]

One engine process (``--serve``: voice.engine.Engine on uvloop, as ``callcenter serve`` runs
it; ``--asyncio-loop`` for asyncio's own loop) carries ``--calls`` concurrent calls:
``calls - 1`` from SIPp with ``-rtp_echo`` (each call hears a long WAV from the engine and
sends it back, so RTP flows both ways on every call, and the engine records each caller as
``callcenter serve`` does; ``--no-record`` to skip that) and one from a measurement phone
(``--phone``: pjsua2 with its own MediaTap) that exchanges tone bursts with the engine. Load
taps listen only (``--speak`` also connects their idle speak side).

On the SAME calls, each round measures windows of ``--phase-s`` seconds: no taps; a tap on
every call, each read by its own coroutine (``async for frame in tap``); no taps; a tap on
every call, all read by one ``TapGroup`` reader (``async for batch in group``); and a last
window without taps closes the run. CPU is the engine process's utime + stime
(/proc/PID/stat); each tapped window's baseline is the mean of the tap-less windows on either
side of it, so drift hits both sides alike (``--readers group`` measures only the TapGroup
windows: twice the rounds in the same time). Medians over the rounds are printed, per reader,
with a distribution-free 95 % confidence interval of the extra CPU's median from 6 rounds on:
a tap-less window alone varies by +-5-10 % on this kind of machine, so one round says little.

* extra CPU with taps: percent over the baseline, and CPU-milliseconds per call-minute;
* phone -> tap reader: from the phone's bridge taking the first sample of a tone burst (its
  MediaTap's speakStartedAt) to the engine's reader receiving the chunk with its onset;
* tap writer -> phone: from ``Tap.write_nowait`` of a burst on the engine to the phone's bridge
  delivering the frame with its onset (its MediaTap's read timestamps);
* the readers' delivery delay (receipt - time of the chunk's first sample), drop counters.

Targets: under 10 % extra CPU; under 60 ms each way (median). Results: bench/results/tap.json.
Loopback only; every child is stopped on exit. Both clocks are CLOCK_MONOTONIC (one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
RATE = 8000
BURST = (8000 * np.cos(2 * np.pi * 1000 * np.arange(800) / RATE)).astype(np.int16)  # 100 ms
ONSET_LEVEL, QUIET_S = 2000, 0.3
SCENARIO = BENCH / "uac_tap.xml"


class Onsets:
    """Finds tone-burst onsets in a stream of frames: a loud sample after QUIET_S of quiet."""

    def __init__(self) -> None:
        self.quiet = 0

    def feed(self, pcm: np.ndarray) -> int | None:
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > ONSET_LEVEL)
        if loud.size == 0:
            self.quiet += len(pcm)
            return None
        onset = int(loud[0]) if self.quiet + int(loud[0]) >= QUIET_S * RATE else None
        self.quiet = len(pcm) - 1 - int(loud[-1])
        return onset


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process (Python threads by name)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in Path("/proc/self/task").iterdir():
        f = (task / "stat").read_text().rsplit(")", 1)[1].split()
        name = names.get(int(task.name), (task / "comm").read_text().strip() + "-" + task.name)
        out[name] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


# -- the engine under test ---------------------------------------------------------------------
async def serve(args: argparse.Namespace) -> None:
    from voice.config import EngineConfig
    from voice.engine import Engine
    from voice.events import CallEnded, IncomingCall, MediaReady
    from voice.tap import Tap
    from voice.tap_group import TapGroup

    eng = Engine(EngineConfig(host=HOST, sip_port=args.sip_port, transports=("udp",), rtp_port=args.rtp_port,
                              rtp_port_range=4 * args.calls + 100, pjsip_log_level=1))
    await eng.start()
    media: set[int] = set()
    probe: list[int] = []  # the measurement phone's call
    taps: dict[int, Tap] = {}
    readers: list[asyncio.Task[Any]] = []
    groups: list[TapGroup] = []
    delays: list[float] = []
    heard_onsets: list[float] = []
    sent_bursts: list[float] = []

    async def on_events() -> None:
        while True:
            ev = await eng.events.get()
            if isinstance(ev, IncomingCall):
                if "probe" in ev.caller:
                    probe.append(ev.call)
                await eng.answer(ev.call)
            elif isinstance(ev, MediaReady):
                media.add(ev.call)
                if ev.call not in probe:
                    await eng.play(ev.call, args.wav)
                # As `callcenter serve` records every caller. The recorder also keeps the bridge
                # pulling the call's audio between tapped windows: a call nobody listens to is
                # not read, its jitter buffer fills, and a tap attached later starts ~0.5 s late.
                if args.rec_dir:
                    await eng.record(ev.call, f"{args.rec_dir}/{ev.call}.wav")
            elif isinstance(ev, CallEnded):
                media.discard(ev.call)

    async def read(tap: Tap) -> None:
        n = 0
        async for frame in tap:
            n += 1
            if n % 10 == 0:
                delays.append(time.monotonic() - frame.time)

    async def read_probe(tap: Tap) -> None:
        onsets = Onsets()
        async for frame in tap:
            received = time.monotonic()
            if onsets.feed(frame.pcm) is not None:
                heard_onsets.append(received)

    async def read_group(group: TapGroup, probe_tap: int) -> None:
        onsets, n, at, shape = Onsets(), 0, 0, -1
        async for batch in group:  # one batch per bridge tick, every tap of the group in it
            received = time.monotonic()
            n += 1
            rows = batch.rows
            if n % 10 == 0 and len(rows):
                delays.append(received - float(rows[0, 4]) * 1e-9)
            # The measurement's own cost kept small: in a batch like the last one the probe's
            # entry is where it was (the taps are handed over in the same order every tick).
            if len(rows) == shape and rows[at, 0] == probe_tap:
                hits = [at]
            else:
                hits = np.flatnonzero(rows[:, 0] == probe_tap).tolist()
                shape, at = (len(rows), hits[0]) if len(hits) == 1 else (-1, 0)
            for i in hits:
                start, length = int(rows[i, 1]), int(rows[i, 2])
                if onsets.feed(batch.pcm[start : start + length]) is not None:
                    heard_onsets.append(received)

    async def write_probe(tap: Tap) -> None:
        rng = random.Random(2)
        while not tap.closed:  # a burst every 0.8-1.2 s: onsets at every phase of the clocks
            await asyncio.sleep(rng.uniform(0.8, 1.2))
            sent_bursts.append(time.monotonic())
            tap.write_nowait(BURST)

    async def command(line: str) -> dict[str, Any]:
        if line == "status":
            return {"media": len(media)}
        if line == "threads":  # CPU seconds per thread, Python threads by name; the active pump's counters
            pump = groups[0]._pump if groups else eng._tap_pump
            return {**thread_cpu(), **({"pump passes": pump.passes, "pump records": pump.records} if pump else {})}
        if line in ("taps each", "taps group"):  # a reader per tap, or one TapGroup for all
            group = eng.tap_group(chunk_ms=args.chunk_ms) if line == "taps group" else None
            for call in sorted(media):
                speak = args.speak or call in probe
                tap = taps[call] = await eng.open_tap(call, chunk_ms=args.chunk_ms, speak=speak, group=group)
                if call in probe:
                    readers.append(asyncio.create_task(write_probe(tap)))
                    if group is not None:
                        readers.append(asyncio.create_task(read_group(group, tap.id)))
                    else:
                        readers.append(asyncio.create_task(read_probe(tap)))
                elif group is None:
                    readers.append(asyncio.create_task(read(tap)))
            if group is not None:
                groups.append(group)
            return {"taps": len(taps)}
        if line == "taps off":
            stats = [t.stats() for t in taps.values()]
            await asyncio.gather(*(t.close() for t in taps.values()))
            for group in groups:
                await group.close()
            await asyncio.gather(*readers)
            taps.clear()
            readers.clear()
            groups.clear()
            result = {
                "dropped": sum(s.dropped for s in stats),
                "frames_dropped": sum(s.frames_dropped for s in stats),
                "heard_samples": sum(s.heard for s in stats),
                "underflows": sum(s.underflows for s in stats),
                "delays": delays[:], "probe_heard": heard_onsets[:], "probe_sent": sent_bursts[:],
            }
            for kept in (delays, heard_onsets, sent_bursts):
                kept.clear()
            return result
        if line == "hangup":
            for call in list(media):
                with contextlib.suppress(Exception):
                    await eng.hangup(call, 200)
            return {"hung_up": True}
        return {"error": f"unknown command {line!r}"}

    events = asyncio.create_task(on_events())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := (await reader.readline()).decode().strip():
        if line == "quit":
            break
        print(json.dumps(await command(line)), flush=True)
    events.cancel()
    await eng.stop()
    print(json.dumps({"stopped": True}), flush=True)


# -- the measurement phone -----------------------------------------------------------------------
def phone(args: argparse.Namespace) -> None:
    import pjsua2 as pj

    class Call(pj.Call):  # type: ignore[misc]
        tap: Any = None
        state = 0

        def onCallState(self, prm: Any) -> None:
            self.state = self.getInfo().state

        def onCallMediaState(self, prm: Any) -> None:
            ci = self.getInfo()  # keep it alive: .media points into it
            for mi in ci.media:
                active = mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                if active and not self.tap:
                    am = self.getAudioMedia(mi.index)
                    self.tap = pj.MediaTap()
                    self.tap.createTap(RATE, 20, 2000)
                    am.startTransmit(self.tap)
                    self.tap.startTransmit(am)

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = RATE
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tcfg = pj.TransportConfig()
    tcfg.port, tcfg.boundAddress = 0, HOST
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:probe@{HOST}"
    acfg.mediaConfig.transportConfig.port = args.rtp_port
    acc = pj.Account()
    acc.create(acfg)
    call = Call(acc)
    call.makeCall(args.phone, pj.CallOpParam(True))
    sent: list[float] = []
    heard: list[float] = []
    buf = np.zeros(RATE, np.int16)
    onsets, stream, next_burst, started, pending = Onsets(), None, 0.0, 0.0, False
    rng = random.Random(1)
    while call.state != pj.PJSIP_INV_STATE_DISCONNECTED:
        ep.libHandleEvents(2)
        if call.tap is None:
            continue
        if stream is None:
            stream = call.tap.getStream()
            next_burst = time.monotonic() + 1.0
        now = time.monotonic()
        if now >= next_burst:  # a burst every 0.8-1.2 s; its send time is read once it plays
            started = stream.getStats().speakStartedAt
            stream.write(BURST)
            next_burst, pending = next_burst + rng.uniform(0.8, 1.2), True
        elif pending and started != (t := stream.getStats().speakStartedAt):
            sent.append(t)
            pending = False
        n = stream.read(buf, 160, 0)
        if n > 0:
            onset = onsets.feed(buf[:n])
            if onset is not None:  # the bridge delivers 20 ms frames: the onset's frame time
                heard.append(stream.lastReadTime() + (onset // 160) * 0.02)
    call.tap = None
    del call
    acc.shutdown()
    ep.libDestroy()
    print(json.dumps({"sent": sent, "heard": heard}), flush=True)


# -- the orchestrator ----------------------------------------------------------------------------
def free_udp(lo: int, hi: int, step: int = 1) -> int:
    for port in range(lo, hi, step):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind((HOST, port))
                b.bind((HOST, port + 2))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free UDP port in {lo}..{hi}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, cmd: list[str], log: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.ask("")  # the "ready" line

    def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        if line:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        while (out := self.proc.stdout.readline()) and not out.startswith(b"{"):
            pass  # pjlib prints a few lines on stdout before its log settings apply
        if not out:
            raise RuntimeError(f"the engine process died (exit {self.proc.poll()}): see {self.log.name}")
        return dict(json.loads(out))


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


def median_ci(values: list[float]) -> tuple[float, float] | None:
    """A distribution-free 95 % confidence interval of the median (order statistics), or None
    under 6 values: the k-th smallest and k-th largest, k the largest with P(Bin(n, 1/2) < k) <= 2.5 %."""
    n = len(values)
    if n < 6:
        return None
    k, below = 0, 0.0
    while below + math.comb(n, k) / 2**n <= 0.025:
        below += math.comb(n, k) / 2**n
        k += 1
    ordered = sorted(values)
    return ordered[max(k - 1, 0)], ordered[n - max(k, 1)]


def window(pid: int, seconds: float) -> float:
    """Cores used by ``pid`` over the next ``seconds``."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def run(args: argparse.Namespace) -> int:
    from voice.audio import Audio, write_wav

    work = Path(tempfile.mkdtemp(prefix="tap-bench-"))
    (work / "rec").mkdir()
    t = np.arange(int(RATE * 5)) / RATE  # a 5 s "voice": 300 Hz with a 3 Hz syllable rhythm
    voice = 6000 * np.sin(2 * np.pi * 300 * t) * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t))
    length = int((2 * len(args.readers) * args.rounds + 2) * (args.phase_s + 4)) + 60  # seconds of call
    write_wav(work / "load.wav", Audio(np.tile(voice.astype(np.int16), length // 5 + 1), RATE))
    sip_port, sipp_port = free_udp(25000, 26000), free_udp(26000, 27000)
    media_port = free_udp(6000, 9000, 4)
    me = [sys.executable, str(Path(__file__).resolve())]
    server = Server([*me, "--serve", "--sip-port", str(sip_port), "--rtp-port", "32000", "--calls",
                     str(args.calls), "--chunk-ms", str(args.chunk_ms), "--wav", str(work / "load.wav"),
                     *(["--speak"] if args.speak else []), *(["--asyncio-loop"] if args.asyncio_loop else []),
                     *([] if args.no_record else ["--rec-dir", str(work / "rec")])], work / "engine.log")
    children: list[subprocess.Popen[Any]] = [server.proc]
    try:
        probe = subprocess.Popen([*me, "--phone", f"sip:tap@{HOST}:{sip_port}", "--rtp-port", "42000"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        children.append(probe)
        sipp = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIO), "-s", "tap", f"{HOST}:{sip_port}", "-i", HOST,
             "-p", str(sipp_port), "-mp", str(media_port), "-rtp_echo",
             "-m", str(args.calls - 1), "-l", str(args.calls - 1), "-r", "40", "-nostdin",
             "-timeout", f"{length + 120}s", "-timeout_error"],
            cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(sipp)
        deadline = time.monotonic() + 60
        while (n := server.ask("status")["media"]) < args.calls:
            if time.monotonic() > deadline or sipp.poll() is not None:
                raise RuntimeError(f"only {n} of {args.calls} calls came up (SIPp exit {sipp.poll()})")
            time.sleep(0.5)
        names = {"each": "a reader per tap", "group": "one TapGroup reader"}
        print(f"{args.calls} calls up; {args.rounds} round(s) of {args.phase_s:g} s windows: no taps, "
              f"{', no taps, '.join(names[m] for m in args.readers)}; then no taps", flush=True)
        time.sleep(3)
        pid = server.proc.pid
        base_threads: list[dict[str, float]] = []

        def deltas(before: dict[str, float], after: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
            """What a window added: CPU seconds per thread, and the pump's counters."""
            d = {k: after[k] - before.get(k, 0) for k in after}
            return ({k: round(v, 2) for k, v in d.items() if not k.startswith("pump ")},
                    {k[5:]: v for k, v in d.items() if k.startswith("pump ")})

        def base_window() -> float:
            before = server.ask("threads")
            cores = window(pid, args.phase_s)
            base_threads.append(deltas(before, server.ask("threads"))[0])
            return cores

        bases: list[float] = [base_window()]
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.readers}
        for _ in range(args.rounds):
            for mode in args.readers:
                server.ask(f"taps {mode}")
                time.sleep(2)
                th0 = server.ask("threads")
                cores = window(pid, args.phase_s)
                th1 = server.ask("threads")
                res = server.ask("taps off")
                time.sleep(2)
                bases.append(base_window())
                threads, pump = deltas(th0, th1)
                runs[mode].append({"cores": cores, "base": (bases[-2] + bases[-1]) / 2, "res": res,
                                   "threads": threads, "pump": pump, "threads_before": base_threads[-2]})
        server.ask("hangup")
        sipp_rc = sipp.wait(60)
        phone_out = json.loads(probe.communicate(timeout=30)[0].decode().strip().splitlines()[-1])
        server.ask("quit")
        server_rc = server.proc.wait(30)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(work / "rec", ignore_errors=True)  # ~1 MB per call-minute

    result: dict[str, Any] = {
        "calls": args.calls, "chunk_ms": args.chunk_ms, "phase_s": args.phase_s, "rounds": args.rounds,
        "loop": "asyncio" if args.asyncio_loop else "uvloop",
        "load_taps_speak": args.speak, "load_calls_recorded": not args.no_record,
        "no_tap_windows_cores": [round(b, 4) for b in bases], "sipp_exit": sipp_rc, "engine_exit": server_rc,
    }
    print(f"engine CPU without taps, {args.calls} calls: "
          f"{statistics.median(bases) * 1000 * 60 / args.calls:.1f} CPU-ms per call-minute "
          f"(median of {len(bases)} windows: {', '.join(f'{b:.3f}' for b in bases)} cores)")
    for mode, title in (("each", "a reader per tap (async for frame in tap)"),
                        ("group", "one TapGroup reader for every tap (async for batch in group)")):
        if mode not in runs:
            continue
        rs = runs[mode]
        pcts = [100 * (r["cores"] - r["base"]) / r["base"] for r in rs]
        extra_ms = [1000 * (r["cores"] - r["base"]) * 60 / args.calls for r in rs]
        up = [x for r in rs for x in pair(phone_out["sent"], r["res"]["probe_heard"])]
        down = [x for r in rs for x in pair(r["res"]["probe_sent"], phone_out["heard"])]
        delays = [x for r in rs for x in r["res"]["delays"]]
        m = result[mode] = {
            "extra_cpu_pct": [round(p, 1) for p in pcts], "extra_cpu_pct_median": round(statistics.median(pcts), 1),
            "extra_cpu_ms_per_call_minute_median": round(statistics.median(extra_ms), 1),
            "phone_to_tap_reader": summary(up), "tap_writer_to_phone": summary(down),
            "reader_delivery_delay": summary(delays),
            "dropped_samples": sum(r["res"]["dropped"] for r in rs),
            "dropped_frames": sum(r["res"]["frames_dropped"] for r in rs),
            "thread_cpu_s": [r["threads"] for r in rs], "pump": [r["pump"] for r in rs],
        }
        ci = median_ci(pcts)
        m["extra_cpu_pct_median_ci95"] = [round(c, 1) for c in ci] if ci else None
        ok_cpu = m["extra_cpu_pct_median"] < 10
        ok_up = bool(up) and statistics.median(up) < 0.06
        ok_down = bool(down) and statistics.median(down) < 0.06
        print(f"\n{title}:")
        print(f"  extra CPU with a tap on every call: median {m['extra_cpu_pct_median']} % "
              f"({m['extra_cpu_ms_per_call_minute_median']} CPU-ms per call-minute"
              f"{f'; 95 % CI of the median {ci[0]:.1f} to {ci[1]:.1f} %' if ci else ''}; rounds: "
              f"{', '.join(f'{p:.1f} %' for p in pcts)})  target < 10 %: {'PASS' if ok_cpu else 'FAIL'}")
        for name, key, good in (("phone -> tap reader", "phone_to_tap_reader", ok_up),
                                ("tap writer -> phone", "tap_writer_to_phone", ok_down)):
            st = m[key]
            print(f"  {name}: median {st.get('median_ms')} ms, p95 {st.get('p95_ms')} ms, max {st.get('max_ms')} ms "
                  f"over {st['count']} bursts  target < 60 ms: {'PASS' if good else 'FAIL'}")
        d = m["reader_delivery_delay"]
        print(f"  reader delivery (bridge -> reader): median {d.get('median_ms')} ms, p95 {d.get('p95_ms')} ms; "
              f"dropped: {m['dropped_samples']} samples, {m['dropped_frames']} frames")
        pu = rs[-1]["pump"]
        print(f"  tap pump (last window): {pu.get('passes', 0) / args.phase_s:.1f} passes/s, "
              f"{pu.get('records', 0) / max(1, pu.get('passes', 0)):.0f} taps per pass")
        last = rs[-1]["threads"]
        before = rs[-1]["threads_before"]
        print("  engine threads, CPU s in the last window (and in the tap-less one before it):",
              ", ".join(f"{k} {v} ({before.get(k, 0)})" for k, v in last.items() if v > 0.01))
    out = BENCH / "results" / "tap.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nSIPp exit {sipp_rc}, engine exit {server_rc}; results in {out.relative_to(ROOT)}")
    return 0 if sipp_rc == 0 and server_rc == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--chunk-ms", type=int, default=40)
    ap.add_argument("--phase-s", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (no taps, reader per tap, no taps, TapGroup)")
    ap.add_argument("--readers", default="each,group",
                    type=lambda v: [m for m in ("each", "group") if m in v.split(",")],
                    help="which readers to measure: each (a coroutine per tap), group (one TapGroup), or both")
    ap.add_argument("--speak", action="store_true",
                    help="also connect every load tap's speak side to its call (idle: nothing written)")
    ap.add_argument("--asyncio-loop", action="store_true",
                    help="run the engine on asyncio's own loop instead of uvloop (as callcenter serve does)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--phone", help=argparse.SUPPRESS)
    ap.add_argument("--sip-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--rtp-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-record", action="store_true",
                    help="do not record the load calls (the server records every caller by default)")
    ap.add_argument("--wav", help=argparse.SUPPRESS)
    ap.add_argument("--rec-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.readers:
        ap.error("--readers: each, group or each,group")
    if args.serve:  # on the loop `callcenter serve` runs
        import uvloop

        with asyncio.Runner(loop_factory=None if args.asyncio_loop else uvloop.new_event_loop) as runner:
            runner.run(serve(args))
        return 0
    if args.phone:
        phone(args)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

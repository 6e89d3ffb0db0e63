"""Short calls: CPU per call of `callcenter serve` against the bare engine floor, in the same run.

    .venv/bin/python bench/capacity_short.py [--config bench/capacity.toml] [--key-ms 0]
        [--call-ms 2000] [--rate 100] [--seconds 60] [--rounds 3] [--profile profile.svg]

    welcome-only flow:  bench/capacity_short.py --name welcome
    demo flow + key:    bench/capacity_short.py --name demo --config bench/capacity_ivr.toml \
                            --key-ms 1000 --floor-key-prompt main

SIPp (bench/uac_capacity_dtmf.xml, -rtp_echo) places ``--rate`` calls per second for
``--seconds``; each caller is answered, echoes the RTP it hears, presses 1 by RFC 4733
``--key-ms`` after the ACK (0: no key), and hangs up ``--call-ms`` after the ACK. So calls in
progress settle at about rate x call length (200) and the per-call work (set-up, database rows,
tasks, flow start, teardown) dominates. The same load runs against the server (with ``--config``:
bench/capacity.toml, the welcome-only flow; bench/capacity_ivr.toml, the demo menu flow, where a
key press takes the call on to the language menu and the business-hours branch) and against the
engine floor (bench/bare_engine.py: answer, record, play the flow's first prompt and, with
``--floor-key-prompt NODE``, on the key stop it and play that node's prompt as the demo flow's
server does (its welcome barges into the main menu); no Python per call beyond pjsua2's
callbacks). Runs alternate between the two, ``--rounds`` times each, so
background load hits both alike.

CPU per call, from /proc/PID/stat (utime + stime, all threads), in two ways:

* steady (the figure): CPU-seconds over the steady window (from ``--skip`` seconds after SIPp
  starts until it stops placing calls) / calls answered in that window (SIPp's rtt trace);
* whole run: CPU-seconds from SIPp's start until every call ended plus ``--settle`` seconds
  (deferred work: group-committed writes, recording finish), minus the target's idle CPU over that
  time, / calls placed.

A run counts when SIPp reports zero failed calls and every call checks out: on the server each
call row closed as caller_hangup with a recording of at least half the call; on the floor a
recording of at least half the call. With a key, the calls whose key was not heard (no IVR_KEY
by rfc4733 in the server's events; fewer onDtmfDigit than calls on the floor) are counted and
printed ("no key"), not failed: this benchmark is about CPU (bench/capacity_ivr.py fails them).
Printed: medians over the rounds and the server/floor ratio (of the medians; also each round's).
Target: server <= 1.5 x floor. Results: bench/results/capacity_short[-NAME].json.

``--profile OUT`` adds one run per target, not counted, under py-spy (``py-spy record --threads``
into OUT-server and OUT-floor; OUT's suffix picks the format: .svg flame graph, .txt collapsed
stacks for bench/capacity_profile.py, .json speedscope). py-spy must be installed
(``.venv/bin/pip install py-spy``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from capacity import Bench, fmt, median, pctl
from capacity_ivr import sipp_times
from capacity_procs import (
    CONFIG,
    DTMF_SCENARIO,
    HZ,
    RESULTS,
    ROOT,
    Floor,
    Server,
    Sipp,
    Target,
    cpu_ticks,
    machine_ticks,
    prompt_text,
    udp_drops,
)
from localhost import HOST, say


@dataclass
class Run:
    target: str
    round: int
    calls: int
    sipp_exit: int | None = None
    successful: int = 0
    failed: int = 0
    sipp_failures: dict[str, int] = field(default_factory=dict)
    checked_ok: int = 0
    problems: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    drained: bool = True
    crashed: bool = False
    window_s: float = 0.0
    window_calls: int = 0
    cpu_ms_per_call: float | None = None        # steady window
    cpu_ms_per_call_total: float | None = None  # whole run, idle subtracted
    cores: float | None = None                  # steady window
    active_median: float | None = None
    peak_active: int = 0
    answer_rate: float | None = None
    setup_ms_p50: float | None = None
    setup_ms_p95: float | None = None
    sipp_cores: float | None = None
    machine_busy_pct: float | None = None
    duration_s: float = 0.0
    udp_drops: int = 0  # on the whole machine, during the run (full socket buffers)
    keys_missed: int = 0  # calls whose key the target did not hear (counted, not a failure here)

    @property
    def ok(self) -> bool:
        return (not self.crashed and self.sipp_exit == 0 and self.failed == 0 and self.successful == self.calls
                and self.checked_ok == self.calls and not self.problems and self.drained
                and self.cpu_ms_per_call is not None)


@dataclass
class Sample:
    t: float  # time.time()
    ticks: int
    active: int | None
    sipp_ticks: int | None
    busy: int
    total: int


def read_sipp(out: Path, run: Run) -> list[tuple[float, float]]:
    """SIPp's final counts into `run`; the calls' (answer time as time.time(), set-up ms)."""
    start = None
    try:
        lines = (out / "stat.csv").read_text(errors="replace").splitlines()
        head, first, last = lines[0].split(";"), lines[1].split(";"), lines[-1].split(";")
        row = dict(zip(head, last, strict=False))
        start = float(dict(zip(head, first, strict=False))["StartTime"].split("\t")[-1])
        run.successful = int(row.get("SuccessfulCall(C)", 0) or 0)
        run.failed = int(row.get("FailedCall(C)", 0) or 0)
        run.sipp_failures = {k[6:-3]: int(v) for k, v in row.items()
                             if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)"
                             and v.isdigit() and int(v)}
    except (OSError, IndexError, ValueError, KeyError):
        run.problems.append("no SIPp statistics")
    answered: list[tuple[float, float]] = []
    for path in out.glob("*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            with contextlib.suppress(ValueError, IndexError):
                answered.append(((start or 0.0) + float(parts[0]) / 1000, float(parts[1])))
    if run.failed and (out / "errors.log").exists():
        text = (out / "errors.log").read_text(errors="replace").strip().splitlines()
        run.problems.append(f"SIPp errors.log ({len(text)} lines), first: " + " | ".join(text[:6]))
    return sorted(answered) if start is not None else []


class ShortBench:
    def __init__(self, args: argparse.Namespace, bench: Bench, call_s: float) -> None:
        self.args = args
        self.bench = bench
        self.call_s = call_s

    def sample(self, target: Target, sipp_pid: int) -> Sample | None:
        ticks = cpu_ticks(target.pid)
        if ticks is None or not target.alive():
            return None
        busy, total = machine_ticks()
        return Sample(time.time(), ticks, target.active(), cpu_ticks(sipp_pid), busy, total)

    def run(self, target: Target, rnd: int, idle_cores: float, profile: Path | None = None) -> Run:
        a = self.args
        calls = int(round(a.rate * a.seconds))
        res = Run(target.name, rnd, calls)
        out = self.bench.work / f"{target.name}-{rnd}"
        mark = target.log_mark()
        t0, ticks0, drops0 = time.time(), cpu_ticks(target.pid) or 0, udp_drops()
        proc, timeout = self.bench.sipps.start(target, calls, a.limit, a.rate, self.call_s, out)
        spy = self._py_spy(target, profile) if profile else None
        samples: list[Sample] = []
        next_t = time.monotonic()
        while proc.poll() is None:
            if time.monotonic() >= next_t:
                next_t += a.sample_interval
                s = self.sample(target, proc.pid)
                if s is None:
                    res.crashed = True
                    break
                samples.append(s)
            if time.time() - t0 > timeout + 30:
                res.problems.append(f"SIPp still running {timeout + 30:.0f} s after it started; killed")
                break
            time.sleep(min(0.1, max(0.0, next_t - time.monotonic())))
        if proc.poll() is None:
            proc.kill()
        res.sipp_exit = self.bench.sipps.finish(proc)
        if not target.alive():
            res.crashed = True
            res.problems.append(f"the {target.name} process exited with {target.proc.returncode}")
        else:
            res.drained = self.bench.wait_idle(target, 30)
            if not res.drained:
                res.problems.append(f"{target.active()} calls still in progress 30 s after SIPp finished")
            time.sleep(a.settle)
        t1, ticks1 = time.time(), cpu_ticks(target.pid) or 0
        res.udp_drops = udp_drops() - drops0
        if spy is not None:
            self._py_spy_wait(spy, profile)
        res.duration_s = t1 - t0
        answered = read_sipp(out, res)
        if not res.crashed:
            missed = getattr(target, "keys_missed", 0)
            res.checked_ok, problems = target.check_calls(calls, self.call_s, self._evidence(res))
            res.problems += problems
            res.keys_missed = getattr(target, "keys_missed", 0) - missed
        res.log_problems = target.log_problems(mark)
        self._figures(res, samples, answered, t0, ticks1 - ticks0, t1 - t0, idle_cores)
        if not res.ok:
            self._keep_evidence(res, out)
        return res

    def _figures(self, res: Run, samples: list[Sample], answered: list[tuple[float, float]], t0: float,
                 ticks: int, elapsed: float, idle_cores: float) -> None:
        a = self.args
        setup = [ms for _, ms in answered]
        res.setup_ms_p50, res.setup_ms_p95 = median(setup), pctl(setup, 0.95)
        if len(answered) >= 10:
            first, last = answered[0][0], answered[-1][0]
            res.answer_rate = (len(answered) - 1) / (last - first) if last > first else None
        actives = [s.active for s in samples if s.active is not None]
        res.peak_active = max(actives, default=0)
        if answered:
            start = answered[0][0]  # SIPp's first answer: the window starts --skip seconds later
            lo, hi = start + a.skip, start + a.seconds - 1.0
            win = [s for s in samples if lo <= s.t <= hi]
            if len(win) >= 2 and win[-1].t - win[0].t >= 5:
                sa, sb = win[0], win[-1]
                n = sum(1 for t, _ in answered if sa.t <= t < sb.t)
                res.window_s, res.window_calls = sb.t - sa.t, n
                cpu = (sb.ticks - sa.ticks) / HZ
                res.cores = cpu / res.window_s
                res.cpu_ms_per_call = 1000 * cpu / n if n else None
                res.active_median = median([float(s.active) for s in win if s.active is not None])
                if sa.sipp_ticks is not None and sb.sipp_ticks is not None:
                    res.sipp_cores = (sb.sipp_ticks - sa.sipp_ticks) / HZ / res.window_s
                if sb.total > sa.total:
                    res.machine_busy_pct = 100 * (sb.busy - sa.busy) / (sb.total - sa.total)
            else:
                res.problems.append(f"no steady window: {len(win)} samples in {lo - t0:.0f}..{hi - t0:.0f} s")
        if res.calls:
            res.cpu_ms_per_call_total = 1000 * (ticks / HZ - idle_cores * elapsed) / res.calls

    @staticmethod
    def _evidence(res: Run) -> Path:
        dest = RESULTS / f"capacity-short-{res.target}-{res.round}"
        shutil.rmtree(dest, ignore_errors=True)
        return dest

    def _keep_evidence(self, res: Run, out: Path) -> None:
        dest = self._evidence(res)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("errors.log", "sipp.out", "stat.csv", "command.txt"):
            if (out / name).exists():
                shutil.copyfile(out / name, dest / name)
        (dest / "problems.txt").write_text("\n".join(res.problems + ["", "log:"] + res.log_problems) + "\n")
        res.problems.append(f"evidence kept in {dest.relative_to(ROOT)}")

    def _py_spy(self, target: Target, out: Path) -> subprocess.Popen[Any]:
        fmt_ = {".svg": "flamegraph", ".txt": "raw", ".json": "speedscope"}.get(out.suffix, "flamegraph")
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
        duration = int(self.args.seconds + 2)
        cmd = [exe, "record", "--pid", str(target.pid), "--threads", "--rate", str(self.args.profile_rate),
               "--duration", str(duration), "--format", fmt_, "--output", str(out),
               *(["--native"] if self.args.profile_native else ["--nonblocking"])]  # (--native pauses it)
        say(f"  py-spy: {' '.join(cmd)}")
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def _py_spy_wait(spy: subprocess.Popen[Any], out: Path | None) -> None:
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if spy.returncode != 0 or out is None or not out.exists():
            say(f"  py-spy failed ({spy.returncode}): {(err or '').strip()[-500:]}")
        else:
            say(f"  py-spy wrote {out}")


def describe(r: Run) -> str:
    verdict = "ok" if r.ok else "FAILED"
    return (f"{verdict}: {r.successful}/{r.calls} calls, {r.failed} failed, checked ok {r.checked_ok}; "
            f"CPU {fmt(r.cpu_ms_per_call, '.2f')} ms/call steady ({r.window_calls} calls in {r.window_s:.0f} s, "
            f"{fmt(r.cores, '.2f')} cores), {fmt(r.cpu_ms_per_call_total, '.2f')} ms/call whole run; "
            f"in progress {fmt(r.active_median, '.0f')} (peak {r.peak_active}); "
            f"answered {fmt(r.answer_rate, '.1f')}/s; setup p95 {fmt(r.setup_ms_p95, '.0f')} ms; "
            f"SIPp {fmt(r.sipp_cores, '.2f')} cores; machine busy {fmt(r.machine_busy_pct, '.0f')} %; "
            f"UDP drops {r.udp_drops}" + (f"; keys not heard {r.keys_missed}" if r.keys_missed else ""))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--config", type=Path, default=CONFIG, help="server config (its [ivr] default_flow answers)")
    p.add_argument("--key-ms", type=int, default=0, help="the caller presses 1 this long after the ACK (0: never)")
    p.add_argument("--call-ms", type=int, default=2000, help="the caller hangs up this long after the ACK")
    p.add_argument("--rate", type=float, default=100.0, help="SIPp call rate (calls/s)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long SIPp places calls, per run")
    p.add_argument("--rounds", type=int, default=3, help="runs per target (alternating)")
    p.add_argument("--limit", type=int, default=400, help="SIPp -l: a cap on calls in progress (never reached)")
    p.add_argument("--skip", type=float, default=10.0, help="seconds after the first answer before the window")
    p.add_argument("--settle", type=float, default=1.0, help="seconds after the last call ended, counted")
    p.add_argument("--sample-interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--no-floor", action="store_true", help="server only (no ratio)")
    p.add_argument("--floor-key-prompt", metavar="NODE",
                   help="on a key the floor stops its prompt and plays this flow node's prompt, as the server "
                        "does (demo flow: main)")
    p.add_argument("--target-ratio", type=float, default=1.5, help="target: server/floor CPU per call")
    p.add_argument("--profile", type=Path, help="one more run per target under py-spy, into OUT-TARGET.SUFFIX "
                                                "(.svg/.txt/.json)")
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--profile-native", action="store_true",
                   help="py-spy --native: C frames too (pauses the process at each sample)")
    p.add_argument("--name", default="", help="results go to bench/results/capacity_short[-NAME].json")
    args = p.parse_args(argv)
    if not 0 <= args.key_ms < args.call_ms:
        p.error("--key-ms must be >= 0 and before the hang-up (--call-ms)")
    if args.rate <= 0 or args.seconds < args.skip + 10 or args.rounds < 1:
        p.error("--rate must be > 0, --seconds at least --skip + 10, --rounds >= 1")
    if not args.config.exists():
        p.error(f"{args.config}: no such config")
    if shutil.which("sipp") is None:
        p.error("sipp is not installed")
    args.json = RESULTS / (f"capacity_short-{args.name}.json" if args.name else "capacity_short.json")
    args.calls_factor, args.plateau = 1.0, 0.95  # (capacity.Bench's step runner is not used here)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    call_s = args.call_ms / 1000

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in RESULTS.glob("capacity-short-*"):
        shutil.rmtree(old, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="callcenter-capacity-short-"))
    targets: list[Target] = []
    bench: Bench | None = None
    runs: list[Run] = []
    idle: dict[str, tuple[float, float]] = {}
    exits: dict[str, int | None] = {}
    interrupted = False
    key = f"key 1 at {args.key_ms} ms, " if args.key_ms else ""
    try:
        say(f"short calls: {args.config.name}, {args.rate:g} calls/s for {args.seconds:g} s, {key}"
            f"BYE at {args.call_ms} ms, {args.rounds} rounds; work dir {work}")
        bench = Bench(args, work)
        bench.sipps = Sipp(bench.ports, DTMF_SCENARIO, sipp_times(args.key_ms, args.call_ms - args.key_ms))
        bench.prompt_s = call_s
        server = Server(work, prompt_text(args.config, only=False), bench.ports, args.config,
                        caller_hangs_up=True, key="1" if args.key_ms else None, key_required=False)
        targets.append(server)
        say(f"server: pid {server.pid}, SIP udp {HOST}:{server.sip_port}, HTTP {server.http_port}")
        if not args.no_floor:
            prompt = work / "prompt.wav"
            shutil.copyfile(server.prompt, prompt)
            key_prompt = None
            if args.floor_key_prompt:
                key_prompt = work / "key-prompt.wav"
                shutil.copyfile(server.prompt_of(args.floor_key_prompt), key_prompt)
            targets.append(Floor(work, prompt, bench.ports, min_share=0.5, key=bool(args.key_ms),
                                 key_prompt=key_prompt))
            say(f"floor:  pid {targets[1].pid}, SIP udp {HOST}:{targets[1].sip_port} (bench/bare_engine.py)")
        say("warm-up: 20 calls against each ...")
        bench.warm_up(targets)
        for t in targets:
            idle[t.name] = bench.idle(t)
            say(f"  {t.name}: idle RSS {idle[t.name][0] / 1024:.1f} MiB, idle CPU {100 * idle[t.name][1]:.1f} %")
        short = ShortBench(args, bench, call_s)
        for rnd in range(1, args.rounds + 1):
            for t in targets if rnd % 2 else targets[::-1]:
                say(f"  [{t.name}] round {rnd} ...")
                r = short.run(t, rnd, idle[t.name][1])
                runs.append(r)
                say(f"  [{t.name}] round {rnd}: {describe(r)}")
                for line in r.problems[:6]:
                    say(f"      problem: {line}")
                for line in r.log_problems[:5]:
                    say(f"      log: {line[:240]}")
                if r.crashed:
                    raise RuntimeError(f"the {t.name} died")
        if args.profile is not None:
            for t in targets:
                out = args.profile.resolve()
                out = out.with_name(f"{out.stem}-{t.name}{out.suffix}")
                say(f"  [{t.name}] profiled run (not counted) ...")
                r = short.run(t, 0, idle[t.name][1], profile=out)
                say(f"  [{t.name}] profiled: {describe(r)}")
    except KeyboardInterrupt:
        interrupted = True
        say("\ninterrupted: stopping everything")
    finally:
        if bench is not None:
            bench.sipps.kill_all()
        for t in targets:
            exits[t.name] = t.stop()
            shutil.copyfile(t.log_path, RESULTS / f"capacity-short-{t.name}.log")
        shutil.rmtree(work, ignore_errors=True)
    if interrupted or not runs:
        return 130 if interrupted else 1
    return report(args, runs, idle, exits)


def report(args: argparse.Namespace, runs: list[Run], idle: dict[str, tuple[float, float]],
           exits: dict[str, int | None]) -> int:
    def med(name: str, attr: str) -> float | None:
        xs = [getattr(r, attr) for r in runs if r.target == name and r.ok and getattr(r, attr) is not None]
        return statistics.median(xs) if xs else None

    say(f"\nper run (CPU-ms per call; {args.rate:g} calls/s, {args.call_ms} ms calls)")
    say(f"  {'target':<7}{'round':>6}{'ok':>4}{'steady':>8}{'whole':>8}{'cores':>7}{'active':>7}{'setup p95':>10}"
        f"{'SIPp':>6}{'busy%':>6}{'no key':>7}")
    for r in runs:
        say(f"  {r.target:<7}{r.round:>6}{'yes' if r.ok else 'NO':>4}{fmt(r.cpu_ms_per_call, '.2f'):>8}"
            f"{fmt(r.cpu_ms_per_call_total, '.2f'):>8}{fmt(r.cores, '.2f'):>7}{fmt(r.active_median, '.0f'):>7}"
            f"{fmt(r.setup_ms_p95, '.0f', ' ms'):>10}{fmt(r.sipp_cores, '.2f'):>6}{fmt(r.machine_busy_pct, '.0f'):>6}"
            f"{r.keys_missed:>7}")
    srv, flo = med("server", "cpu_ms_per_call"), med("floor", "cpu_ms_per_call")
    srv_w, flo_w = med("server", "cpu_ms_per_call_total"), med("floor", "cpu_ms_per_call_total")
    ratio = srv / flo if srv and flo else None
    ratio_w = srv_w / flo_w if srv_w and flo_w else None
    rounds: list[float] = []
    for rnd in sorted({r.round for r in runs}):
        s = next((r for r in runs if r.target == "server" and r.round == rnd and r.ok), None)
        f = next((r for r in runs if r.target == "floor" and r.round == rnd and r.ok), None)
        if s and f and s.cpu_ms_per_call and f.cpu_ms_per_call:
            rounds.append(s.cpu_ms_per_call / f.cpu_ms_per_call)
    failed = [f"{r.target} round {r.round}" for r in runs if not r.ok]
    say(f"\nresults ({args.config.name}, {args.rounds} rounds, medians of the good runs)")
    say(f"  server : {fmt(srv, '.2f')} CPU-ms per call steady, {fmt(srv_w, '.2f')} whole run")
    say(f"  floor  : {fmt(flo, '.2f')} CPU-ms per call steady, {fmt(flo_w, '.2f')} whole run")
    say(f"  server / floor: x{fmt(ratio, '.2f')} steady (rounds: {', '.join(f'{x:.2f}' for x in rounds) or '-'}), "
        f"x{fmt(ratio_w, '.2f')} whole run")
    if failed:
        say(f"  runs not counted (failed): {', '.join(failed)}")
    cpu_ok = ratio is not None and ratio <= args.target_ratio
    all_ok = not failed
    say(f"\n{'PASS' if cpu_ok else 'FAIL'}  server CPU per short call <= {args.target_ratio:g} x engine floor: "
        f"x{fmt(ratio, '.2f')}")
    say(f"{'PASS' if all_ok else 'FAIL'}  every run with zero failed calls")
    clean = all(code == 0 for code in exits.values())
    say(f"{'ok' if clean else 'NOT OK'}    clean shutdown: " + ", ".join(f"{k} exit {v}" for k, v in exits.items()))
    doc = {
        "benchmark": "capacity_short",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                 "loadavg_after": os.getloadavg()},
        "settings": {"config": str(args.config), "rate": args.rate, "seconds": args.seconds, "call_ms": args.call_ms,
                     "key_ms": args.key_ms, "rounds": args.rounds, "skip_s": args.skip, "settle_s": args.settle,
                     "scenario": DTMF_SCENARIO.name},
        "idle": {k: {"rss_kb": v[0], "cpu_cores": v[1]} for k, v in idle.items()},
        "cpu_ms_per_call": {"server": srv, "floor": flo, "server_whole_run": srv_w, "floor_whole_run": flo_w},
        "ratio": {"steady": ratio, "whole_run": ratio_w, "per_round": rounds},
        "target": {"ratio": args.target_ratio, "pass": cpu_ok},
        "exit_codes": exits,
        "runs": [asdict(r) | {"ok": r.ok} for r in runs],
    }
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    say(f"\nwrote {args.json.relative_to(ROOT)}")
    return 0 if cpu_ok and all_ok and clean else 1


if __name__ == "__main__":
    raise SystemExit(main())

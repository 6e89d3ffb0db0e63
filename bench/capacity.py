"""Capacity benchmark: how many concurrent recorded IVR calls `callcenter serve` carries.

    .venv/bin/python bench/capacity.py [--steps 100,200,300,400,450] [--rate 40] [--calls-factor 2]

For each step N, SIPp (with ``-rtp_echo``, so every caller "speaks" the prompt back and the
server records caller audio) places ``factor * N`` calls at ``--rate`` calls per second with at
most N at a time (``-l N``). Every call hears the bench flow's prompt (bench/capacity_flow.yaml,
about 14 s) to its end and is hung up on by the server; the prompt is long enough that the
number of calls in progress reaches N and stays there while calls turn over. During that
plateau the benchmark samples, once a second, the process under test's CPU time and RSS
(/proc/PID/stat and /proc/PID/status) and its own count of calls in progress.

The same steps run against the engine floor, bench/bare_engine.py: a bare pjsua2 program with
the server's Endpoint settings that answers, records, plays the same prompt WAV and hangs up,
without asyncio, database or HTTP. Steps alternate between the two, so background load on the
machine hits both alike. Printed per target and as server/floor ratios:

* highest step with zero failed calls (SIPp failures, and every call completed with its
  recording checked);
* calls per second sustained: calls answered per second while the step ramped up to N;
* CPU per 100 calls: CPU-seconds per wall second per 100 calls in progress, in % of one core
  (median over the plateau's one-second intervals);
* RSS per call: (median plateau RSS - idle RSS after a warm-up) / median calls in progress.

Targets: >= 400 concurrent calls and 40 calls/s with zero failures (the answer rate may fall
short of --rate by --rate-tolerance, SIPp's pacing jitter), at no more than 2x the floor's CPU
per call. Results: bench/results/capacity.json; for a failed step, SIPp's logs, the list of
problems and a few of the bad recordings go to bench/results/capacity-TARGET-STEP/.

The default run takes about 7 minutes. Loopback only; temporary data directories; every child
process is stopped on exit or Ctrl-C. The server renders the prompt into its prompt cache at
start-up; the floor plays a copy of that WAV.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from capacity_checks import wav_seconds
from capacity_procs import (
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
)
from localhost import HOST, free_media_port, free_udp_port, rss_kb, say


# -- small helpers ----------------------------------------------------------------------------------
def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def pctl(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def fmt(x: float | None, spec: str = ".1f", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}"


# -- one step ---------------------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    ticks: int
    rss_kb: int
    active: int | None
    sipp_ticks: int | None
    machine_busy: int
    machine_total: int


@dataclass
class StepResult:
    target: str
    step: int
    calls: int
    rate: float
    sipp_exit: int | None = None
    successful: int = 0
    failed: int = 0
    sipp_failures: dict[str, int] = field(default_factory=dict)
    calls_checked_ok: int = 0
    problems: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    peak_active: int = 0
    plateau_s: float = 0.0
    plateau_active: float | None = None
    cpu_cores: float | None = None  # median over plateau intervals
    cpu_pct_per_100: float | None = None  # % of one core per 100 calls in progress (median)
    rss_plateau_kb: float | None = None
    rss_per_call_kb: float | None = None
    answer_rate: float | None = None  # calls answered per second while ramping up to the step
    setup_ms_p50: float | None = None
    setup_ms_p95: float | None = None
    sipp_cpu_cores: float | None = None
    machine_busy_pct: float | None = None
    duration_s: float = 0.0
    drained: bool = True
    crashed: bool = False

    @property
    def reached(self) -> bool:
        return self.peak_active >= 0.98 * self.step and self.plateau_s >= 2.0

    @property
    def ok(self) -> bool:
        return (not self.crashed and self.sipp_exit == 0 and self.failed == 0
                and self.successful == self.calls and self.calls_checked_ok == self.calls
                and not self.problems and self.drained and self.reached)


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.prompt_s = 0.0  # set once the server has rendered the prompt
        self.ports: set[int] = set()
        self.sipps = Sipp(self.ports)

    def wait_idle(self, target: Target, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if target.active() == 0:
                return True
            if not target.alive():
                return False
            time.sleep(0.25)
        return False

    def warm_up(self, targets: list[Target]) -> None:
        """A few calls first, so one-time costs (imports, pools, threads) are not counted per call."""
        procs = []
        for i, target in enumerate(targets):
            port = free_udp_port(self.ports) if i else self.sipps.port
            media = free_media_port(self.ports) if i else self.sipps.media_port
            procs.append(self.sipps.start(target, 20, 20, 20, self.prompt_s, self.work / f"warmup-{target.name}",
                                           port, media)[0])
        for proc, target in zip(procs, targets, strict=True):
            if self.sipps.finish(proc) != 0:
                say(f"  warning: warm-up calls against the {target.name} did not all succeed "
                    f"(see {self.work / f'warmup-{target.name}'})")
            self.wait_idle(target, 30)
            target.check_calls(20, self.prompt_s)  # not counted in the first step

    def idle(self, target: Target, seconds: float = 3.0) -> tuple[float, float]:
        """(median RSS in kB, CPU cores) of an idle target."""
        rss, t0, c0 = [], time.monotonic(), cpu_ticks(target.pid) or 0
        while time.monotonic() - t0 < seconds:
            rss.append(float(rss_kb(target.pid) or 0))
            time.sleep(0.25)
        cores = ((cpu_ticks(target.pid) or 0) - c0) / HZ / (time.monotonic() - t0)
        return statistics.median(rss), cores

    def run_step(self, target: Target, step: int, idle_rss: float) -> StepResult:
        calls = max(step, int(round(self.args.calls_factor * step)))
        res = StepResult(target=target.name, step=step, calls=calls, rate=self.args.rate)
        out = self.work / f"{target.name}-{step}"
        mark = target.log_mark()
        started = time.monotonic()
        proc, timeout = self.sipps.start(target, calls, step, self.args.rate, self.prompt_s, out)
        samples: list[Sample] = []
        next_t = time.monotonic()
        while proc.poll() is None:
            now = time.monotonic()
            if now >= next_t:
                next_t += self.args.sample_interval
                ticks, rss = cpu_ticks(target.pid), rss_kb(target.pid)
                if ticks is None or rss is None or not target.alive():
                    res.crashed = True
                    break
                busy, total = machine_ticks()
                samples.append(Sample(time.monotonic(), ticks, rss, target.active(), cpu_ticks(proc.pid),
                                      busy, total))
            if now - started > timeout + 30:
                res.problems.append(f"SIPp still running {timeout + 30:.0f} s after it started; killed")
                break
            time.sleep(min(0.1, max(0.0, next_t - time.monotonic())))
        if proc.poll() is None:
            proc.kill()
        res.sipp_exit = self.sipps.finish(proc)
        res.duration_s = time.monotonic() - started
        if not target.alive():
            res.crashed = True
            res.problems.append(f"the {target.name} process exited with {target.proc.returncode}")
        else:
            res.drained = self.wait_idle(target, 30)
            if not res.drained:
                res.problems.append(f"{target.active()} calls still in progress 30 s after SIPp finished")
        self._read_sipp(res, out)
        if not res.crashed:
            res.calls_checked_ok, problems = target.check_calls(calls, self.prompt_s, self._evidence(res))
            res.problems += problems
        res.log_problems = target.log_problems(mark)
        self._figures(res, samples, idle_rss)
        if not res.ok:
            self._keep_evidence(res, out, target)
        return res

    def _read_sipp(self, res: StepResult, out: Path) -> None:
        stat = out / "stat.csv"
        try:
            lines = stat.read_text(errors="replace").splitlines()
            head, last = lines[0].split(";"), lines[-1].split(";")
            row = dict(zip(head, last, strict=False))
            res.successful = int(row.get("SuccessfulCall(C)", 0) or 0)
            res.failed = int(row.get("FailedCall(C)", 0) or 0)
            res.sipp_failures = {k[6:-3]: int(v) for k, v in row.items()
                                 if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)"
                                 and v.isdigit() and int(v)}
        except (OSError, IndexError, ValueError):
            res.problems.append("no SIPp statistics")
        answered: list[tuple[float, float]] = []
        for path in out.glob("*_rtt.csv"):
            for line in path.read_text(errors="replace").splitlines()[1:]:
                parts = line.split(";")
                with contextlib.suppress(ValueError, IndexError):
                    answered.append((float(parts[0]), float(parts[1])))
        answered.sort()
        setup = [ms for _, ms in answered]
        res.setup_ms_p50, res.setup_ms_p95 = median(setup), pctl(setup, 0.95)
        ramp = [t for t, _ in answered[: res.step]]
        if len(ramp) >= 10 and ramp[-1] > ramp[0]:
            res.answer_rate = (len(ramp) - 1) / ((ramp[-1] - ramp[0]) / 1000)
        errors = out / "errors.log"
        if res.failed and errors.exists():
            text = errors.read_text(errors="replace").strip().splitlines()
            res.problems.append(f"SIPp errors.log ({len(text)} lines), first: " + " | ".join(text[:6]))

    def _figures(self, res: StepResult, samples: list[Sample], idle_rss: float) -> None:
        actives = [s.active for s in samples if s.active is not None]
        res.peak_active = max(actives, default=0)
        level = self.args.plateau * res.step
        on = [s for s in samples if s.active is not None and s.active >= level]
        cpu, cores, sipp, busy = [], [], [], []
        plateau_s = 0.0
        for a, b in zip(samples, samples[1:], strict=False):
            if a.active is None or b.active is None or min(a.active, b.active) < level:
                continue
            dt = b.t - a.t
            plateau_s += dt
            c = (b.ticks - a.ticks) / HZ / dt
            cores.append(c)
            cpu.append(100 * c / ((a.active + b.active) / 2) * 100)
            if a.sipp_ticks is not None and b.sipp_ticks is not None:
                sipp.append((b.sipp_ticks - a.sipp_ticks) / HZ / dt)
            if b.machine_total > a.machine_total:
                busy.append(100 * (b.machine_busy - a.machine_busy) / (b.machine_total - a.machine_total))
        res.plateau_s = plateau_s
        res.cpu_cores, res.cpu_pct_per_100 = median(cores), median(cpu)
        res.sipp_cpu_cores, res.machine_busy_pct = median(sipp), median(busy)
        if on:
            res.plateau_active = statistics.median([float(s.active or 0) for s in on])
            res.rss_plateau_kb = statistics.median([float(s.rss_kb) for s in on])
            res.rss_per_call_kb = (res.rss_plateau_kb - idle_rss) / res.plateau_active

    @staticmethod
    def _evidence(res: StepResult) -> Path:
        dest = RESULTS / f"capacity-{res.target}-{res.step}"
        shutil.rmtree(dest, ignore_errors=True)
        return dest

    def _keep_evidence(self, res: StepResult, out: Path, target: Target) -> None:
        dest = RESULTS / f"capacity-{res.target}-{res.step}"
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("errors.log", "sipp.out", "stat.csv", "command.txt"):
            if (out / name).exists():
                shutil.copyfile(out / name, dest / name)
        (dest / "problems.txt").write_text("\n".join(res.problems + ["", "log:"] + res.log_problems) + "\n")
        res.problems.append(f"evidence kept in {dest.relative_to(ROOT)}")



# -- report -------------------------------------------------------------------------------------------------
def describe(r: StepResult) -> str:
    verdict = "ok" if r.ok else "FAILED" if (r.failed or r.problems or r.crashed) else "not reached"
    return (f"{verdict}: {r.successful}/{r.calls} calls, {r.failed} failed, "
            f"recordings ok {r.calls_checked_ok}; "
            f"peak {r.peak_active}, plateau {r.plateau_s:.0f} s at {fmt(r.plateau_active, '.0f')}; "
            f"CPU {fmt(r.cpu_pct_per_100, '.2f')} %/100 calls ({fmt(r.cpu_cores, '.2f')} cores); "
            f"RSS {fmt(r.rss_per_call_kb, '.0f')} KiB/call; answered {fmt(r.answer_rate, '.1f')} calls/s; "
            f"setup p50 {fmt(r.setup_ms_p50, '.0f')} ms p95 {fmt(r.setup_ms_p95, '.0f')} ms; "
            f"SIPp {fmt(r.sipp_cpu_cores, '.2f')} cores; machine busy {fmt(r.machine_busy_pct, '.0f')} %; "
            f"{r.duration_s:.0f} s")


@dataclass
class Summary:
    target: str
    best_step: int | None
    calls_per_s: float | None
    cpu_pct_per_100: float | None
    rss_per_call_kb: float | None
    idle_rss_kb: float
    idle_cpu_cores: float
    failed_steps: list[int]


def summarize(name: str, results: list[StepResult], idle_rss: float, idle_cpu: float) -> Summary:
    mine = [r for r in results if r.target == name]
    good = [r for r in mine if r.ok]
    best = max(good, key=lambda r: r.step) if good else None
    return Summary(name, best.step if best else None, best.answer_rate if best else None,
                   best.cpu_pct_per_100 if best else None, best.rss_per_call_kb if best else None,
                   idle_rss, idle_cpu, [r.step for r in mine if not r.ok])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--steps", default="100,200,300,400,450", help="concurrent-call steps (comma-separated)")
    p.add_argument("--rate", type=float, default=40.0, help="SIPp call rate (calls/s)")
    p.add_argument("--calls-factor", type=float, default=2.0, help="calls placed per step = factor * step")
    p.add_argument("--plateau", type=float, default=0.95,
                   help="a sample is on the plateau when calls in progress >= this fraction of the step")
    p.add_argument("--sample-interval", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--no-floor", action="store_true", help="skip the bare-pjsua2 engine floor")
    p.add_argument("--target-calls", type=int, default=400, help="target: concurrent calls")
    p.add_argument("--target-rate", type=float, default=40.0, help="target: calls per second")
    p.add_argument("--rate-tolerance", type=float, default=0.01,
                   help="relative shortfall of the measured answer rate still counted as the target rate "
                        "(SIPp's pacing jitter)")
    p.add_argument("--target-cpu-ratio", type=float, default=2.0, help="target: server/floor CPU per call")
    p.add_argument("--budget", type=float, default=900, help="skip remaining steps after this many seconds")
    p.add_argument("--keep-temp", action="store_true", help="keep the temporary directory")
    p.add_argument("--json", type=Path, default=RESULTS / "capacity.json")
    args = p.parse_args(argv)
    steps = sorted({int(s) for s in args.steps.split(",") if s.strip()})
    if not steps or steps[-1] > 512:
        p.error("steps must be 1..512 (the engine is built for 512 calls)")
    if shutil.which("sipp") is None:
        p.error("sipp is not installed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        say(f"warning: RLIMIT_NOFILE hard limit {hard} < 4096: the server needs ~4 descriptors per call")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in [*RESULTS.glob("capacity-server-*"), *RESULTS.glob("capacity-floor-*")]:
        shutil.rmtree(old, ignore_errors=True)  # evidence of an earlier run's failed steps
    work = Path(tempfile.mkdtemp(prefix="callcenter-capacity-"))
    targets: list[Target] = []
    bench: Bench | None = None
    results: list[StepResult] = []
    exits: dict[str, int | None] = {}
    idle: dict[str, tuple[float, float]] = {}
    t_start = time.monotonic()
    interrupted = False
    prompt_s = 0.0
    try:
        say(f"capacity benchmark: steps {steps}, {args.rate:g} calls/s, {args.calls_factor:g} x step calls "
            f"per step, loopback, work dir {work}")
        text = prompt_text()
        bench = Bench(args, work)
        server = Server(work, text, bench.ports)
        targets.append(server)
        say(f"server: pid {server.pid}, SIP udp {HOST}:{server.sip_port}, HTTP {server.http_port}")
        prompt = work / "prompt.wav"  # the floor plays a copy of the prompt the server rendered
        shutil.copyfile(server.prompt, prompt)
        prompt_s = bench.prompt_s = wav_seconds(prompt)
        say(f"prompt: {prompt_s:.2f} s ({len(text.split())} words), from the server's prompt cache "
            f"(prompts/{server.prompt.name})")
        if args.rate * prompt_s < steps[-1]:
            say(f"warning: {args.rate:g} calls/s x {prompt_s:.1f} s prompt = {args.rate * prompt_s:.0f} "
                f"calls: the largest step ({steps[-1]}) cannot be reached")
        if not args.no_floor:
            floor = Floor(work, prompt, bench.ports)
            targets.append(floor)
            say(f"floor:  pid {floor.pid}, SIP udp {HOST}:{floor.sip_port} (bench/bare_engine.py)")
        cold = {t.name: rss_kb(t.pid) or 0 for t in targets}
        say("warm-up: 20 calls against each ...")
        bench.warm_up(targets)
        for t in targets:
            idle[t.name] = bench.idle(t)
            say(f"  {t.name}: idle RSS {idle[t.name][0] / 1024:.1f} MiB after warm-up "
                f"({cold[t.name] / 1024:.1f} MiB cold), idle CPU {100 * idle[t.name][1]:.1f} % of a core")
        est = sum(len(targets) * (-(-int(args.calls_factor * s) // s) * prompt_s + s / args.rate + 4)
                  for s in steps)
        say(f"running {len(steps)} steps x {len(targets)} targets, about {est / 60:.0f} min")
        dead: set[str] = set()
        consecutive_failures: dict[str, int] = {}
        for step in steps:
            for target in targets:
                if target.name in dead:
                    continue
                if time.monotonic() - t_start > args.budget:
                    say(f"  [{target.name}] step {step}: skipped (time budget of {args.budget:.0f} s used)")
                    continue
                say(f"  [{target.name}] step {step}: {int(args.calls_factor * step)} calls, -l {step}, "
                    f"-r {args.rate:g} ...")
                res = bench.run_step(target, step, idle[target.name][0])
                results.append(res)
                say(f"  [{target.name}] step {step}: {describe(res)}")
                for line in res.problems[:8]:
                    say(f"      problem: {line}")
                if res.log_problems:
                    say(f"      {len(res.log_problems)} warning/error lines in the {target.name} log, first:")
                    for line in res.log_problems[:5]:
                        say(f"        {line[:240]}")
                fails = 0 if res.ok else consecutive_failures.get(target.name, 0) + 1
                consecutive_failures[target.name] = fails
                if res.crashed or not target.alive():
                    dead.add(target.name)
                    say(f"  [{target.name}] died: no more steps for it")
                elif consecutive_failures[target.name] >= 2:
                    dead.add(target.name)
                    say(f"  [{target.name}] failed two steps in a row: no more steps for it")
    except KeyboardInterrupt:
        interrupted = True
        say("\ninterrupted: stopping everything")
    finally:
        if bench is not None:
            bench.sipps.kill_all()
        for t in targets:
            exits[t.name] = t.stop()
            after = shutil.copyfile(t.log_path, RESULTS / f"capacity-{t.name}.log")
            say(f"{t.name}: exit code {exits[t.name]} (log: {Path(after).relative_to(ROOT)})")
        if args.keep_temp:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted or not results:
        return 130 if interrupted else 1
    return report(args, results, idle, exits, prompt_s, time.monotonic() - t_start)


def report(args: argparse.Namespace, results: list[StepResult], idle: dict[str, tuple[float, float]],
           exits: dict[str, int | None], prompt_s: float, elapsed: float) -> int:
    summaries = {name: summarize(name, results, *idle[name]) for name in idle}
    srv, flo = summaries["server"], summaries.get("floor")
    say("\nper step (medians over the plateau's 1-s samples)")
    say(f"  {'target':<7}{'step':>5}{'ok':>4}{'failed':>7}{'peak':>6}{'plateau':>8}{'CPU%/100':>9}"
        f"{'cores':>7}{'KiB/call':>9}{'calls/s':>8}{'setup p95':>10}{'busy%':>6}")
    for r in sorted(results, key=lambda r: (r.step, r.target)):
        say(f"  {r.target:<7}{r.step:>5}{'yes' if r.ok else 'NO':>4}{r.failed:>7}{r.peak_active:>6}"
            f"{r.plateau_s:>7.0f}s{fmt(r.cpu_pct_per_100, '.2f'):>9}{fmt(r.cpu_cores, '.2f'):>7}"
            f"{fmt(r.rss_per_call_kb, '.0f'):>9}{fmt(r.answer_rate, '.1f'):>8}"
            f"{fmt(r.setup_ms_p95, '.0f', ' ms'):>10}{fmt(r.machine_busy_pct, '.0f'):>6}")

    # Ratios at the server's best step, or else the highest step both have plateau figures for.
    by = {(r.target, r.step): r for r in results}
    cmp_step = None
    if flo is not None:
        common = [s for (t, s), r in by.items() if t == "server" and r.cpu_pct_per_100 is not None
                  and by.get(("floor", s)) is not None and by[("floor", s)].cpu_pct_per_100 is not None]
        if srv.best_step in common:
            cmp_step = srv.best_step
        elif common:
            cmp_step = max(common)
    cpu_ratio = rss_ratio = None
    if cmp_step is not None:
        s, f = by[("server", cmp_step)], by[("floor", cmp_step)]
        if s.cpu_pct_per_100 and f.cpu_pct_per_100:
            cpu_ratio = s.cpu_pct_per_100 / f.cpu_pct_per_100
        if s.rss_per_call_kb and f.rss_per_call_kb:
            rss_ratio = s.rss_per_call_kb / f.rss_per_call_kb

    def line(label: str, s: Summary) -> None:
        say(f"  {label}")
        say(f"    highest step with zero failed calls : {s.best_step if s.best_step else 'none'}"
            + (f" (failed steps: {s.failed_steps})" if s.failed_steps else ""))
        say(f"    calls per second sustained          : {fmt(s.calls_per_s, '.1f')} "
            "(answered while ramping up to the step)")
        say(f"    CPU per 100 calls                   : {fmt(s.cpu_pct_per_100, '.2f')} % of one core")
        say(f"    RSS per call                        : {fmt(s.rss_per_call_kb, '.0f')} KiB "
            f"(idle RSS {s.idle_rss_kb / 1024:.1f} MiB)")

    say(f"\nresults ({elapsed / 60:.1f} min, prompt {prompt_s:.1f} s, {args.rate:g} calls/s offered)")
    line("callcenter serve", srv)
    if flo is not None:
        line("engine floor (bench/bare_engine.py)", flo)
        at = f"at step {cmp_step}" if cmp_step else "no common step"
        say(f"  server / floor {at}: CPU x{fmt(cpu_ratio, '.2f')}, RSS x{fmt(rss_ratio, '.2f')}")

    def verdict(ok: bool | None) -> str:
        return "PASS" if ok else "FAIL"

    rate_ok = srv.calls_per_s is not None and srv.calls_per_s >= args.target_rate * (1 - args.rate_tolerance)
    calls_ok = srv.best_step is not None and srv.best_step >= args.target_calls
    cpu_ok = cpu_ratio is not None and cpu_ratio <= args.target_cpu_ratio
    say("\ntargets")
    say(f"  {verdict(calls_ok)}  >= {args.target_calls} concurrent calls with zero failures: "
        f"{srv.best_step or 'none'}")
    say(f"  {verdict(rate_ok)}  >= {args.target_rate:g} calls/s with zero failures: "
        f"{fmt(srv.calls_per_s, '.1f')} (within {100 * args.rate_tolerance:g} % for SIPp's pacing)")
    say(f"  {verdict(cpu_ok)}  server CPU <= {args.target_cpu_ratio:g} x engine floor: "
        f"x{fmt(cpu_ratio, '.2f')}"
        + ("" if cmp_step == srv.best_step else f" (compared at step {cmp_step})"))
    clean = all(code == 0 for code in exits.values())
    codes = ", ".join(f"{k} exit {v}" for k, v in exits.items())
    say(f"  {'ok' if clean else 'NOT OK'}    clean shutdown: {codes}")
    passed = calls_ok and rate_ok and cpu_ok

    doc = {
        "benchmark": "capacity",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "python": platform.python_version()},
        "settings": {"steps": sorted({r.step for r in results}), "rate": args.rate,
                     "calls_factor": args.calls_factor, "plateau_fraction": args.plateau,
                     "prompt_seconds": round(prompt_s, 3), "sample_interval_s": args.sample_interval},
        "summary": {k: asdict(v) for k, v in summaries.items()},
        "ratios": {"step": cmp_step, "cpu": cpu_ratio, "rss": rss_ratio},
        "targets": {"concurrent_calls": {"target": args.target_calls, "value": srv.best_step,
                                         "pass": calls_ok},
                    "calls_per_s": {"target": args.target_rate, "value": srv.calls_per_s, "pass": rate_ok},
                    "cpu_ratio": {"target": args.target_cpu_ratio, "value": cpu_ratio, "pass": cpu_ok}},
        "exit_codes": exits,
        "steps": [asdict(r) | {"ok": r.ok, "reached": r.reached} for r in results],
        "elapsed_s": round(elapsed, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    say(f"\nwrote {args.json}")
    return 0 if passed and clean else 1


if __name__ == "__main__":
    raise SystemExit(main())

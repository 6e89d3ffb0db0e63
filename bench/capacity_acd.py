"""Capacity with agents: 100 bridged caller-agent calls through the ACD, both legs recorded, zero failed.

    .venv/bin/python bench/capacity_acd.py [--concurrent 100] [--calls 200] [--agents 120] [--rate 10]
                                           [--hold-ms 20000] [--ring-ms 500] [--wrap-up 1] [--cli-jobs 2]

A real `callcenter serve` (bench/capacity_acd.toml: every call runs bench/capacity_acd_flow.yaml,
whose queue node hands the caller to the ACD; post-call transcription off, so the figure is the
call path). ``--agents`` agents and the queue are configured with the CLI, as an operator would
(`callcenter queue add`, `callcenter agent add ID --uri sip:agentNNN@127.0.0.1:PORT --skills ...`,
`callcenter agent login ID`, through the running server's API with an admin token). Every agent's
URI points at one SIPp UAS (bench/capacity_acd_uas.xml): it answers any user after ``--ring-ms``
of ringing, echoes the RTP it gets (-rtp_echo) and holds the call until the server's BYE.

SIPp callers (bench/uac_capacity_dtmf.xml with no key: call, echo RTP, hang up ``--hold-ms``
after the ACK) place ``--calls`` calls at ``--rate`` per second, at most ``--concurrent`` at a time,
so bridged calls ramp up to about ``--concurrent`` and stay there while calls turn over (an
agent back from wrap-up takes the next caller). Each bridged call is two engine calls (the
caller's and the agent's leg; [sip] max_calls = 512 caps both together).

Checked and printed: calls offered / connected / failed by SIPp's own counts (callers and agents)
and by the server's events table (ENTERQUEUE, OFFER, CONNECT == calls, no RINGNOANSWER or
ABANDON); every call row with a caller and an agent recording on disk with the row's size and
SHA-256 and a sensible length, and its post-call rows (caller, agent, stereo); no agent on two
calls at once; peak concurrent bridged calls (from CONNECT .. COMPLETE* in the events table);
the server's CPU (median % of one core over the plateau's 1-s samples, and per 100 bridged
calls), RSS (plateau, and per bridged call over idle); the ACD's ENTERQUEUE -> OFFER (routing
decision), OFFER -> CONNECT (ring + answer) and ENTERQUEUE -> CONNECT (decision to bridge)
median and p95. A sample is on the plateau when bridged calls >= ``--plateau`` x ``--concurrent``.

Results: bench/results/capacity_acd.json; the server's log: bench/results/capacity-acd.log; on a
failure SIPp's logs go to bench/results/capacity-acd-evidence/. About 6 minutes on 2 cores,
two thirds of it the CLI configuring agents (243 commands of about a second each: Python's
start-up and imports per command).
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
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from capacity import fmt, median, pctl
from capacity_acd_checks import AcdCheck, bridged_now, check_run, last_call_rowid, open_db
from capacity_ivr import sipp_times
from capacity_procs import BENCH, DTMF_SCENARIO, HZ, RESULTS, ROOT, Sipp, Target, cpu_ticks, machine_ticks, udp_drops
from localhost import HOST, child_setup, free_media_port, free_tcp_port, free_udp_port, rss_kb, say

CONFIG = BENCH / "capacity_acd.toml"
UAS_SCENARIO = BENCH / "capacity_acd_uas.xml"
CALLCENTER = Path(sys.executable).parent / "callcenter"
EVIDENCE = RESULTS / "capacity-acd-evidence"


# -- the processes --------------------------------------------------------------------------------------
class AcdServer(Target):
    """`callcenter serve --config bench/capacity_acd.toml` on free ports with a temporary data dir."""

    name = "server"

    def __init__(self, work: Path, ports: set[int], config: Path) -> None:
        self.data_dir = work / "server-data"
        self.data_dir.mkdir()
        self.config = config
        self.sip_port = free_udp_port(ports)
        self.http_port = free_tcp_port(ports)
        self.url = f"http://{HOST}:{self.http_port}"
        self.log_path = work / "server.log"
        self.token = ""
        cmd = [str(CALLCENTER), "serve", "--config", str(config), "--data-dir", str(self.data_dir),
               "--sip-port", str(self.sip_port), "--http-port", str(self.http_port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=child_setup, start_new_session=True)
        deadline = time.monotonic() + 90
        while self.active() is None:
            if not self.alive():
                raise RuntimeError(f"the server exited with {self.proc.returncode} at start-up; "
                                   f"log:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /healthz within 90 s")
            time.sleep(0.3)

    def active(self) -> int | None:
        """Callers' calls in progress (the server's /healthz; agent legs are not counted there)."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                return int(json.load(r)["active_calls"])
        except (OSError, ValueError, KeyError):
            return None

    def is_problem(self, line: str) -> bool:
        return any(k in line for k in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback"))

    def get(self, path: str) -> Any:
        """GET an API route with the admin token; its JSON."""
        req = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def cli(self, *args: str, api: bool = True) -> subprocess.CompletedProcess[str]:
        """One `callcenter ...` command: through the running server's API with the admin token."""
        extra = ["--server", self.url] if api else []
        env = {**os.environ, "CALLCENTER_TOKEN": self.token} if self.token else dict(os.environ)
        return subprocess.run([str(CALLCENTER), *args, "--config", str(self.config), "--data-dir",
                               str(self.data_dir), *extra], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env=env)


class Uas:
    """The one SIPp UAS every agent's URI points at; one process per batch of calls (-m)."""

    def __init__(self, ports: set[int], ring_ms: int) -> None:
        self.port = free_udp_port(ports)
        self.media_port = free_media_port(ports)
        self.ring_ms = ring_ms
        self.proc: subprocess.Popen[Any] | None = None
        self.out: Path | None = None

    def start(self, out: Path, calls: int) -> None:
        out.mkdir(parents=True, exist_ok=True)
        cmd = ["sipp", "-sf", str(UAS_SCENARIO), "-i", HOST, "-p", str(self.port), "-mp", str(self.media_port),
               "-rtp_echo", "-m", str(calls), "-set", "ring_ms", str(self.ring_ms), "-nostdin",
               "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_err", "-error_file", "errors.log"]
        (out / "command.txt").write_text(" ".join(cmd) + "\n")
        with (out / "sipp.out").open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=out, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=child_setup, start_new_session=True)
        self.out = out
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"the agents' SIPp UAS exited at once: {(out / 'sipp.out').read_text()[-2000:]}")

    def stats(self) -> dict[str, str]:
        return sipp_stats(self.out / "stat.csv") if self.out else {}

    def finish(self, timeout: float) -> int | None:
        """Wait for it to have handled its -m calls (then it exits); kill it after ``timeout``."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def sipp_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp -trace_stat CSV as {column: value} ({} if there is none yet)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))


def count(row: dict[str, str], key: str) -> int:
    with contextlib.suppress(ValueError):
        return int(row.get(key, "0") or 0)
    return 0


def failures(row: dict[str, str]) -> dict[str, int]:
    return {k[6:-3]: int(v) for k, v in row.items() if k.startswith("Failed") and k.endswith("(C)")
            and k != "FailedCall(C)" and v.isdigit() and int(v)}


# -- configuring agents and the queue with the CLI ------------------------------------------------------------
def configure(server: AcdServer, args: argparse.Namespace, uas_port: int) -> float:
    """The queue and ``args.agents`` agents, each added and logged in with the CLI; seconds taken."""
    t0 = time.monotonic()
    out = server.cli("user", "add", "bench-admin", "--role", "admin", api=False)
    if out.returncode != 0:
        raise RuntimeError(f"callcenter user add: {out.stderr.strip()}")
    server.token = out.stdout.strip().splitlines()[-1]
    out = server.cli("queue", "add", "support", "--skills", "support:1", "--strategy", args.strategy,
                     "--ring-timeout", "15", "--announce-every", "0", "--no-callback")
    if out.returncode != 0:
        raise RuntimeError(f"callcenter queue add: {out.stdout}{out.stderr}")

    def one(i: int) -> str:
        agent = f"agent{i:03d}"
        for cmd in (("agent", "add", agent, "--uri", f"sip:{agent}@{HOST}:{uas_port}", "--skills", "support:3",
                     "--wrap-up", f"{args.wrap_up:g}", "--order", str(i)),
                    ("agent", "login", agent)):
            done = server.cli(*cmd)
            if done.returncode != 0:
                return f"{' '.join(cmd)}: exit {done.returncode}: {(done.stdout + done.stderr).strip()[-300:]}"
        return ""

    with ThreadPoolExecutor(max_workers=args.cli_jobs) as pool:
        errors = [e for e in pool.map(one, range(1, args.agents + 1)) if e]
    if errors:
        raise RuntimeError(f"{len(errors)} agents not configured; first: {errors[0]}")
    listed = server.cli("agent", "list", "--json")
    agents = json.loads(listed.stdout) if listed.returncode == 0 else []
    available = sum(1 for a in agents if a.get("state") == "available")
    if available != args.agents:
        raise RuntimeError(f"`callcenter agent list` shows {available} of {args.agents} agents available")
    live = [server.get(f"/api/agents/{a['id']}/status") for a in agents]
    ready = sum(1 for s in live if s.get("live") and s.get("state") == "available")
    if ready != args.agents:
        raise RuntimeError(f"the live ACD has {ready} of {args.agents} agents available; e.g. {live[:2]}")
    return time.monotonic() - t0


# -- the run --------------------------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    ticks: int
    rss_kb: int
    bridged: int           # the server's events table: CONNECT - COMPLETE* so far
    agent_legs: int        # SIPp UAS: calls in progress (ringing or answered)
    callers: int | None    # the server's callers in progress (/healthz)
    sipp_ticks: int        # both SIPp processes
    busy: int
    total: int


@dataclass
class Result:
    calls: int
    concurrent: int
    agents: int
    configure_s: float = 0.0
    caller_sipp: dict[str, int] = field(default_factory=dict)   # created, successful, failed
    caller_failures: dict[str, int] = field(default_factory=dict)
    agent_sipp: dict[str, int] = field(default_factory=dict)
    agent_failures: dict[str, int] = field(default_factory=dict)
    sipp_exit: int | None = None
    uas_exit: int | None = None
    setup_ms: tuple[float | None, float | None] = (None, None)  # caller INVITE -> 200, median / p95
    check: AcdCheck | None = None
    peak_bridged_sampled: int = 0
    peak_agent_legs: int = 0
    plateau_s: float = 0.0
    plateau_bridged: float | None = None
    cpu_pct: float | None = None             # % of one core, median over the plateau
    cpu_pct_per_100: float | None = None     # per 100 bridged calls
    sipp_cores: float | None = None
    machine_busy_pct: float | None = None
    idle_rss_kb: float = 0.0
    idle_cpu_pct: float = 0.0
    rss_plateau_kb: float | None = None
    rss_per_bridged_kb: float | None = None
    udp_drops: int = 0
    log_problems: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return (not self.problems and self.check is not None and self.check.ok and self.sipp_exit == 0
                and self.caller_sipp.get("failed", 1) == 0 and self.agent_sipp.get("failed", 1) == 0
                and self.caller_sipp.get("successful") == self.calls
                and self.check.peak_bridged >= self.concurrent)


def place_calls(server: AcdServer, uas: Uas, sipps: Sipp, out: Path, calls: int, limit: int, rate: float,
                hold_s: float, res: Result | None = None) -> list[Sample]:
    """One batch of SIPp calls against the server, the UAS answering as the agents; samples once a second."""
    uas.start(out / "agents", calls)
    proc, timeout = sipps.start(server, calls, limit, rate, hold_s + 5, out / "callers")
    samples: list[Sample] = []
    started = next_t = time.monotonic()
    with contextlib.closing(open_db(server.data_dir)) as conn:
        while proc.poll() is None:
            now = time.monotonic()
            if now >= next_t:
                next_t += 1.0
                ticks, rss = cpu_ticks(server.pid), rss_kb(server.pid)
                if ticks is None or rss is None or not server.alive():
                    break
                busy, total = machine_ticks()
                sipp = (cpu_ticks(proc.pid) or 0) + ((cpu_ticks(uas.proc.pid) or 0) if uas.proc else 0)
                try:
                    bridged = bridged_now(conn)
                except Exception:
                    bridged = samples[-1].bridged if samples else 0
                samples.append(Sample(time.time(), ticks, rss, bridged, count(uas.stats(), "CurrentCall"),
                                      server.active(), sipp, busy, total))
            if now - started > timeout + 30:
                proc.kill()
                if res is not None:
                    res.problems.append(f"the callers' SIPp still running {timeout + 30:.0f} s after it started")
                break
            time.sleep(min(0.1, max(0.0, next_t - time.monotonic())))
    exit_code = sipps.finish(proc)
    uas_exit = uas.finish(30)
    if res is not None:
        res.sipp_exit, res.uas_exit = exit_code, uas_exit
    return samples


def idle(server: AcdServer, seconds: float = 3.0) -> tuple[float, float]:
    """(median RSS in kB, CPU in % of one core) of the idle server."""
    rss, t0, c0 = [], time.monotonic(), cpu_ticks(server.pid) or 0
    while time.monotonic() - t0 < seconds:
        rss.append(float(rss_kb(server.pid) or 0))
        time.sleep(0.25)
    return statistics.median(rss), 100 * ((cpu_ticks(server.pid) or 0) - c0) / HZ / (time.monotonic() - t0)


def wait_idle(server: AcdServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.active() == 0:
            return True
        if not server.alive():
            return False
        time.sleep(0.25)
    return False


def figures(res: Result, samples: list[Sample], level: float) -> None:
    res.peak_bridged_sampled = max((s.bridged for s in samples), default=0)
    res.peak_agent_legs = max((s.agent_legs for s in samples), default=0)
    cpu, per100, sipp, busy, rss, on = [], [], [], [], [], []
    for a, b in zip(samples, samples[1:], strict=False):
        if min(a.bridged, b.bridged) < level:
            continue
        dt = b.t - a.t
        res.plateau_s += dt
        pct = 100 * (b.ticks - a.ticks) / HZ / dt
        n = (a.bridged + b.bridged) / 2
        cpu.append(pct)
        per100.append(pct / n * 100)
        sipp.append((b.sipp_ticks - a.sipp_ticks) / HZ / dt)
        if b.total > a.total:
            busy.append(100 * (b.busy - a.busy) / (b.total - a.total))
        rss.append(float(b.rss_kb))
        on.append(n)
    res.cpu_pct, res.cpu_pct_per_100 = median(cpu), median(per100)
    res.sipp_cores, res.machine_busy_pct = median(sipp), median(busy)
    res.plateau_bridged, res.rss_plateau_kb = median(on), median(rss)
    if res.rss_plateau_kb is not None and res.plateau_bridged:
        res.rss_per_bridged_kb = (res.rss_plateau_kb - res.idle_rss_kb) / res.plateau_bridged


def read_callers(res: Result, out: Path) -> None:
    row = sipp_stats(out / "callers" / "stat.csv")
    res.caller_sipp = {"created": count(row, "TotalCallCreated"), "successful": count(row, "SuccessfulCall(C)"),
                       "failed": count(row, "FailedCall(C)")}
    res.caller_failures = failures(row)
    setup: list[float] = []
    for path in (out / "callers").glob("*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            with contextlib.suppress(ValueError, IndexError):
                setup.append(float(line.split(";")[1]))
    res.setup_ms = (median(setup), pctl(setup, 0.95))
    row = sipp_stats(out / "agents" / "stat.csv")
    res.agent_sipp = {"received": count(row, "TotalCallCreated"), "successful": count(row, "SuccessfulCall(C)"),
                      "failed": count(row, "FailedCall(C)")}
    res.agent_failures = failures(row)
    for who in ("callers", "agents"):
        errors = out / who / "errors.log"
        if errors.exists() and errors.stat().st_size:
            lines = [ln for ln in errors.read_text(errors="replace").strip().splitlines()
                     if ln.strip() and "The following events occurred" not in ln]
            # SIPp's own scheduling falling behind (a busy machine) is a note; anything else a problem
            late = [ln for ln in lines if "watchdog timer" in ln]
            if late:
                res.notes.append(f"SIPp {who}: {len(late)} watchdog warnings (SIPp itself ran late), e.g. "
                                 + late[0].split(": ", 1)[-1][:160])
            others = [ln for ln in lines if ln not in late]
            if others:
                res.problems.append(f"SIPp {who} errors.log ({len(others)} lines), first: " + " | ".join(others[:4]))


def keep_evidence(out: Path) -> None:
    shutil.rmtree(EVIDENCE, ignore_errors=True)
    for who in ("callers", "agents"):
        for name in ("errors.log", "sipp.out", "stat.csv", "command.txt"):
            src = out / who / name
            if src.exists():
                (EVIDENCE / who).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, EVIDENCE / who / name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--config", type=Path, default=CONFIG, help="server config (its flow's queue node is 'support')")
    p.add_argument("--concurrent", type=int, default=100, help="target: concurrent bridged calls (SIPp -l)")
    p.add_argument("--calls", type=int, default=200, help="calls placed (more than --concurrent: calls turn over)")
    p.add_argument("--agents", type=int, default=120, help="agents configured (all at the one SIPp UAS)")
    p.add_argument("--rate", type=float, default=10.0, help="SIPp call rate (calls/s)")
    p.add_argument("--hold-ms", type=int, default=20000, help="the caller hangs up this long after the answer")
    p.add_argument("--ring-ms", type=int, default=500, help="the agent's phone rings this long before answering")
    p.add_argument("--wrap-up", type=float, default=1.0, help="each agent's wrap-up (s)")
    p.add_argument("--strategy", default="longest-idle", help="the queue's strategy")
    p.add_argument("--warmup", type=int, default=10, help="calls before the measured run (not counted)")
    p.add_argument("--cli-jobs", type=int, default=2, help="CLI commands run at once while configuring agents")
    p.add_argument("--plateau", type=float, default=0.95, help="plateau: bridged >= this x --concurrent")
    p.add_argument("--json", type=Path, default=RESULTS / "capacity_acd.json")
    args = p.parse_args(argv)
    if args.concurrent < 1 or args.calls < args.concurrent or args.agents < args.concurrent:
        p.error("need --calls >= --concurrent >= 1 and --agents >= --concurrent")
    if 2 * args.concurrent > 512:
        p.error("each bridged call is two engine calls: --concurrent must be <= 256 ([sip] max_calls <= 512)")
    if args.hold_ms < 2000 or args.ring_ms < 0 or args.rate <= 0:
        p.error("--hold-ms must be >= 2000, --ring-ms >= 0, --rate > 0")
    if not args.config.exists():
        p.error(f"{args.config}: no such config")
    if shutil.which("sipp") is None:
        p.error("sipp is not installed")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hold_s = args.hold_ms / 1000

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(EVIDENCE, ignore_errors=True)  # an earlier run's
    work = Path(tempfile.mkdtemp(prefix="callcenter-capacity-acd-"))
    ports: set[int] = set()
    server: AcdServer | None = None
    uas: Uas | None = None
    sipps: Sipp | None = None
    res = Result(args.calls, args.concurrent, args.agents)
    interrupted = False
    t_start = time.monotonic()
    try:
        say(f"capacity with agents: {args.calls} calls, at most {args.concurrent} at a time, {args.rate:g}/s, "
            f"held {hold_s:g} s; {args.agents} agents ringing {args.ring_ms} ms, wrap-up {args.wrap_up:g} s; "
            f"work dir {work}")
        uas = Uas(ports, args.ring_ms)
        sipps = Sipp(ports, DTMF_SCENARIO, sipp_times(0, args.hold_ms))
        server = AcdServer(work, ports, args.config)
        say(f"server: pid {server.pid}, SIP udp {HOST}:{server.sip_port}, HTTP {server.http_port}; "
            f"agents' SIPp UAS at {HOST}:{uas.port}")
        say(f"configuring the queue and {args.agents} agents with the CLI ({args.cli_jobs} at a time) ...")
        res.configure_s = configure(server, args, uas.port)
        say(f"  done in {res.configure_s:.0f} s ({2 * args.agents + 3} commands)")
        say(f"warm-up: {args.warmup} calls ...")
        warm = place_calls(server, uas, sipps, work / "warmup", args.warmup, args.warmup, args.warmup, 3.0)
        wait_idle(server, 30)
        warm_row = sipp_stats(work / "warmup" / "callers" / "stat.csv")
        if count(warm_row, "SuccessfulCall(C)") != args.warmup or max((s.bridged for s in warm), default=0) == 0:
            say(f"  warning: warm-up: {count(warm_row, 'SuccessfulCall(C)')} of {args.warmup} calls succeeded, "
                f"peak bridged {max((s.bridged for s in warm), default=0)}")
        time.sleep(2)
        since = last_call_rowid(server.data_dir)
        res.idle_rss_kb, res.idle_cpu_pct = idle(server)
        say(f"  idle: RSS {res.idle_rss_kb / 1024:.1f} MiB, CPU {res.idle_cpu_pct:.1f} % of a core")
        say(f"run: {args.calls} calls, -l {args.concurrent}, -r {args.rate:g} ...")
        mark, drops, t_run = server.log_mark(), udp_drops(), time.monotonic()
        out = work / "run"
        samples = place_calls(server, uas, sipps, out, args.calls, args.concurrent, args.rate, hold_s, res)
        res.duration_s = time.monotonic() - t_run
        if not server.alive():
            res.problems.append(f"the server exited with {server.proc.returncode}")
        elif not wait_idle(server, 30):
            res.problems.append(f"{server.active()} callers still in progress 30 s after SIPp finished")
        res.udp_drops = udp_drops() - drops
        read_callers(res, out)
        figures(res, samples, args.plateau * args.concurrent)
        say("checking the calls in the database ...")
        res.check = check_run(server.data_dir, since, args.calls, hold_s)
        res.log_problems = server.log_problems(mark)
        if not res.ok:
            keep_evidence(out)
    except KeyboardInterrupt:
        interrupted = True
        say("\ninterrupted: stopping everything")
    finally:
        if sipps is not None:
            sipps.kill_all()
        if uas is not None:
            uas.kill()
        if server is not None:
            res.exit_code = server.stop()
            shutil.copyfile(server.log_path, RESULTS / "capacity-acd.log")
            say(f"server: exit code {res.exit_code} (log: bench/results/capacity-acd.log)")
        shutil.rmtree(work, ignore_errors=True)
    if interrupted or res.check is None:
        return 130 if interrupted else 1
    return report(args, res, time.monotonic() - t_start)


def report(args: argparse.Namespace, r: Result, elapsed: float) -> int:
    c = r.check
    assert c is not None

    def ms(pair: tuple[float | None, float | None]) -> str:
        return f"median {fmt(pair[0], '.0f')} ms, p95 {fmt(pair[1], '.0f')} ms"

    say("\ncalls")
    say(f"  SIPp callers : {r.caller_sipp.get('created')} offered, {r.caller_sipp.get('successful')} successful, "
        f"{r.caller_sipp.get('failed')} failed {r.caller_failures or ''}(exit {r.sipp_exit})")
    say(f"  SIPp agents  : {r.agent_sipp.get('received')} rung, {r.agent_sipp.get('successful')} successful, "
        f"{r.agent_sipp.get('failed')} failed {r.agent_failures or ''}(exit {r.uas_exit})")
    ev = c.events
    say(f"  events table : ENTERQUEUE {ev['ENTERQUEUE']}, OFFER {ev['OFFER']}, CONNECT {ev['CONNECT']}, "
        f"COMPLETECALLER {ev['COMPLETECALLER']}, COMPLETEAGENT {ev['COMPLETEAGENT']}, RINGNOANSWER "
        f"{ev['RINGNOANSWER']}, RINGCANCELED {ev['RINGCANCELED']}, ABANDON {ev['ABANDON']}, "
        f"EXIT* {ev['EXITWITHTIMEOUT'] + ev['EXITFULL'] + ev['EXITEMPTY']}")
    say(f"  call rows    : {c.calls}, connected {c.connected}, dispositions {c.dispositions}, "
        f"completed by {c.completed_by}")
    say(f"  recordings   : {c.both_legs_ok} of {c.calls} calls with both legs on disk, checksums and lengths right; "
        f"post-call rows {c.recordings_rows}; median caller leg {fmt(c.caller_rec_s, '.1f')} s, agent leg "
        f"{fmt(c.agent_rec_s, '.1f')} s, bridged {fmt(c.bridged_s, '.1f')} s; audible (spot check) caller "
        f"{c.audible_caller}, agent {c.audible_agent}; agent-leg WAVs on disk {c.agent_files_on_disk} "
        f"(median {fmt(c.agent_files_s, '.1f')} s)")
    say(f"  agents       : {c.agents_used} of {r.agents} took calls, at most {c.max_calls_per_agent} each; "
        f"on two calls at once: {c.agent_overlaps}; configured by the CLI in {r.configure_s:.0f} s")
    say("\nfigures")
    say(f"  peak concurrent bridged calls : {c.peak_bridged} (events table; sampled {r.peak_bridged_sampled}, "
        f"agent legs up at the UAS {r.peak_agent_legs}); plateau {r.plateau_s:.0f} s at "
        f"{fmt(r.plateau_bridged, '.0f')}")
    say(f"  server CPU                    : {fmt(r.cpu_pct, '.0f')} % of one core (median over the plateau), "
        f"{fmt(r.cpu_pct_per_100, '.1f')} % per 100 bridged calls; idle {r.idle_cpu_pct:.1f} %")
    say(f"  server RSS                    : {fmt(None if r.rss_plateau_kb is None else r.rss_plateau_kb / 1024, '.0f')}"
        f" MiB on the plateau, idle {r.idle_rss_kb / 1024:.0f} MiB, "
        f"{fmt(r.rss_per_bridged_kb, '.0f')} KiB per bridged call")
    say(f"  ENTERQUEUE -> OFFER (routing) : {ms(c.enter_to_offer_ms)}")
    say(f"  OFFER -> CONNECT (ring {args.ring_ms} ms): {ms(c.offer_to_connect_ms)}")
    say(f"  ENTERQUEUE -> CONNECT         : {ms(c.enter_to_connect_ms)}; beyond the agent's ring: median "
        f"{fmt(None if c.enter_to_connect_ms[0] is None else c.enter_to_connect_ms[0] - args.ring_ms, '.0f')} ms")
    say("    (the router logs ENTERQUEUE and OFFER with the same `now` when an agent is free, and CONNECT when the"
        " agent's leg has two-way audio and its recording started; the bridge follows in a task)")
    say(f"  caller set-up (INVITE -> 200) : {ms(r.setup_ms)}")
    say(f"  SIPp (both) {fmt(r.sipp_cores, '.2f')} cores; machine busy {fmt(r.machine_busy_pct, '.0f')} %; "
        f"UDP datagrams dropped {r.udp_drops}; run {r.duration_s:.0f} s")
    for line in (r.problems + c.problems)[:10]:
        say(f"  problem: {line[:400]}")
    for line in r.notes:
        say(f"  note: {line[:300]}")
    say(f"  server log: {len(r.log_problems)} warnings/errors during the run")
    for line in r.log_problems[:5]:
        say(f"    {line[:240]}")
    say(f"\n{'PASS' if r.ok else 'FAIL'}  {args.concurrent} concurrent bridged caller-agent calls, both legs recorded, "
        f"zero failed: peak {c.peak_bridged}, failed {r.caller_sipp.get('failed')} + {r.agent_sipp.get('failed')}")
    say(f"{'ok' if r.exit_code == 0 else 'NOT OK'}    clean shutdown: exit {r.exit_code}")
    doc = {
        "benchmark": "capacity_acd",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "pass": r.ok,
        "result": asdict(r),
        "elapsed_s": round(elapsed, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    say(f"\nwrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0 if r.ok and r.exit_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

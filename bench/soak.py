"""Soak benchmark: many short calls plus a hostile mix; nothing may leak, fail or grow.

    .venv/bin/python bench/soak.py [--calls 100000] [--rate 100] [--hostile-every 50]
                                   [--max-concurrent 400] [--config-extra TOML] [--seed 1]

One `callcenter serve` (tests.support.server.ServerProcess, its own data dir and free loopback
ports) runs a flow that says ``--prompt`` ("Hi.") and hangs up. SIPp places ``--calls`` calls
with tests/support/sipp/uac_hear_prompt.xml at ``--rate`` calls/s, at most ``--max-concurrent``
at a time, echoing the prompt back (-rtp_echo) and waiting for the server's BYE. Alongside, one
hostile event per ``--hostile-every`` calls, shared evenly between five kinds: inactive-media
INVITEs (uac_inactive.xml: the server must hang up by itself), churn (uac_churn.xml: ACK and BYE
at once), REFERs to a fake gateway socket (uac_refer.xml: the server must refuse; every INVITE
reaching the gateway counts; the gateway answers nothing, like an unreachable trunk, unless
``--gateway-decline``), OPTIONS (uac_options.xml) and random mutations of a valid INVITE sent
as raw datagrams (seeded by ``--seed``; a call one of them sets up is hung up at once).
``--skip junk,refer`` leaves kinds out.

Every ``--sample-s`` seconds: the server's RSS (/proc/PID/status VmRSS) and /healthz
active_calls; a progress line every 10 s. When the traffic is over it waits (at most
``--drain-s``) for active_calls to reach 0, reads data_dir/callcenter.db read-only and prints:
calls attempted / successful / failed (SIPp -trace_stat), the hostile kinds' outcomes, leaked
calls (active_calls after the drain), rows left open (ended_at IS NULL), INVITEs that reached
the gateway, whether the server is alive, and RSS over time with "RSS growth after warm-up"
(the last sample under load against the median of the first samples after the first 10 % of
the calls). Exit 0 when no call failed (hostile ones included), none leaked, no row is open, no
INVITE reached the gateway, the server survived and RSS grew by at most ``--max-growth`` %.

``--config-extra`` is TOML merged into the server's config: a table already there (``[sip]``)
gets the keys, e.g. ``--config-extra $'[sip]\\nmax_calls_per_source = 1000'``. Each call
leaves a recording (about 16 kB): the data directory is deleted at the end, unless ``--keep``;
when the run fails, everything but the recordings is kept and its path printed. Every loop is
bounded; SIPp, the gateway and the server are stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from localhost import rss_kb, say  # noqa: E402
from soak_traffic import FakeGateway, Junk, Sipp  # noqa: E402

from tests.support.server import ServerProcess  # noqa: E402

SCENARIOS = ROOT / "tests" / "support" / "sipp"
MAIN_SCENARIO = SCENARIOS / "uac_hear_prompt.xml"
HOSTILE = ("inactive", "churn", "refer", "options", "junk")


def flow_text(prompt: str) -> str:
    return (f'name: soak\nstart: hello\nnodes:\n  hello:\n    type: play\n    say: "{prompt}"\n'
            '    next: bye\n  bye:\n    type: hangup\n')


def merge_toml(base: str, extra: str) -> str:
    """`extra` merged into `base` at the text level: keys of a table `base` already has go into
    that table (replacing a key of the same name), other tables are appended."""
    def tables(text: str) -> list[tuple[str, list[str]]]:
        out: list[tuple[str, list[str]]] = [("", [])]
        for line in text.splitlines():
            if line.strip().startswith("[") and not line.strip().startswith("[["):
                out.append((line.strip(), []))
            else:
                out[-1][1].append(line)
        return out

    merged = tables(base)
    for header, lines in tables(extra):
        into = next((body for h, body in merged if h == header), None)
        if into is None:
            merged.append((header, lines))
            continue
        for line in lines:
            key = line.split("=", 1)[0].strip()
            if "=" in line and not key.startswith("#"):
                into[:] = [ln for ln in into if ln.split("=", 1)[0].strip() != key]
            into.append(line)
    return "\n".join(line for h, body in merged for line in ([h] if h else []) + body) + "\n"


@dataclass
class Sample:
    t: float  # seconds since the traffic started
    calls: int  # main calls ended so far
    rss_kb: int
    active: int | None
    load: bool  # taken while the main traffic ran


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.ports: set[int] = set()
        self.sipps: dict[str, Sipp] = {}
        self.junk: Junk | None = None
        self.gateway = FakeGateway(decline=args.gateway_decline)
        self.samples: list[Sample] = []
        self.notes: list[str] = []
        self.server = ServerProcess(work / "server", flow_text(args.prompt))
        if args.config_extra:
            self.server.config.write_text(merge_toml(self.server.config.read_text(), args.config_extra))
        self.t0 = time.monotonic()
        self.pid = 0

    # -- running ------------------------------------------------------------------------------------------
    def start(self) -> None:
        a = self.args
        say(f"starting the server (data in {self.server.data_dir})")
        self.server.start(timeout=90)
        assert self.server.proc is not None
        self.pid = self.server.proc.pid
        self.gateway.start()
        self.t0 = time.monotonic()
        self.sipps["main"] = Sipp("main", MAIN_SCENARIO, self.server.sip_port, a.calls, a.rate, a.max_concurrent,
                                  self.work, self.ports, ["-rtp_echo"])
        per_kind = math.ceil(a.calls / a.hostile_every / len(HOSTILE)) if a.hostile_every > 0 else 0
        kind_rate = a.rate / a.hostile_every / len(HOSTILE) if a.hostile_every > 0 else 0.0
        if not per_kind:
            return
        extra = {"inactive": [], "churn": [], "options": [],
                 "refer": ["-rtp_echo", "-key", "refer_port", str(self.gateway.port), "-trace_logs",
                           "-log_file", str(self.work / "refer" / "logs.log")]}
        for kind, args in extra.items():
            if kind in a.skip:
                continue
            self.sipps[kind] = Sipp(kind, SCENARIOS / f"uac_{kind}.xml", self.server.sip_port, per_kind, kind_rate,
                                    50, self.work, self.ports, args, max_call_s=45)
        if "junk" not in a.skip:
            self.junk = Junk(self.server.sip_port, per_kind, 1 / kind_rate, a.seed)
            self.junk.start()

    def active(self) -> int | None:
        try:
            return int(httpx.get(f"{self.server.http}/healthz", timeout=2).json()["active_calls"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        return self.server.proc is not None and self.server.proc.poll() is None

    def sample(self, load: bool) -> Sample | None:
        rss = rss_kb(self.pid)
        if rss is None:
            return None
        s = Sample(time.monotonic() - self.t0, sum(self.sipps["main"].counts()[1:]), rss, self.active(), load)
        self.samples.append(s)
        return s

    def run(self) -> None:
        main = self.sipps["main"]
        deadline = self.t0 + max(s.timeout_s for s in self.sipps.values()) + 60
        next_sample = time.monotonic()
        next_progress = next_sample + 10
        last_done, last_t = 0, self.t0
        while time.monotonic() < deadline:
            traffic = [s for s in self.sipps.values() if s.running()]
            if not traffic and not (self.junk and self.junk.is_alive()):
                break
            if not self.alive():
                code = self.server.proc.poll() if self.server.proc else None
                self.notes.append(f"the server died during the run (exit {code})")
                break
            now = time.monotonic()
            if now >= next_sample:
                next_sample += self.args.sample_s
                self.sample(load=main.running())
            if now >= next_progress:
                next_progress += 10
                done = sum(main.counts()[1:])
                self.progress(done, (done - last_done) / max(1e-3, now - last_t))
                last_done, last_t = done, now
            for s in traffic:
                if s.overdue():
                    self.notes.append(f"SIPp {s.name} still ran {s.timeout_s + 30:.0f} s after it started: stopped")
                    s.stop()
            time.sleep(0.2)
        else:
            self.notes.append("the traffic did not end in time: stopped")

    def progress(self, done: int, rate: float) -> None:
        last = self.samples[-1] if self.samples else None
        hostile = [self.sipps[k].counts() for k in HOSTILE if k in self.sipps]
        junk = f"  junk {self.junk.sent}" if self.junk else ""
        say(f"{time.monotonic() - self.t0:6.0f} s  calls {done}/{self.args.calls} ({rate:.1f}/s)"
            f"  active {last.active if last else '?'}  RSS {last.rss_kb / 1024 if last else 0:.1f} MB"
            f"  hostile {sum(h[1] + h[2] for h in hostile)} done, {sum(h[2] for h in hostile)} failed{junk}"
            f"  gateway INVITEs {len(self.gateway.call_ids)}")

    def drain(self) -> int | None:
        """Wait (bounded) for the server's calls in progress to reach 0; the count left."""
        deadline = time.monotonic() + self.args.drain_s
        active = self.active()
        while active != 0 and time.monotonic() < deadline and self.alive():
            time.sleep(0.5)
            active = self.active()
        return active

    def db(self) -> tuple[int, int, dict[str, int]]:
        """(rows, rows with no ended_at, rows per disposition) of the calls table, read-only."""
        path = self.server.data_dir / "callcenter.db"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            total = con.execute("SELECT count(*) FROM calls").fetchone()[0]
            open_rows = con.execute("SELECT count(*) FROM calls WHERE ended_at IS NULL").fetchone()[0]
            disp = dict(con.execute("SELECT coalesce(disposition, '(none)'), count(*) FROM calls GROUP BY 1"))
        finally:
            con.close()
        return int(total), int(open_rows), {str(k): int(v) for k, v in disp.items()}

    def close(self) -> int | None:
        """Stop everything this run started (SIPp first, the server last, whatever fails before it)."""
        try:
            for s in self.sipps.values():
                s.stop()
            if self.junk:
                self.junk.stop()
            if self.gateway.is_alive():
                self.gateway.stop()
        finally:
            rc = self.server.stop(timeout=30)
        return rc

    # -- the report -----------------------------------------------------------------------------------------
    def growth(self) -> tuple[float | None, float | None, float | None]:
        """(baseline RSS kB, last RSS kB under load, growth %)."""
        load = [s for s in self.samples if s.load]
        after = [s for s in load if s.calls >= 0.1 * self.args.calls]
        if len(after) < 2:
            return None, None, None
        base = statistics.median(s.rss_kb for s in after[:5])
        return base, load[-1].rss_kb, 100 * (load[-1].rss_kb - base) / base

    def report(self, leaked: int | None, alive: bool) -> bool:
        a = self.args
        attempted, ok, failed = self.sipps["main"].counts()
        say(f"\ncalls: {attempted} attempted, {ok} successful, {failed} failed (of {a.calls})")
        kinds, codes = self.sipps["main"].failure_kinds(), self.sipps["main"].unexpected()
        if kinds:
            say(f"  main failures: {kinds}" + (f", unexpected responses {codes}" if codes else "")
                + f" (SIPp errors: {self.sipps['main'].errors})")
        hostile_failed = 0
        for kind in HOSTILE:
            if kind in self.sipps:
                h = self.sipps[kind].counts()
                hostile_failed += h[2]
                why, unexpected = self.sipps[kind].failure_kinds(), self.sipps[kind].unexpected()
                codes.update({c: codes.get(c, 0) + n for c, n in unexpected.items()})
                say(f"  hostile {kind:8s} {h[0]} attempted, {h[1]} successful, {h[2]} failed"
                    + (f" {why}" if why else "") + (f", unexpected responses {unexpected}" if unexpected else ""))
        if 503 in codes:
            say("  (503: the server's per-source limits? --config-extra $'[sip]\\ntrusted_peers = [\"127.0.0.1\"]')")
        if self.junk:
            answers = dict(sorted(self.junk.answers.items()))
            say(f"  hostile junk     {self.junk.sent} datagrams, final answers {answers}, "
                f"{self.junk.hung_up} calls set up (hung up)")
        rows = open_rows = 0
        try:
            rows, open_rows, disp = self.db()
            say(f"database: {rows} call rows, {open_rows} left open (ended_at IS NULL); {disp}")
        except sqlite3.Error as e:
            self.notes.append(f"could not read the database: {e}")
        gw = len(self.gateway.call_ids)
        say(f"leaked calls (active_calls after the drain): {leaked if leaked is not None else 'unknown'}")
        say(f"INVITEs that reached the fake gateway: {gw}" + (f" ({self.gateway.invites} datagrams, first: "
                                                            f"{self.gateway.first})" if gw else ""))
        say(f"server still alive: {'yes' if alive else 'NO'}")
        log = self.server.log()
        say(f"server log: {log.count(' ERROR ')} ERROR lines, {log.count('Traceback')} tracebacks")
        base, last, growth = self.growth()
        self.rss_table()
        say(f"RSS growth after warm-up: {'n/a' if growth is None else f'{growth:.1f} %'}"
            + ("" if base is None or last is None else f" ({base / 1024:.1f} MB -> {last / 1024:.1f} MB)"))
        for note in self.notes:
            say(f"note: {note}")
        return (failed == 0 and hostile_failed == 0 and ok == a.calls and leaked == 0 and open_rows == 0
                and gw == 0 and alive and growth is not None and growth <= a.max_growth and not self.notes)

    def rss_table(self) -> None:
        rows = self.samples
        if len(rows) > 24:  # a small table: evenly spread, first and last kept
            step = (len(rows) - 1) / 23
            rows = [rows[round(i * step)] for i in range(24)]
        say("\n  elapsed s   calls   RSS MB   active")
        for s in rows:
            say(f"  {s.t:9.0f} {s.calls:7d} {s.rss_kb / 1024:8.1f} {s.active if s.active is not None else '?':>8}"
                + ("" if s.load else "   (no main traffic)"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--calls", type=int, default=100_000, help="main calls (default 100000)")
    p.add_argument("--rate", type=float, default=100.0, help="main calls per second (default 100)")
    p.add_argument("--max-concurrent", type=int, default=400, help="main calls at a time at most (default 400)")
    p.add_argument("--hostile-every", type=int, default=50, help="one hostile event per N calls; 0: none")
    p.add_argument("--skip", default="", help=f"hostile kinds to leave out, comma-separated: {','.join(HOSTILE)}")
    p.add_argument("--prompt", default="Hi.", help="what the flow says before it hangs up")
    p.add_argument("--config-extra", default="", help="TOML merged into the server's config file")
    p.add_argument("--seed", type=int, default=1, help="seed of the junk datagrams")
    p.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--drain-s", type=float, default=60.0, help="longest wait for active_calls to reach 0")
    p.add_argument("--max-growth", type=float, default=10.0, help="RSS growth allowed after warm-up, %%")
    p.add_argument("--gateway-decline", action="store_true",
                   help="the fake gateway answers INVITEs 603 (default: it answers nothing, as if unreachable)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (recordings included)")
    args = p.parse_args(argv)
    args.skip = {k.strip() for k in args.skip.split(",") if k.strip()}
    if args.skip - set(HOSTILE):
        p.error(f"--skip: unknown kind(s) {', '.join(sorted(args.skip - set(HOSTILE)))}")
    if args.calls < 1 or args.rate <= 0 or args.max_concurrent < 1 or args.hostile_every < 0:
        p.error("--calls, --rate and --max-concurrent must be positive, --hostile-every >= 0")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job starts with it ignored
        signal.signal(sig, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="callcenter-soak-"))
    soak: Soak | None = None
    passed = False
    try:
        soak = Soak(args, work)
        soak.start()
        say(f"{args.calls} calls at {args.rate:g}/s (at most {args.max_concurrent} at a time), "
            f"hostile kinds {', '.join(k for k in HOSTILE if k in soak.sipps or (k == 'junk' and soak.junk))}; "
            f"work dir {work}")
        soak.run()
        soak.sample(load=False)
        say("traffic over; waiting for the server's calls in progress to end")
        leaked = soak.drain()
        final = soak.sample(load=False)
        if final and final.active is None:
            final.active = leaked
        alive = soak.alive()
        passed = soak.report(leaked, alive)
        rc = soak.close()
        say(f"server exit code: {rc}")
        passed = passed and rc == 0
    except KeyboardInterrupt:
        say("\ninterrupted")
    finally:
        if soak is not None:
            soak.close()
        if args.keep:
            say(f"kept {work}")
        elif passed:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "server" / "data" / "recordings", ignore_errors=True)
            say(f"evidence (SIPp logs, server log, database) kept in {work}")
    say("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

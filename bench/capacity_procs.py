"""The processes bench/capacity.py runs and measures, all on loopback.

`callcenter serve` (the server, bench/capacity.toml or another config), the engine floor
(bench/bare_engine.py) and SIPp (bench/uac_capacity.xml or another scenario): starting them on free
ports, their count of calls in progress and their logs, stopping them; and their CPU time and RSS
from /proc. Also used by bench/capacity_ivr.py and bench/capacity_short.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from capacity_checks import check_floor_recordings, check_ivr_calls, check_server_calls  # noqa: E402
from localhost import HOST, child_setup, free_media_port, free_tcp_port, free_udp_port, say  # noqa: E402

from callcenter.settings import load_settings  # noqa: E402
from ivr.flow import load_flow  # noqa: E402
from ivr.prompts import PromptCache  # noqa: E402

CONFIG = BENCH / "capacity.toml"
SCENARIO = BENCH / "uac_capacity.xml"
DTMF_SCENARIO = BENCH / "uac_capacity_dtmf.xml"  # the caller presses 1 (RFC 4733), holds, hangs up
FLOOR_SCRIPT = BENCH / "bare_engine.py"
RESULTS = BENCH / "results"
HZ = os.sysconf("SC_CLK_TCK")
FLOOR_RTP = (20000, 10000)  # the server's bench config uses 10000..19999


# -- /proc -----------------------------------------------------------------------------------------------
def cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)




def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, to show how much else was running."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


def udp_drops() -> int:
    """The machine's UDP datagrams dropped so far for full socket buffers (receive and send)."""
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    row = dict(zip(rows[0][1:], rows[1][1:], strict=False))
    return int(row.get("RcvbufErrors", 0)) + int(row.get("SndbufErrors", 0))


# -- the processes under test ------------------------------------------------------------------------------
class Target:
    name = "target"
    proc: subprocess.Popen[Any]
    sip_port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def active(self) -> int | None:
        raise NotImplementedError

    def check_calls(self, expected: int, prompt_s: float, evidence: Path | None = None
                    ) -> tuple[int, list[str]]:
        """After a step: how many calls completed with a good recording, and what went wrong."""
        raise NotImplementedError

    def log_mark(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_problems(self, since: int) -> list[str]:
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if self.is_problem(ln)]

    def is_problem(self, line: str) -> bool:
        """Whether a line of the target's log (written during a step) reports a problem."""
        return bool(line.strip())

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"  {self.name}: no exit {timeout:.0f} s after SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode



class Server(Target):
    """`callcenter serve --config CONFIG`. ``text``: the prompt the server renders at start-up that
    the floor plays too. By default a step's calls must be hung up by the server with a recording
    of the whole prompt (bench/capacity.py); with ``caller_hangs_up`` the caller hangs up (and,
    with ``key``, every call's IVR path must show the key, heard by RFC 4733)."""

    name = "server"

    def __init__(self, work: Path, text: str, ports: set[int], config: Path = CONFIG,
                 caller_hangs_up: bool = False, key: str | None = None, key_required: bool = True) -> None:
        self.data_dir = work / "server-data"
        self.data_dir.mkdir()
        self.config = config
        self.caller_hangs_up = caller_hangs_up
        self.key = key
        self.key_required = key_required  # else a call whose key was not heard is only counted
        self.keys_missed = 0
        self.paths: dict[str, int] = {}  # IVR paths of the calls checked so far (caller_hangs_up)
        settings = load_settings(config)
        cache = PromptCache(self.data_dir / "prompts", settings.engine.clock_rate, _no_convert,
                            settings.prompt_voice, settings.prompt_wpm, voices=settings.prompt_voices)
        # rendered by the server at start-up
        self.prompt = cache.path_for(text, cache.voice_for("en"), settings.prompt_wpm)
        self.sip_port = free_udp_port(ports)
        self.http_port = free_tcp_port(ports)
        self.log_path = work / "server.log"
        self._last_rowid = 0
        cmd = [str(Path(sys.executable).parent / "callcenter"), "serve", "--config", str(config),
               "--data-dir", str(self.data_dir), "--sip-port", str(self.sip_port),
               "--http-port", str(self.http_port)]
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
        if not self.prompt.exists():
            raise RuntimeError(f"the server started but its prompt cache has no {self.prompt.name}: "
                               f"{sorted(p.name for p in self.prompt.parent.glob('*'))}")

    def is_problem(self, line: str) -> bool:
        return any(k in line for k in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback"))

    def prompt_of(self, node: str) -> Path:
        """The cached WAV of a node's prompt in the default flow (rendered by the server at start-up)."""
        settings = load_settings(self.config)
        assert settings.default_flow is not None
        flow = load_flow(settings.default_flow)
        found = flow.nodes.get(node)
        prompt = getattr(found, "prompt", None)
        if prompt is None or not prompt.say:
            raise RuntimeError(f"{settings.default_flow}: no node {node!r} with a spoken prompt")
        cache = PromptCache(self.data_dir / "prompts", settings.engine.clock_rate, _no_convert,
                            settings.prompt_voice, settings.prompt_wpm, voices=settings.prompt_voices)
        path = cache.path_for(prompt.say, cache.voice_for(prompt.language or flow.language or "en", prompt.voice),
                              prompt.rate or settings.prompt_wpm)
        if not path.exists():
            raise RuntimeError(f"the server's prompt cache has no {path.name} for node {node!r}")
        return path

    def active(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/healthz", timeout=2) as r:
                return int(json.load(r)["active_calls"])
        except (OSError, ValueError, KeyError):
            return None

    def check_calls(self, expected: int, prompt_s: float, evidence: Path | None = None
                    ) -> tuple[int, list[str]]:
        if self.caller_hangs_up:
            good, problems, self._last_rowid, paths, missed = check_ivr_calls(
                self.data_dir, self._last_rowid, expected, 0.5 * prompt_s, self.key, evidence, self.key_required)
            self.keys_missed += missed
            for path, n in paths.items():
                self.paths[path] = self.paths.get(path, 0) + n
            return good, problems
        good, problems, self._last_rowid = check_server_calls(self.data_dir, self._last_rowid, expected,
                                                              prompt_s, evidence)
        return good, problems


class Floor(Target):
    """bench/bare_engine.py playing ``prompt``. A step's calls must leave recordings of at least
    ``min_share`` of the call's length (the prompt's, when the floor hangs up at its end)."""

    name = "floor"

    def __init__(self, work: Path, prompt: Path, ports: set[int], min_share: float = 0.8,
                 key: bool = False, key_prompt: Path | None = None) -> None:
        self.min_share = min_share
        self.key = key  # every call presses a key: count the calls whose key the floor did not hear
        self.digits = 0
        self.keys_missed = 0
        self._digits_checked = 0
        self.rec_dir = work / "floor-recordings"
        self.rec_dir.mkdir()
        self.sip_port = free_udp_port(ports)
        self.log_path = work / "floor.log"
        self._active: int | None = None
        self._ready = threading.Event()
        cmd = [sys.executable, str(FLOOR_SCRIPT), "--prompt", str(prompt), "--rec-dir", str(self.rec_dir),
               "--host", HOST, "--sip-port", str(self.sip_port), "--rtp-port", str(FLOOR_RTP[0]),
               "--rtp-port-range", str(FLOOR_RTP[1])]
        if key_prompt is not None:
            cmd += ["--key-prompt", str(key_prompt)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, text=True, preexec_fn=child_setup,
                                         start_new_session=True)
        threading.Thread(target=self._read_status, name="floor-status", daemon=True).start()
        if not self._ready.wait(30) or not self.alive():
            raise RuntimeError(f"the engine floor did not start; log:\n"
                               f"{self.log_path.read_text(errors='replace')[-3000:]}")

    def _read_status(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, value = line.strip().partition(" ")
            if word == "ready":
                self._active = 0
                self._ready.set()
            elif word == "active":
                self._active = int(value)
            elif word == "digits":
                self.digits = int(value)

    def active(self) -> int | None:
        return self._active if self.alive() else None

    def check_calls(self, expected: int, prompt_s: float, evidence: Path | None = None
                    ) -> tuple[int, list[str]]:
        good, problems = check_floor_recordings(self.rec_dir, expected, prompt_s, evidence, self.min_share)
        if self.key:
            time.sleep(2 * 0.5)  # two of the floor's status intervals: its last "digits" line is in
            heard, self._digits_checked = self.digits - self._digits_checked, self.digits
            self.keys_missed += max(0, expected - heard)
        return good, problems


def _no_convert(src: Path, dst: Path, rate: int) -> None:  # PromptCache is only asked for paths here
    raise AssertionError("not used")


# -- the prompt --------------------------------------------------------------------------------------------
def prompt_text(config: Path = CONFIG, only: bool = True) -> str:
    """The bench flow's one prompt (the server renders it into its prompt cache at start-up); with
    ``only=False`` the first of the default flow's prompts (the demo flow's welcome)."""
    settings = load_settings(config)
    if settings.default_flow is None:
        raise RuntimeError(f"{config}: [ivr] default_flow is not set")
    texts = [p.say for p in load_flow(settings.default_flow).prompts() if p.say]
    if not texts or (only and len(texts) != 1):
        raise RuntimeError(f"{settings.default_flow}: the bench flow must have exactly one prompt")
    return texts[0]




# -- SIPp ---------------------------------------------------------------------------------------------------
class Sipp:
    """SIPp runs of ``scenario`` (bench/uac_capacity.xml by default; with -rtp_echo and the
    ``extra`` arguments, e.g. ``-set key_ms 2000``) against a target; the ones still running are
    killed by kill_all()."""

    def __init__(self, ports: set[int], scenario: Path = SCENARIO, extra: Sequence[str] = ()) -> None:
        self.port = free_udp_port(ports)
        self.media_port = free_media_port(ports)
        self.scenario = scenario
        self.extra = list(extra)
        self.running: list[subprocess.Popen[Any]] = []

    def start(self, target: Target, calls: int, limit: int, rate: float, prompt_s: float, out: Path,
              port: int | None = None, media: int | None = None) -> tuple[subprocess.Popen[Any], float]:
        """Start placing `calls` calls, at most `limit` at a time; (the process, its timeout in s)."""
        out.mkdir(parents=True, exist_ok=True)
        waves = -(-calls // limit)
        expected = waves * (prompt_s + limit / rate) + 5
        timeout = expected * 1.5 + 60
        cmd = ["sipp", "-sf", str(self.scenario), "-s", "ivr", f"{HOST}:{target.sip_port}", "-i", HOST,
               "-p", str(port or self.port), "-mp", str(media or self.media_port), "-rtp_echo",
               "-m", str(calls), "-l", str(limit), "-r", f"{rate:g}", "-timeout", f"{timeout:.0f}s",
               "-timeout_error", "-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
               "-trace_rtt", "-rtt_freq", "1", "-trace_err", "-error_file", "errors.log", *self.extra]
        (out / "command.txt").write_text(" ".join(cmd) + "\n")
        with (out / "sipp.out").open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=out, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    preexec_fn=child_setup, start_new_session=True)
        self.running.append(proc)
        return proc, timeout

    def finish(self, proc: subprocess.Popen[Any]) -> int:
        rc = proc.wait()
        if proc in self.running:
            self.running.remove(proc)
        return rc

    def kill_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.running.clear()

"""Run `callcenter serve` as a real child process on free loopback ports with its own data dir."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO_FLOW = ROOT / "config" / "flows" / "demo.yaml"
PHONE = Path(__file__).with_name("phone.py")
# Rendered prompts, shared by every test server of a run (the cache renames files into place).
PROMPT_CACHE = Path(os.environ.get("CALLCENTER_TEST_PROMPTS", "/tmp/callcenter-test-prompts"))

# About 25 seconds of speech: calls that stay up while a test does something to them.
LONG_TEXT = (
    "Thank you for calling. This message is long on purpose, so that the call stays up while the test does "
    "its work. It goes on for a while, with one sentence after another, and nothing in it matters at all. Please "
    "stay on the line. We are still talking, and we will go on talking for a little longer. Almost done now. "
    "Thank you for your patience, and goodbye."
)
LONG_FLOW = f"""
name: long
start: talk
nodes:
  talk:
    type: play
    say: "{LONG_TEXT}"
    next: bye
  bye:
    type: hangup
"""

SHORT_FLOW = """
name: short
start: hello
nodes:
  hello:
    type: play
    say: "Hello, this is a test."
    next: bye
  bye:
    type: hangup
"""


class PortTaken(RuntimeError):
    """The server could not bind a port free_port() chose: someone else bound it meanwhile."""


class ServerProcess:
    def __init__(self, base: Path, flow_text: str | None = None, config_extra: str = "", sip_extra: str = "",
                 ivr_extra: str = "", default_flow: bool = True) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port()
        self.http_port = free_port()
        flow = base / "flow.yaml"
        flow.write_text(flow_text if flow_text is not None else DEMO_FLOW.read_text())
        self.config = base / "callcenter.toml"
        self.config.write_text(
            "[server]\nhost = \"127.0.0.1\"\n"
            "[sip]\nrtp_port = 30000\nrtp_port_range = 9000\n" + sip_extra + "\n"
            + (f"[ivr]\ndefault_flow = \"{flow.name}\"\n" if default_flow else "[ivr]\n") + ivr_extra + "\n"
            + config_extra
            + ("" if "[prompts]" in config_extra else f"[prompts]\ncache_dir = \"{PROMPT_CACHE}\"\n")
        )
        self.log_path = base / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"sip:ivr@127.0.0.1:{self.sip_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "callcenter.cli", *args]

    def start(self, timeout: float = 30.0) -> ServerProcess:
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:  # another process took a port between free_port() and our bind
                if attempt == 2:
                    raise
                self.sip_port, self.http_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> ServerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command("serve", "--config", str(self.config), "--data-dir", str(self.data_dir),
                             "--host", "127.0.0.1", "--sip-port", str(self.sip_port),
                             "--http-port", str(self.http_port)),
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log_text = self.log()
                if self.proc.returncode == 2 and "in use" in (log_text.splitlines() or [""])[-1]:
                    raise PortTaken(log_text)
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log_text}")
            try:
                if httpx.get(f"{self.http}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def prompt(self, text: str) -> Path:
        """The rendered WAV of an English TTS prompt (default voice and speed) in the shared cache."""
        from ivr.prompts import PromptCache

        return PromptCache(PROMPT_CACHE, 8000, lambda *_: None).path_for(text, "", 160)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args, "--config", str(self.config), "--data-dir", str(self.data_dir)),
            capture_output=True, text=True, cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL,
        )

    def token(self, role: str, name: str | None = None) -> str:
        out = self.cli("user", "add", name or f"{role}-{time.monotonic_ns()}", "--role", role)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.http}{path}", headers=headers, timeout=10)

    def calls(self, token: str, limit: int = 50) -> list[dict[str, Any]]:
        r = self.get(f"/api/calls?limit={limit}", token)
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` from the server's database, opened read-only."""
        with sqlite3.connect(f"file:{self.data_dir / 'callcenter.db'}?mode=ro", uri=True) as conn:
            return conn.execute(sql).fetchall()

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"condition not met within {timeout}s; server log:\n{self.log()[-3000:]}")


def phone_command(uri: str, *args: str) -> list[str]:
    return [sys.executable, str(PHONE), uri, *args]


def run_phone(uri: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    """Place one call with the pjsua2 test phone (its own process); return its JSON report."""
    out = subprocess.run(phone_command(uri, *args), capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, f"phone failed ({out.returncode}):\n{out.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return report

"""pjsip's log lines in Python logging: one line per event, cleaned, and capped under a flood.

A single INVITE offering 500 codecs, or a fuzzer's stream of broken packets, makes pjsip log a
line per codec or per packet. ``LogLimiter`` lets the first few lines of each kind through
(a kind is the message with its numbers and quoted parts blanked), then counts the rest and
reports them in one summary line per kind and window, so a sender cannot multiply the log.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from .text import clean

_KIND = re.compile(r"\d+|'[^']*'|\"[^\"]*\"|0x[0-9a-f]+")


class LogLimiter:
    """At most ``per_kind`` lines of one kind and ``total`` lines in all per ``window_s``."""

    def __init__(self, per_kind: int = 5, total: int = 50, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_kind, self.total, self.window_s = per_kind, total, window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._kinds: dict[str, int] = {}
        self._count = 0
        self._suppressed: dict[str, int] = {}

    def admit(self, message: str) -> tuple[bool, list[str]]:
        """Whether to log ``message``, and summary lines of what the last window suppressed."""
        kind = _KIND.sub("#", message[:80])
        with self._lock:
            summaries = self._roll()
            seen = self._kinds.get(kind, 0)
            if seen >= self.per_kind or self._count >= self.total:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False, summaries
            self._kinds[kind] = seen + 1
            self._count += 1
            return True, summaries

    def flush(self) -> list[str]:
        """Summaries of a finished window (call now and then: a flood may stop mid-window)."""
        with self._lock:
            return self._roll()

    def _roll(self) -> list[str]:
        now = self._clock()
        if now - self._start < self.window_s:
            return []
        out = [f"suppressed {n} more log lines like: {kind}" for kind, n in self._suppressed.items()]
        self._start, self._kinds, self._count, self._suppressed = now, {}, 0, {}
        return out


class PjLogWriter(pj.LogWriter):
    """Routes pjsip's log lines into Python logging (called from any pjsip thread)."""

    _LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}

    def __init__(self, limiter: LogLimiter | None = None) -> None:
        super().__init__()
        self.limiter = limiter or LogLimiter()
        self._log = logging.getLogger("voice.pjsip")

    def write(self, entry: Any) -> None:
        try:
            # One line per event: pjsip appends whole packets to some messages (a parse error).
            lines = entry.msg.strip().splitlines() or [""]
            msg = clean(lines[0], 300) + (f" [+{len(lines) - 1} lines]" if len(lines) > 1 else "")
            level = self._LEVELS.get(entry.level, logging.DEBUG)
            if not self._log.isEnabledFor(level):
                return
            ok, summaries = self.limiter.admit(msg)
            for line in summaries:
                self._log.warning("%s", line)
            if ok:
                self._log.log(level, "%s", msg)
        except Exception:  # an exception escaping a director callback would abort the process
            logging.getLogger("voice.engine").exception("pjsip log writer failed")

    def flush(self) -> None:
        for line in self.limiter.flush():
            self._log.warning("%s", line)

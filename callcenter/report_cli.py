"""`callcenter report queues`: queue and agent figures over a time range, as aligned tables or CSV.

    callcenter report queues [--from ISO] [--to ISO] [--queue Q] [--interval 1h] [--csv FILE | --format table|csv]

It reads the data directory's database directly, read-only (safe while a server runs: SQLite WAL),
so it needs no token and no running server. ``--from``/``--to`` take ISO dates or datetimes (UTC
unless an offset is given); a date alone as ``--to`` is the end of that day, so ``--from 2026-12-01
--to 2026-12-01`` is that whole day; the default is today (UTC). The figures and their definitions:
docs/metrics.md (routing/metrics.py computes them).

Output: a queues table (one row per queue, then all queues together), an agents table and, with
``--interval``, a table per queue with one row per interval. ``--format csv`` prints the queues'
rows as CSV (``--interval``: one row per queue and interval; ``--agents``: the agents' rows instead);
``--csv FILE`` writes the queues' rows to FILE, the agents' to FILE-agents.csv and, with
``--interval``, the intervals' to FILE-intervals.csv.

Exit codes: 0 done; 2 bad input (a one-line message) or no readable database.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from routing import metrics
from routing.metrics import AgentMetrics, QueueMetrics, Report

from .exceptions import ConfigError
from .settings import load_settings, with_overrides
from .storage.metrics_repo import MetricsRepo

ALL = "(all)"
QUEUE_COLUMNS = ("from", "to", "queue", "offered", "answered", "abandoned", "short_abandoned", "overflowed",
                 "overflowed_timeout", "overflowed_full", "overflowed_empty", "callback_requests", "called_back",
                 "callback_failed", "completed", "service_level_s", "sl_met", "sl_base", "service_level", "asa_s",
                 "aht_s", "avg_talk_s", "avg_wrap_up_s", "abandon_rate", "longest_wait_s", "waiting_at_end")
AGENT_COLUMNS = ("from", "to", "agent", "offers", "no_answer", "answered", "completed", "available_s", "reserved_s",
                 "on_call_s", "wrap_up_s", "break_s", "break_by_reason", "logged_in_s", "occupancy", "state_at_end")


def add_parsers(report: argparse._SubParsersAction[argparse.ArgumentParser],
                common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the report subcommands to ``report`` (``common`` adds --config/--data-dir)."""
    rq = report.add_parser("queues", help="queue and agent figures over a time range (tables or CSV)",
                           description="Queue and agent figures over [--from, --to), read from the data "
                                       "directory's events (definitions: docs/metrics.md).")
    common(rq)
    rq.add_argument("--from", dest="start", metavar="ISO",
                    help="a date or datetime, UTC unless an offset is given (default: today 00:00 UTC)")
    rq.add_argument("--to", dest="end", metavar="ISO",
                    help="excluded; a date alone means the end of that day (default: the end of today)")
    rq.add_argument("--queue", help="only this queue (and the agents who worked in it)")
    rq.add_argument("--interval", metavar="DURATION", help="also one row per interval: 15m, 1h, 1d or seconds")
    rq.add_argument("--agents", action="store_true", help="--format csv: print the agents' rows instead")
    out = rq.add_mutually_exclusive_group()
    out.add_argument("--csv", type=Path, metavar="FILE",
                     help="write CSV files (FILE, FILE-agents.csv, FILE-intervals.csv) instead of tables")
    out.add_argument("--format", choices=("table", "csv"), default="table", help="what to print (default table)")


def parse_duration(text: str) -> float:
    """'15m', '1h', '1d', '90s' or '3600' as seconds; ValueError with a one-line message otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] if m else 0.0
    if value <= 0:
        raise ValueError(f"--interval {text!r} is not a duration (e.g. 15m, 1h, 1d or seconds)")
    return value


# -- formatting ---------------------------------------------------------------------------------------

def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _dur(s: float | None) -> str:
    """Seconds: "12.3s" under a minute, else "m:ss" or "h:mm:ss"; None -> "-"."""
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    whole = round(s)
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool]) -> str:
    body = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             .rstrip() for r in body]
    return "\n".join(lines)


def _queue_cells(m: QueueMetrics, label: str) -> list[str]:
    sl = f"{_pct(m.service_level)} ({m.sl_met}/{m.sl_base})"
    t = "" if m.service_level_s is None else f"{m.service_level_s:g}s"
    return [label, str(m.offered), str(m.answered), str(m.abandoned), str(m.short_abandoned), str(m.overflowed),
            str(m.called_back), sl, t, _dur(m.asa_s), _dur(m.aht_s), _pct(m.abandon_rate), _dur(m.longest_wait_s),
            str(m.waiting_at_end)]


QUEUE_HEADERS = ("QUEUE", "OFFERED", "ANSWERED", "ABANDONED", "SHORT", "OVERFLOWED", "CALLED BACK",
                 "SERVICE LEVEL", "T", "ASA", "AHT", "ABANDON %", "LONGEST WAIT", "WAITING")
AGENT_HEADERS = ("AGENT", "ANSWERED", "COMPLETED", "NO ANSWER", "AVAILABLE", "RESERVED", "TALK", "WRAP-UP",
                 "BREAK", "OCCUPANCY", "STATE AT END", "BREAK REASONS")


def render_tables(report: Report) -> str:
    """The queues table, the agents table and (with intervals) one table per queue, as text."""
    head = f"{_when(report.start)} to {_when(report.end)} UTC"
    if report.horizon < report.end:
        head += f" (counted until {_when(report.horizon)}, now)"
    out = [f"Queues, {head}"]
    rows = [_queue_cells(m, q) for q, m in report.queues.items()]
    if len(report.queues) != 1:
        rows.append(_queue_cells(report.total, ALL))
    right = [False] + [True] * (len(QUEUE_HEADERS) - 1)
    out.append(_table(QUEUE_HEADERS, rows, right) if report.queues else "  no queue events in this range")
    out += ["", "Agents"]
    if report.agents:
        arows = [[a.agent, str(a.answered), str(a.completed), str(a.no_answer), _dur(a.available_s),
                  _dur(a.reserved_s), _dur(a.on_call_s), _dur(a.wrap_up_s), _dur(a.break_s), _pct(a.occupancy),
                  a.state_at_end, ", ".join(f"{r or '-'} {_dur(s)}" for r, s in a.break_by_reason.items())]
                 for a in report.agents.values()]
        out.append(_table(AGENT_HEADERS, arows, [False] + [True] * 9 + [False, False]))
    else:
        out.append("  no agent activity in this range")
    for q, buckets in report.buckets.items():
        out += ["", f"{q}, every {_dur(report.bucket_s)}"]
        brows = [[_when(m.start), *_queue_cells(m, q)[1:]] for m in buckets]
        out.append(_table(("FROM", *QUEUE_HEADERS[1:]), brows, right))
    return "\n".join(out)


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}".rstrip("0").rstrip(".")


def _queue_row(m: QueueMetrics, label: str) -> list[str]:
    by = m.overflowed_by
    return [metrics.iso(m.start), metrics.iso(m.end), label, str(m.offered), str(m.answered), str(m.abandoned),
            str(m.short_abandoned), str(m.overflowed), str(by.get("timeout", 0)), str(by.get("full", 0)),
            str(by.get("empty", 0)), str(m.callback_requests), str(m.called_back), str(m.callback_failed),
            str(m.completed), _num(m.service_level_s), str(m.sl_met), str(m.sl_base), _num(m.service_level),
            _num(m.asa_s), _num(m.aht_s), _num(m.avg_talk_s), _num(m.avg_wrap_up_s), _num(m.abandon_rate),
            _num(m.longest_wait_s), str(m.waiting_at_end)]


def _agent_row(report: Report, a: AgentMetrics) -> list[str]:
    reasons = ";".join(f"{r}={_num(s)}" for r, s in a.break_by_reason.items())
    return [metrics.iso(report.start), metrics.iso(report.end), a.agent, str(a.offers), str(a.no_answer),
            str(a.answered), str(a.completed), _num(a.available_s), _num(a.reserved_s), _num(a.on_call_s),
            _num(a.wrap_up_s), _num(a.break_s), reasons, _num(a.logged_in_s), _num(a.occupancy), a.state_at_end]


def csv_text(report: Report, what: str) -> str:
    """CSV of ``what``: "queues" (each queue, then the all-queues row), "agents" or "intervals"."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if what == "agents":
        w.writerow(AGENT_COLUMNS)
        w.writerows(_agent_row(report, a) for a in report.agents.values())
    elif what == "intervals":
        w.writerow(QUEUE_COLUMNS)
        w.writerows(_queue_row(m, q) for q, ms in report.buckets.items() for m in ms)
    else:
        w.writerow(QUEUE_COLUMNS)
        w.writerows(_queue_row(m, q) for q, m in report.queues.items())
        w.writerow(_queue_row(report.total, ALL))
    return buf.getvalue()


# -- the command --------------------------------------------------------------------------------------

def _err(message: str) -> int:
    print(f"callcenter: error: {message}", file=sys.stderr)
    return 2


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def queues(args: argparse.Namespace, *, now: float | None = None) -> int:
    now = time.time() if now is None else now
    try:
        today = metrics.today_utc(now)
        start = metrics.parse_time(args.start) if args.start else today[0]
        end = metrics.parse_time(args.end, end=True) if args.end else today[1]
        interval = parse_duration(args.interval) if args.interval else None
        settings = with_overrides(load_settings(args.config), data_dir=args.data_dir)
        report, got = MetricsRepo.for_data_dir(settings.data_dir).report_sync(
            start, end, queue=args.queue, bucket_s=interval, now=now)
    except (ValueError, ConfigError) as exc:
        return _err(str(exc))
    if got.skipped:
        print(f"callcenter: warning: {got.skipped} event rows have an unreadable time and were left out",
              file=sys.stderr)
    try:
        if args.csv is not None:
            base = args.csv
            files = {base: "queues", base.with_name(f"{base.stem}-agents.csv"): "agents"}
            if interval is not None:
                files[base.with_name(f"{base.stem}-intervals.csv")] = "intervals"
            for path, what in files.items():
                _write(path, csv_text(report, what))
            print(f"wrote {', '.join(map(str, files))}", file=sys.stderr)
        elif args.format == "csv":
            sys.stdout.write(csv_text(report, "agents" if args.agents else "intervals" if interval else "queues"))
        else:
            print(render_tables(report))
    except ConfigError as exc:
        return _err(str(exc))
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"queues": queues}

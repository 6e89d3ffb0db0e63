"""`callcenter report keywords|qa`: keyword-hit and QA-score reports as tables (CSV + printed) and charts.

    callcenter report keywords [--from ISO] [--to ISO] --out DIR [--queue Q] [--agent A] [--top N]
    callcenter report qa       [--from ISO] [--to ISO] --out DIR [--queue Q] [--agent A] [--scorecard S]

Both read the data directory's database read-only (safe while a server runs: SQLite WAL): ``keyword_hits``,
``qa_scores`` and ``calls`` (its queue and agent). A hit or a score belongs to the day its call started (UTC;
the row's own time when the call is not in ``calls``). ``--from``/``--to`` take ISO dates or datetimes (UTC
unless an offset is given); ``--to`` is excluded, and a date alone as ``--to`` means the end of that day; the
default is the 30 days up to the end of today (UTC).

keywords writes keywords_by_rule.csv, keywords_by_category.csv, keywords_by_day.csv, keywords_by_queue.csv,
keywords_by_agent.csv and the charts keywords_top, keywords_categories_by_day, keywords_by_queue,
keywords_by_agent (.png and .svg). qa writes qa_calls.csv (one call's total per scorecard: the weighted mean
with reviewer overrides, asr.scorecard.total), qa_by_agent.csv, qa_agent_by_day.csv, qa_by_queue.csv,
qa_items.csv and the charts qa_history (score per agent over days), qa_by_agent, qa_items.

Exit codes: 0 done (an empty range too: the files say so); 2 bad input or no readable database.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from asr.scorecard import ItemScore, total

from .exceptions import ConfigError
from .settings import check_data_dir, load_settings, with_overrides
from .storage.db import DB_NAME

NONE = "(none)"
DEFAULT_DAYS = 30
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def add_parsers(report: argparse._SubParsersAction[argparse.ArgumentParser],
                common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `keywords` and `qa` to the `report` subcommands (``common`` adds --config/--data-dir)."""
    for name, help_text in (("keywords", "top keywords and categories over time, by queue and by agent"),
                            ("qa", "QA scores per agent over time, by queue, by scorecard item")):
        p = report.add_parser(name, help=f"{help_text} (CSV tables + PNG/SVG charts)", description=help_text)
        common(p)
        p.add_argument("--from", dest="start", metavar="ISO",
                       help=f"a date or datetime, UTC unless an offset is given (default: {DEFAULT_DAYS} days ago)")
        p.add_argument("--to", dest="end", metavar="ISO",
                       help="excluded; a date alone means the end of that day (default: the end of today)")
        p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write the tables and charts")
        p.add_argument("--queue", help="only calls of this queue")
        p.add_argument("--agent", help="only calls this agent answered")
        if name == "keywords":
            p.add_argument("--top", type=int, default=10, help="how many rules the top chart shows (default 10)")
        else:
            p.add_argument("--scorecard", help="only this scorecard")


# -- input ------------------------------------------------------------------------------------------

def parse_time(text: str, *, end: bool = False) -> datetime:
    """An ISO date or datetime (UTC unless it has an offset); with ``end``, a date alone is the next midnight."""
    try:
        if len(text.strip()) == 10:
            d = datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), UTC)
            return d + timedelta(days=1) if end else d
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO date or datetime (e.g. 2026-03-01 or 2026-03-01T08:00)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def time_range(args: argparse.Namespace, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    end = parse_time(args.end, end=True) if args.end else datetime.combine(now.date() + timedelta(days=1),
                                                                              datetime.min.time(), UTC)
    start = parse_time(args.start) if args.start else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise ConfigError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    return start, end


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")     # the database's format (callcenter.storage.db.utcnow)


def open_db(args: argparse.Namespace, table: str) -> sqlite3.Connection:
    data_dir = check_data_dir(with_overrides(load_settings(args.config), data_dir=args.data_dir).data_dir)
    path = data_dir / DB_NAME
    if not path.is_file():
        raise ConfigError(f"no database at {path} (has the server run with this data directory?)")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)
        conn.row_factory = sqlite3.Row
        conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()
        conn.execute("SELECT queue, agent FROM calls LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read {table} from {path}: {exc} (an older database: start the server once "
                          "to migrate it)") from None
    return conn


def _rows(conn: sqlite3.Connection, sql: str, args: argparse.Namespace, start: datetime,
          end: datetime) -> list[sqlite3.Row]:
    where, params = ["at >= ?", "at < ?"], [_iso(start), _iso(end)]
    for col in ("queue", "agent"):
        if getattr(args, col, None):
            where.append(f"{col} = ?")
            params.append(getattr(args, col))
    if getattr(args, "scorecard", None):
        where.append("scorecard = ?")
        params.append(args.scorecard)
    try:
        return list(conn.execute(f"SELECT * FROM ({sql}) WHERE {' AND '.join(where)} ORDER BY at", params))
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the database: {exc}") from None


# -- output -----------------------------------------------------------------------------------------

Table = tuple[Sequence[str], list[list[Any]]]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".") if v == v else ""
    return "" if v is None else str(v)


def write_csv(path: Path, table: Table) -> None:
    headers, rows = table
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(headers)
            w.writerows([_cell(c) for c in r] for r in rows)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def print_table(title: str, table: Table, pct: Iterable[str] = (), limit: int = 25) -> None:
    headers, rows = table
    pcts = set(pct)
    cells = [[_pct(c) if h in pcts else _cell(c) for h, c in zip(headers, r, strict=True)] for r in rows[:limit]]
    body = [[h.upper() for h in headers], *cells]
    widths = [max(len(r[i]) for r in body) for i in range(len(headers))]
    num = [all(_numeric(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]
    print(f"\n{title}")
    for r in body:
        print("  ".join(c.rjust(w) if num[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
              .rstrip())
    if not rows:
        print("(no rows)")
    elif len(rows) > limit:
        print(f"... {len(rows) - limit} more rows in the CSV file")


def _numeric(s: str) -> bool:
    return s == "-" or s.rstrip("%").replace(".", "", 1).lstrip("-").isdigit()


def _days(start: datetime, end: datetime, seen: Iterable[str]) -> list[str]:
    """Every day of the range (bounded to the days with data when the range is long)."""
    seen = sorted(set(seen))
    lo = max(start.date(), date.fromisoformat(seen[0])) if seen else start.date()
    hi = min((end - timedelta(microseconds=1)).date(), date.fromisoformat(seen[-1])) if seen else lo
    return [(lo + timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)]


# -- charts -----------------------------------------------------------------------------------------

class Charts:
    """Matplotlib (Agg) figures in one house style, saved as PNG (150 dpi) and SVG."""

    def __init__(self, out: Path, subtitle: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt, self.out, self.subtitle = plt, out, subtitle
        self.files: list[Path] = []
        self.style: Any = {
            "font.size": 10, "axes.titlesize": 14, "axes.titleweight": "bold", "axes.labelsize": 11,
            "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#dddddd",
            "grid.linewidth": 0.8, "axes.axisbelow": True, "legend.frameon": False, "svg.hashsalt": "callcenter",
            "figure.dpi": 100,
        }

    def figure(self, title: str, size: tuple[float, float] = (10, 5.5)) -> tuple[Any, Any]:
        with self.plt.rc_context(self.style):
            fig, ax = self.plt.subplots(figsize=size, layout="constrained")
            ax.set_title(title, loc="left", pad=22)
            ax.text(0, 1.02, self.subtitle, transform=ax.transAxes, color="#555555", fontsize=10)
        return fig, ax

    def empty(self, name: str, title: str) -> None:
        fig, ax = self.figure(title)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No data in this period", ha="center", va="center", fontsize=14, color="#777777",
                transform=ax.transAxes)
        self.save(fig, name)

    def save(self, fig: Any, name: str) -> None:
        with self.plt.rc_context(self.style):
            for ext in ("png", "svg"):
                path = self.out / f"{name}.{ext}"
                try:
                    fig.savefig(path, dpi=150, metadata={"Date": None} if ext == "svg" else None)
                except OSError as exc:
                    raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
                self.files.append(path)
        self.plt.close(fig)

    def hbar(self, name: str, title: str, labels: list[str], values: list[float], xlabel: str,
             colors: list[str] | None = None, pct: bool = False, legend: dict[str, str] | None = None,
             legend_title: str = "category") -> None:
        if not labels:
            return self.empty(name, title)
        fig, ax = self.figure(title, (10, max(3.5, 1.5 + 0.42 * len(labels))))
        with self.plt.rc_context(self.style):
            y = list(range(len(labels)))[::-1]
            bars = ax.barh(y, values, color=colors or PALETTE[0], height=0.65)
            ax.set_yticks(y, labels)
            ax.set_xlabel(xlabel)
            ax.grid(axis="y", visible=False)
            ax.bar_label(bars, labels=[f"{100 * v:.0f}%" if pct else f"{v:g}" for v in values], padding=3,
                         fontsize=9)
            if pct:
                ax.set_xlim(0, 1.08)
                ax.xaxis.set_major_formatter(self.plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
            else:
                ax.set_xlim(0, max(values) * 1.12 or 1)
                ax.xaxis.get_major_locator().set_params(integer=True)
            if legend:
                handles = [self.plt.Rectangle((0, 0), 1, 1, color=c) for c in legend.values()]
                ax.legend(handles, list(legend), title=legend_title, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        self.save(fig, name)

    def lines(self, name: str, title: str, days: list[str], series: dict[str, list[float | None]], ylabel: str,
              pct: bool = False) -> None:
        if not days or not series:
            return self.empty(name, title)
        fig, ax = self.figure(title)
        with self.plt.rc_context(self.style):
            x = [datetime.fromisoformat(d) for d in days]
            for i, (label, ys) in enumerate(series.items()):
                pts = [(a, b) for a, b in zip(x, ys, strict=True) if b is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=4, linewidth=2,
                        label=label, color=PALETTE[i % len(PALETTE)])
            _day_axis(ax, x)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("day (UTC)")
            if pct:
                ax.set_ylim(0, 1.05)
                ax.yaxis.set_major_formatter(self.plt.FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
            else:
                ax.set_ylim(bottom=0)
                ax.yaxis.get_major_locator().set_params(integer=True)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
        self.save(fig, name)

    def day_bars(self, name: str, title: str, days: list[str], parts: dict[str, list[float]], ylabel: str,
                 colors: dict[str, str]) -> None:
        """Stacked bars, one per day, one colour per part (category)."""
        if not days or not parts or not any(any(v) for v in parts.values()):
            return self.empty(name, title)
        fig, ax = self.figure(title)
        with self.plt.rc_context(self.style):
            x = [datetime.fromisoformat(d) for d in days]
            bottom = [0.0] * len(days)
            for label, vals in parts.items():
                ax.bar(x, vals, bottom=bottom, width=0.75, label=label, color=colors.get(label, "#999999"))
                bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
            _day_axis(ax, x)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("day (UTC)")
            ax.grid(axis="x", visible=False)
            ax.set_ylim(0, max(bottom) * 1.1 or 1)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.legend(title="category", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
        self.save(fig, name)

    def stacked(self, name: str, title: str, groups: list[str], parts: dict[str, list[float]], xlabel: str,
                colors: dict[str, str]) -> None:
        if not groups or not parts:
            return self.empty(name, title)
        fig, ax = self.figure(title, (10, max(3.5, 1.5 + 0.45 * len(groups))))
        with self.plt.rc_context(self.style):
            y = list(range(len(groups)))[::-1]
            left = [0.0] * len(groups)
            for label, vals in parts.items():
                ax.barh(y, vals, left=left, height=0.65, label=label, color=colors.get(label, "#999999"))
                left = [a + b for a, b in zip(left, vals, strict=True)]
            for yy, tot in zip(y, left, strict=True):
                ax.text(tot, yy, f" {tot:g}", va="center", fontsize=9)
            ax.set_yticks(y, groups)
            ax.set_xlim(0, max(left) * 1.12 or 1)
            ax.set_xlabel(xlabel)
            ax.grid(axis="y", visible=False)
            ax.legend(title="category", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
        self.save(fig, name)


def _day_axis(ax: Any, days: list[datetime]) -> None:
    """Ticks at days only (every n-th on a long range), labelled like "Mar 01"; some margin each side."""
    import matplotlib.dates as mdates

    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, -(-len(days) // 12))))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    ax.set_xlim(days[0] - timedelta(hours=14), days[-1] + timedelta(hours=14))


def _colors(names: Iterable[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def _prepare(args: argparse.Namespace, start: datetime, end: datetime) -> tuple[Path, str]:
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror or exc}") from None
    last = (end - timedelta(microseconds=1))
    span = f"{start:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    filters = ", ".join(f"{k} {getattr(args, k)}" for k in ("queue", "agent", "scorecard") if getattr(args, k, None))
    return out, span + (f" · {filters}" if filters else "")


# -- keywords ---------------------------------------------------------------------------------------

_HITS_SQL = """SELECT k.rule, coalesce(nullif(k.category, ''), '(none)') AS category, k.call_id, k.source,
    coalesce(c.started_at, k.created_at) AS at, coalesce(c.queue, '') AS queue, coalesce(c.agent, '') AS agent
    FROM keyword_hits k LEFT JOIN calls c ON c.id = k.call_id"""


def keywords_tables(rows: Sequence[sqlite3.Row], start: datetime, end: datetime) -> dict[str, Table]:
    """The keyword tables (name -> (headers, rows)) of these hit rows."""
    by_rule: Counter[tuple[str, str]] = Counter()
    calls: defaultdict[Any, set[str]] = defaultdict(set)
    src: Counter[tuple[str, str, str]] = Counter()
    cat: Counter[str] = Counter()
    day: Counter[tuple[str, str]] = Counter()
    queue: Counter[tuple[str, str]] = Counter()
    agent: Counter[tuple[str, str]] = Counter()
    for r in rows:
        rc, c, d = (r["rule"], r["category"]), r["category"], r["at"][:10]
        q, a = r["queue"] or NONE, r["agent"] or NONE
        by_rule[rc] += 1
        src[(*rc, r["source"])] += 1
        cat[c] += 1
        day[(d, c)] += 1
        queue[(q, c)] += 1
        agent[(a, c)] += 1
        for key in (("rule", rc), ("cat", c), ("day", d, c), ("queue", q, c), ("agent", a, c)):
            calls[key].add(r["call_id"])
    days = _days(start, end, (k[0] for k in day))
    return {
        "keywords_by_rule": (("rule", "category", "hits", "calls", "transcript", "spotting"),
                             [[k[0], k[1], n, len(calls[("rule", k)]), src[(*k, "transcript")],
                               src[(*k, "spotting")]] for k, n in by_rule.most_common()]),
        "keywords_by_category": (("category", "hits", "calls"),
                                 [[c, n, len(calls[("cat", c)])] for c, n in cat.most_common()]),
        "keywords_by_day": (("day", "category", "hits", "calls"),
                            [[d, c, day[(d, c)], len(calls[("day", d, c)])] for d in days for c, _ in
                             cat.most_common() if day[(d, c)]]),
        "keywords_by_queue": (("queue", "category", "hits", "calls"),
                              [[q, c, n, len(calls[("queue", q, c)])] for (q, c), n in sorted(queue.items())]),
        "keywords_by_agent": (("agent", "category", "hits", "calls"),
                              [[a, c, n, len(calls[("agent", a, c)])] for (a, c), n in sorted(agent.items())]),
    }


def keywords(args: argparse.Namespace) -> int:
    start, end = time_range(args)
    if args.top < 1:
        raise ConfigError("--top must be at least 1")
    conn = open_db(args, "keyword_hits")
    try:
        rows = _rows(conn, _HITS_SQL, args, start, end)
    finally:
        conn.close()
    out, subtitle = _prepare(args, start, end)
    tables = keywords_tables(rows, start, end)
    for name, t in tables.items():
        write_csv(out / f"{name}.csv", t)
    ncalls = len({r["call_id"] for r in rows})
    print(f"{len(rows)} keyword hits in {ncalls} calls, {subtitle}")
    print_table("Categories", tables["keywords_by_category"])
    print_table("Top rules", tables["keywords_by_rule"], limit=args.top)
    print_table("By queue", tables["keywords_by_queue"])
    print_table("By agent", tables["keywords_by_agent"])

    ch = Charts(out, f"{subtitle} · {len(rows)} hits in {ncalls} calls")
    cats = [r[0] for r in tables["keywords_by_category"][1]]
    colors = _colors(cats)
    top = tables["keywords_by_rule"][1][: args.top]
    ch.hbar("keywords_top", f"Top {len(top)} keyword rules", [r[0] for r in top], [r[2] for r in top],
            "hits", [colors[r[1]] for r in top], legend={c: colors[c] for c in dict.fromkeys(r[1] for r in top)})
    days = _days(start, end, (r[0] for r in tables["keywords_by_day"][1]))
    per = {(r[0], r[1]): r[2] for r in tables["keywords_by_day"][1]}
    ch.day_bars("keywords_categories_by_day", "Keyword hits per day by category", days,
                {c: [float(per.get((d, c), 0)) for d in days] for c in cats}, "hits", colors)
    for what in ("queue", "agent"):
        trows = tables[f"keywords_by_{what}"][1]
        groups = sorted({str(r[0]) for r in trows}, key=lambda g: -sum(r[2] for r in trows if r[0] == g))
        vals = {(r[0], r[1]): r[2] for r in trows}
        ch.stacked(f"keywords_by_{what}", f"Keyword hits by {what}", groups,
                   {c: [float(vals.get((g, c), 0)) for g in groups] for c in cats}, "hits", colors)
    print(f"\nwrote {len(tables)} tables and {len(ch.files)} charts to {out}", file=sys.stderr)
    return 0


# -- qa ---------------------------------------------------------------------------------------------

_QA_SQL = """SELECT q.call_id, q.scorecard, q.item, q.weight, q.auto_score, q.score, q.reviewer,
    coalesce(c.started_at, q.updated_at) AS at, coalesce(c.queue, '') AS queue, coalesce(c.agent, '') AS agent
    FROM qa_scores q LEFT JOIN calls c ON c.id = q.call_id"""


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def qa_tables(rows: Sequence[sqlite3.Row], start: datetime, end: datetime) -> dict[str, Table]:
    """The QA tables of these qa_scores rows (a call's total: asr.scorecard.total with its overrides)."""
    items: defaultdict[tuple[str, str], list[ItemScore]] = defaultdict(list)
    meta: dict[tuple[str, str], tuple[str, str, str]] = {}
    for r in rows:
        key = (r["call_id"], r["scorecard"])
        items[key].append(ItemScore(r["scorecard"], r["item"], float(r["weight"]), r["auto_score"], "",
                                    r["score"], r["reviewer"]))
        meta[key] = (r["at"][:10], r["queue"] or NONE, r["agent"] or NONE)
    calls: list[list[Any]] = []
    for key, group in items.items():
        d, q, a = meta[key]
        calls.append([key[0], d, q, a, key[1], total(group), len(group), sum(i.score is not None for i in group)])
    calls.sort(key=lambda c: (c[1], c[0]))

    def grouped(cols: Callable[[list[Any]], tuple[Any, ...]]) -> dict[tuple[Any, ...], list[float]]:
        out: defaultdict[tuple[Any, ...], list[float]] = defaultdict(list)
        for c in calls:
            if c[5] is not None:
                out[cols(c)].append(c[5])
        return dict(sorted(out.items()))

    by_agent = grouped(lambda c: (c[3], c[4]))
    overrides = Counter((c[3], c[4]) for c in calls for _ in range(c[7]))
    by_day = grouped(lambda c: (c[1], c[3], c[4]))
    by_queue = grouped(lambda c: (c[2], c[4]))
    per_item: defaultdict[tuple[str, str], list[ItemScore]] = defaultdict(list)
    for group in items.values():
        for i in group:
            per_item[(i.scorecard, i.item)].append(i)
    return {
        "qa_calls": (("call_id", "day", "queue", "agent", "scorecard", "score", "items", "overridden"), calls),
        "qa_by_agent": (("agent", "scorecard", "calls", "mean", "min", "max", "overridden"),
                        [[*k, len(v), _mean(v), min(v), max(v), overrides[k]] for k, v in by_agent.items()]),
        "qa_agent_by_day": (("day", "agent", "scorecard", "calls", "mean"),
                            [[*k, len(v), _mean(v)] for k, v in by_day.items()]),
        "qa_by_queue": (("queue", "scorecard", "calls", "mean"), [[*k, len(v), _mean(v)] for k, v in by_queue.items()]),
        "qa_items": (("scorecard", "item", "weight", "scored", "mean", "overridden"),
                     [[k[0], k[1], v[0].weight, sum(i.effective is not None for i in v),
                       _mean([e for i in v if (e := i.effective) is not None]), sum(i.score is not None for i in v)]
                      for k, v in sorted(per_item.items())]),
    }


def qa(args: argparse.Namespace) -> int:
    start, end = time_range(args)
    conn = open_db(args, "qa_scores")
    try:
        rows = _rows(conn, _QA_SQL, args, start, end)
    finally:
        conn.close()
    out, subtitle = _prepare(args, start, end)
    tables = qa_tables(rows, start, end)
    for name, t in tables.items():
        write_csv(out / f"{name}.csv", t)
    calls = tables["qa_calls"][1]
    print(f"{len(calls)} scored calls, {subtitle}")
    print_table("By agent", tables["qa_by_agent"], pct=("mean", "min", "max"))
    print_table("By queue", tables["qa_by_queue"], pct=("mean",))
    print_table("Items", tables["qa_items"], pct=("mean",))

    ch = Charts(out, f"{subtitle} · {len(calls)} scored calls")
    cards = {r[1] for r in tables["qa_by_agent"][1]}

    def label(agent: str, card: str) -> str:
        return f"{agent} · {card}" if len(cards) > 1 else agent

    hist = tables["qa_agent_by_day"][1]
    days = _days(start, end, (r[0] for r in hist))
    series: dict[str, list[float | None]] = {}
    for agent, card in dict.fromkeys((r[1], r[2]) for r in hist):
        vals = {r[0]: r[4] for r in hist if (r[1], r[2]) == (agent, card)}
        series[label(agent, card)] = [vals.get(d) for d in days]
    ch.lines("qa_history", "QA score per agent (daily mean)", days, series, "score", pct=True)
    ba = sorted(tables["qa_by_agent"][1], key=lambda r: -r[3])
    ch.hbar("qa_by_agent", "Mean QA score by agent", [f"{label(r[0], r[1])} ({r[2]} calls)" for r in ba],
            [r[3] for r in ba], "mean score", pct=True)
    it = [r for r in tables["qa_items"][1] if r[4] is not None]
    bands = {"80% and above": PALETTE[2], "50% to 80%": PALETTE[1], "below 50%": PALETTE[3]}
    ch.hbar("qa_items", "Scorecard items: mean score (100% = always met)",
            [f"{r[1]} · {r[0]}" if len(cards) > 1 else r[1] for r in it], [r[4] for r in it], "mean score",
            [PALETTE[3] if r[4] < 0.5 else PALETTE[1] if r[4] < 0.8 else PALETTE[2] for r in it], pct=True,
            legend=bands, legend_title="mean score")
    print(f"\nwrote {len(tables)} tables and {len(ch.files)} charts to {out}", file=sys.stderr)
    return 0


def _guard(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ConfigError as exc:
            print(f"callcenter: error: {exc}", file=sys.stderr)
            return 2

    return handler


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"keywords": _guard(keywords), "qa": _guard(qa)}

"""Retention: recordings and transcripts older than their queue's retention period are deleted, files and rows
together.

``purge`` reads candidate rows through a ``RetentionStore`` (callcenter/storage/transcripts.py's RecordingRepo):
every recording (legs, stereo mix, redacted copy) and every transcript (its JSON and WebVTT files, its row and
its utterances; the keyword hits, QA scores and emotion figures stay for the reports). It keeps those older
than their queue's days (``per_queue``, else ``default_days``; 0 keeps forever), deletes each
file, then deletes the rows of the files that are gone in one transaction per batch. A file already missing is
logged and its row deleted too; a file that cannot be deleted (permissions, a path outside the data directory)
is logged and keeps its row, so the next purge tries again and no row ever names a file that was deleted
while a file never outlives its row silently. Empty day folders left behind are removed. ``dry_run`` deletes
nothing and reports what would go. Every deletion is logged (call id, leg, path, bytes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

log = logging.getLogger("recordings.retention")

BATCH = 500


@dataclass(frozen=True, slots=True)
class Expirable:
    """One recording (or transcript) row as the purge sees it."""

    id: int
    call_id: str
    leg: str               # caller | agent | stereo | redacted, or "transcript"
    path: str              # relative to the data directory
    bytes: int
    created_at: str        # ISO 8601 UTC
    queue: str             # the call's queue ("" when it never reached one)
    extra: tuple[str, ...] = ()   # more files of the same row (a transcript's WebVTT beside its JSON)


class RetentionStore(Protocol):
    async def recordings_before(self, cutoff: str, after_id: int, limit: int) -> list[Expirable]:
        """Rows created before ``cutoff`` with id > ``after_id``, by id, at most ``limit``."""
        ...

    async def delete_recordings(self, rows: Sequence[Expirable]) -> None:
        """Delete these rows in one transaction."""
        ...

    async def transcripts_before(self, cutoff: str, after_id: int, limit: int) -> list[Expirable]:
        """As ``recordings_before``, for transcripts (leg "transcript")."""
        ...

    async def delete_transcripts(self, rows: Sequence[Expirable]) -> None:
        """Delete these transcripts (and their utterances) in one transaction."""
        ...


@dataclass(slots=True)
class PurgeReport:
    deleted: list[Expirable] = field(default_factory=list)     # file and row gone (or would be: dry run)
    missing: list[Expirable] = field(default_factory=list)     # the file was gone already; row deleted
    kept: list[tuple[Expirable, str]] = field(default_factory=list)   # could not delete the file: row kept, why
    dry_run: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(r.bytes for r in self.deleted)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        transcripts = sum(r.leg == "transcript" for r in self.deleted)
        return (f"{verb} {len(self.deleted) - transcripts} recording(s) and {transcripts} transcript(s), "
                f"{self.freed_bytes} bytes; "
                f"{len(self.missing)} already missing; {len(self.kept)} kept (could not delete)")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")


def _days(queue: str, default_days: int, per_queue: Mapping[str, int]) -> int:
    return per_queue.get(queue, default_days)


def _unlink(root: Path, data_dir: Path, rel: str) -> str | None:
    path = (data_dir / rel).resolve()
    if not path.is_relative_to(root) or path == root:
        return f"path {rel!r} is outside the data directory"
    try:
        path.unlink()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot delete {path}: {exc.strerror or exc}"
    parent = path.parent
    while parent.parent != root and parent.is_relative_to(root):   # never a top folder (recordings/) itself
        try:
            parent.rmdir()          # only when empty: YYYY/MM/DD folders of a purged day
        except OSError:
            break
        parent = parent.parent
    return None


def _remove(data_dir: Path, row: Expirable) -> str | None:
    """Delete the row's files: None when deleted, "missing" when none was there, else why the row is kept."""
    root = data_dir.resolve()
    results = [_unlink(root, data_dir, rel) for rel in (row.path, *row.extra)]
    problems = [r for r in results if r not in (None, "missing")]
    if problems:
        return "; ".join(p for p in problems if p)
    return "missing" if all(r == "missing" for r in results) else None


def _delete_files(data_dir: Path, due: list[Expirable], report: PurgeReport) -> list[Expirable]:
    """Delete the files of ``due`` (or only list them: dry run); the rows whose files are gone."""
    gone: list[Expirable] = []
    for r in due:
        ctx = {"call_id": r.call_id, "leg": r.leg, "path": r.path, "queue": r.queue, "bytes": r.bytes}
        if report.dry_run:
            report.deleted.append(r)
            log.info("retention: would delete", extra=ctx)
            continue
        problem = _remove(data_dir, r)
        if problem is None:
            report.deleted.append(r)
            gone.append(r)
        elif problem == "missing":
            report.missing.append(r)
            gone.append(r)
            log.warning("retention: file already missing; deleting its row", extra=ctx)
        else:
            report.kept.append((r, problem))
            log.error("retention: could not delete; row kept", extra={**ctx, "error": problem})
    return gone


async def purge(store: RetentionStore, data_dir: Path, *, default_days: int, per_queue: Mapping[str, int],
                now: datetime | None = None, dry_run: bool = False, batch: int = BATCH) -> PurgeReport:
    """Delete recordings and transcripts older than their queue's retention days (0: forever); see the module doc."""
    bad = {q: d for q, d in {"(default)": default_days, **per_queue}.items() if not isinstance(d, int) or d < 0}
    if bad:
        raise ValueError(f"retention days must be whole numbers >= 0: {bad}")
    report = PurgeReport(dry_run=dry_run)
    periods = [d for d in (default_days, *per_queue.values()) if d > 0]
    if not periods:
        log.info("retention: every queue keeps recordings forever; nothing to purge")
        return report
    now = now or datetime.now(UTC)
    cutoff = _iso(now - timedelta(days=min(periods)))       # nothing younger than this can be due
    kinds = [(store.recordings_before, store.delete_recordings), (store.transcripts_before, store.delete_transcripts)]
    for fetch, delete in kinds:
        after = 0
        while True:
            rows = await fetch(cutoff, after, batch)
            if not rows:
                break
            after = rows[-1].id
            due = [r for r in rows if (d := _days(r.queue, default_days, per_queue)) > 0
                   and r.created_at < _iso(now - timedelta(days=d))]
            gone = _delete_files(data_dir, due, report)
            if gone:
                await delete(gone)
                missing = {(r.leg, r.id) for r in report.missing}
                for r in gone:
                    if (r.leg, r.id) not in missing:
                        log.info("retention: deleted", extra={"call_id": r.call_id, "leg": r.leg, "path": r.path,
                                                              "bytes": r.bytes})
    log.info("retention: %s", report.summary(), extra={"deleted": len(report.deleted),
                                                       "bytes": report.freed_bytes})
    return report

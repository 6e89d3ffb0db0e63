"""Summarise a py-spy profile of the server under bench/capacity_short.py's load, per call.

    .venv/bin/python bench/capacity_profile.py PROFILE.txt --calls 6000 [--rate 100] [--top 25]

PROFILE.txt is py-spy's collapsed-stack output (``py-spy record --format raw --threads``; what
``capacity_short.py --profile X.txt`` writes): one line per distinct stack, frames separated by
``;`` from the thread down, then the number of samples. py-spy counts only threads on a CPU (not
idle ones), so samples / rate is CPU time. Printed, in CPU-ms per call (samples / rate / calls):
per thread; the functions with the most self time; the project's functions (callcenter/, ivr/,
voice/, recordings/) with the most inclusive time; and the standard library or third-party
modules the project's code spends most in (asyncio, aiosqlite, sqlite3, logging, json...).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PROJECT = ("callcenter/", "ivr/", "voice/", "recordings/", "asr/", "routing/")


def parse(path: Path) -> list[tuple[list[str], int]]:
    """The profile's stacks (root first) and their sample counts."""
    out = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            raise ValueError(f"{path}:{n}: not a collapsed stack line (frames;... COUNT): {line[:80]!r}")
        out.append((stack.split(";"), int(count)))
    return out


def short_file(file: str) -> str:
    """A frame's file relative to the project or site-packages, for reading."""
    for mark in ("/site-packages/", "/lib/python3"):
        if mark in file:
            tail = file.split(mark, 1)[1]
            return tail.split("/", 1)[1] if mark == "/lib/python3" and "/" in tail else tail
    for root in PROJECT:
        i = file.find(root)
        if i >= 0:
            return file[i:]
    return file


def frame_key(frame: str, with_line: bool = False) -> tuple[str, str]:
    m = FRAME.match(frame)
    if not m:
        return frame, ""
    file = short_file(m.group("file"))
    return m.group("func"), f"{file}:{m.group('line')}" if with_line and m.group("line") else file


def module_of(file: str) -> str:
    """The library a frame belongs to: 'asyncio', 'aiosqlite', 'sqlite3', 'pjsua2', ..."""
    head = file.split("/", 1)[0].removesuffix(".py")
    return head or file


def summarise(stacks: list[tuple[list[str], int]], calls: int, rate: float, top: int) -> list[str]:
    def ms(samples: int) -> str:
        return f"{1000 * samples / rate / calls:7.3f}"

    total = sum(c for _, c in stacks)
    threads: Counter[str] = Counter()
    self_time: Counter[tuple[str, str]] = Counter()
    incl: Counter[tuple[str, str]] = Counter()
    lib_from_project: Counter[str] = Counter()
    for frames, count in stacks:
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        body = frames[1:] if thread != "?" else frames
        if body and body[0].startswith("thread"):  # (process;thread;... with --threads and --subprocesses)
            thread, body = body[0], body[1:]
        threads[thread] += count
        if not body:
            continue
        self_time[frame_key(body[-1], with_line=True)] += count
        seen = set()
        for fr in body:
            key = frame_key(fr)
            if key[1].startswith(PROJECT) and key not in seen:
                seen.add(key)
                incl[key] += count
        # the library the last project frame called into (where the project's time goes)
        last_project = max((i for i, fr in enumerate(body) if frame_key(fr)[1].startswith(PROJECT)), default=-1)
        if 0 <= last_project < len(body) - 1:
            lib_from_project[module_of(frame_key(body[last_project + 1])[1])] += count
        elif last_project == len(body) - 1:
            lib_from_project["(project code itself)"] += count
    lines = [f"{total} samples = {total / rate:.1f} CPU-s over {calls} calls: {ms(total)} CPU-ms per call "
             "(Python-visible threads; pjsua2's own C threads, if any, are not seen)", "", "per thread:"]
    lines += [f"  {ms(c)} ms/call  {100 * c / total:5.1f} %  {t}" for t, c in threads.most_common()]
    lines += ["", f"top {top} by self time (the frame on the CPU):"]
    lines += [f"  {ms(c)} ms/call  {100 * c / total:5.1f} %  {f} ({file})"
              for (f, file), c in self_time.most_common(top)]
    lines += ["", f"top {top} project functions by inclusive time:"]
    lines += [f"  {ms(c)} ms/call  {100 * c / total:5.1f} %  {file}:{f}" for (f, file), c in incl.most_common(top)]
    lines += ["", "where the project's frames spend it (the library called from the last project frame):"]
    lines += [f"  {ms(c)} ms/call  {100 * c / total:5.1f} %  {lib}" for lib, c in lib_from_project.most_common(top)]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("profile", type=Path, help="py-spy collapsed stacks (--format raw)")
    p.add_argument("--calls", type=int, required=True, help="calls placed while py-spy recorded")
    p.add_argument("--rate", type=float, default=100.0, help="py-spy's samples per second (--rate)")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    if args.calls < 1 or args.rate <= 0:
        p.error("--calls must be >= 1 and --rate > 0")
    try:
        stacks = parse(args.profile)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not stacks:
        print(f"error: {args.profile}: no samples", file=sys.stderr)
        return 2
    print("\n".join(summarise(stacks, args.calls, args.rate, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`callcenter models list|install|verify`: the vosk models under <data_dir>/models (see asr/models.py).

These work on the data directory only (a model is files the server reads at start-up, through
``[asr] vosk_model``; no running server is needed or asked).

    callcenter models list [--json]
    callcenter models install PATH_OR_URL [--name NAME] [--sha256 HEX] [--no-load-check]
    callcenter models verify [NAME] [--no-load]

Exit codes: 0 done (verify: every model checked out); 1 the install failed or a model did not verify (one
line on stderr says why); 2 anything else (bad arguments, no data directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from asr.exceptions import ModelError
from asr.models import install, list_models, verify

from .settings import check_data_dir, load_settings, with_overrides


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the models subcommands to ``sub`` (``common`` adds --config/--data-dir)."""
    ml = sub.add_parser("list", help="installed vosk models (name, sample rate, size, checksum, source)")
    common(ml)
    ml.add_argument("--json", action="store_true", help="print JSON instead of a table")
    mi = sub.add_parser("install", help="install a vosk model from a .zip/.tar.gz/.tgz file or an http(s) URL")
    common(mi)
    mi.add_argument("source", metavar="PATH_OR_URL")
    mi.add_argument("--name", help="the folder name under <data_dir>/models (default: the archive's model folder)")
    mi.add_argument("--sha256", help="the archive's expected SHA-256: refuse it if it differs")
    mi.add_argument("--no-load-check", action="store_true", help="do not load the model once after unpacking")
    mv = sub.add_parser("verify", help="re-checksum installed models and load them with vosk")
    common(mv)
    mv.add_argument("name", nargs="?", help="one model (default: all)")
    mv.add_argument("--no-load", action="store_true", help="checksums only, do not load the model")


def _data_dir(args: argparse.Namespace) -> Path:
    return check_data_dir(with_overrides(load_settings(args.config), data_dir=args.data_dir).data_dir)


def _err(message: str) -> None:
    print(f"callcenter: error: {message}", file=sys.stderr)


def _mib(n: int) -> str:
    return f"{n / 1024 ** 2:.0f} MiB" if n else "-"


def list_cmd(args: argparse.Namespace) -> int:
    try:
        models = list_models(_data_dir(args))
    except ModelError as exc:
        _err(str(exc))
        return 1
    if args.json:
        print(json.dumps([{"name": m.name, "path": str(m.path), "sample_rate": m.sample_rate,
                           "archive_sha256": m.archive_sha256, "files_sha256": m.files_sha256,
                           "source": m.source, "installed_at": m.installed_at, "size_bytes": m.size_bytes,
                           "files": m.files} for m in models], indent=2))
        return 0
    if not models:
        print("no vosk models installed (callcenter models install PATH_OR_URL)", file=sys.stderr)
        return 0
    width = max(4, *(len(m.name) for m in models))
    print(f"{'NAME':<{width}}  RATE   SIZE      SHA256        INSTALLED             SOURCE")
    for m in models:
        sha = m.archive_sha256[:12] if m.in_manifest else "(by hand)"
        print(f"{m.name:<{width}}  {m.sample_rate:<5}  {_mib(m.size_bytes):<8}  {sha:<12}  "
              f"{m.installed_at or '-':<20}  {m.source or '-'}")
    return 0


def install_cmd(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    try:
        m = install(args.source, data_dir, name=args.name, sha256=args.sha256,
                    load_check=not args.no_load_check, progress=sys.stderr.isatty())
    except ModelError as exc:
        _err(str(exc))
        return 1
    print(f"installed {m.name} in {m.path} ({m.files} files, {_mib(m.size_bytes)}, {m.sample_rate} Hz; "
          f"archive sha256 {m.archive_sha256})")
    print(f'use it with [asr] engine = "vosk", vosk_model = "{m.path}" in callcenter.toml', file=sys.stderr)
    return 0


def verify_cmd(args: argparse.Namespace) -> int:
    try:
        results = verify(_data_dir(args), args.name, load=not args.no_load)
    except ModelError as exc:
        _err(str(exc))
        return 1
    if not results:
        print("no vosk models installed", file=sys.stderr)
        return 0
    for r in results:
        how = f"loaded in {r.load_seconds:.1f} s" if r.load_seconds is not None else "not loaded"
        if r.ok:
            note = f" ({'; '.join(r.problems)})" if r.problems else ""
            print(f"{r.name}: ok, {how}{note}")
        else:
            print(f"{r.name}: FAILED: {'; '.join(r.problems)}")
    return 0 if all(r.ok for r in results) else 1


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": list_cmd,
    "install": install_cmd,
    "verify": verify_cmd,
}

"""The `callcenter` command: serve, calls, user, flow, agent, queue, customer, report, recordings, jobs,
models, transcribe."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from voice.text import clean

from . import acd_cli, flow_cli, models_cli, qa_report_cli, recordings_cli, report_cli, transcribe_cli
from .exceptions import CallCenterError
from .logs import setup_logging
from .settings import Settings, check_data_dir, load_settings, with_overrides
from .storage.db import Database
from .storage.repos import ROLES, CallRepo, UserRepo


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1..65535)")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="callcenter.toml (default: config/callcenter.toml if present)")
    p.add_argument("--data-dir", type=Path, help="where the database, recordings and prompts live")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description="Telephony-first contact center.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the SIP server, the IVR and the HTTP API")
    _common(serve)
    serve.add_argument("--host", help="address for SIP and HTTP (default 0.0.0.0)")
    serve.add_argument("--sip-port", type=_port, help="SIP port, UDP and TCP (default 5060)")
    serve.add_argument("--http-port", type=_port, help="HTTP port (default 8080)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    calls = sub.add_parser("calls", help="inspect calls").add_subparsers(dest="action", required=True)
    cl = calls.add_parser("list", help="newest calls first")
    _common(cl)
    cl.add_argument("--limit", type=int, default=20)
    cl.add_argument("--json", action="store_true", help="print JSON instead of a table")

    user = sub.add_parser("user", help="API users and their tokens").add_subparsers(dest="action", required=True)
    ua = user.add_parser("add", help="create a user and print its bearer token")
    _common(ua)
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=ROLES)
    ul = user.add_parser("list", help="list users")
    _common(ul)

    flow = sub.add_parser("flow", help="IVR flows: validate, test, deploy...").add_subparsers(dest="action",
                                                                                              required=True)
    flow_cli.add_parsers(flow, _common)
    acd_cli.add_parsers(sub, _common)
    report = sub.add_parser("report", help="queue, keyword and QA reports").add_subparsers(dest="action",
                                                                                          required=True)
    report_cli.add_parsers(report, _common)
    qa_report_cli.add_parsers(report, _common)
    recordings_cli.add_parsers(sub, _common)
    models = sub.add_parser("models", help="speech models: list, install, verify").add_subparsers(dest="action",
                                                                                                  required=True)
    models_cli.add_parsers(models, _common)
    transcribe_cli.add_parser(sub, _common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    s = load_settings(args.config)
    return with_overrides(
        s,
        data_dir=args.data_dir,
        host=getattr(args, "host", None),
        sip_port=getattr(args, "sip_port", None),
        http_port=getattr(args, "http_port", None),
    )


async def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[Any]]) -> Any:
    db = await Database.open(check_data_dir(settings.data_dir))
    try:
        return await fn(db)
    finally:
        await db.close()


def _calls_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = asyncio.run(
        _with_db(_settings(args), lambda db: CallRepo(db).latest(max(1, args.limit)))
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ("id", "started_at", "caller", "disposition", "recording_seconds")
    print("  ".join(f"{c:<32}" if c == "id" else c for c in cols))
    for r in rows:
        caller = clean(r["caller"], 40)  # (cleaned by the engine already; rows of older runs may not be)
        print(f"{r['id']:<32}  {r['started_at']}  {caller}  {r['disposition'] or 'active'}  "
              f"{r['recording_seconds'] if r['recording_seconds'] is not None else '-'}")
    return 0


def _user_add(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(32)
    try:
        asyncio.run(_with_db(_settings(args), lambda db: UserRepo(db).add(args.name, args.role, token)))
    except sqlite3.IntegrityError:
        print(f"callcenter: error: user {args.name!r} already exists", file=sys.stderr)
        return 2
    print(token)
    return 0


def _user_list(args: argparse.Namespace) -> int:
    for u in asyncio.run(_with_db(_settings(args), lambda db: UserRepo(db).all())):
        print(f"{u.id}\t{u.name}\t{u.role}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .server import serve  # imports pjsua2: only for the command that needs it

    settings = _settings(args)
    setup_logging(args.log_level or settings.log_level)
    # uvloop: a tap on every call wakes a reader coroutine per call 25 times a second, and
    # uvloop's scheduling costs about half of asyncio's (bench/tap.py).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(settings))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers: dict[tuple[str, str | None], Callable[[argparse.Namespace], int]] = {
        ("serve", None): _serve,
        ("calls", "list"): _calls_list,
        ("user", "add"): _user_add,
        ("user", "list"): _user_list,
        **{("flow", action): handler for action, handler in flow_cli.HANDLERS.items()},
        **{("agent", action): handler for action, handler in acd_cli.AGENT_HANDLERS.items()},
        **{("queue", action): handler for action, handler in acd_cli.QUEUE_HANDLERS.items()},
        **{("customer", action): handler for action, handler in acd_cli.CUSTOMER_HANDLERS.items()},
        **{("report", action): handler for action, handler in report_cli.HANDLERS.items()},
        **{("report", action): handler for action, handler in qa_report_cli.HANDLERS.items()},
        **{(group, action): handler for (group, action), handler in recordings_cli.HANDLERS.items()},
        **{("models", action): handler for action, handler in models_cli.HANDLERS.items()},
        ("transcribe", None): transcribe_cli.handler,
    }
    try:
        return handlers[(args.command, getattr(args, "action", None))](args)
    except CallCenterError as exc:
        print(f"callcenter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

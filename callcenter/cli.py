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
from .exceptions import CallCenterError, ConfigError
from .logs import setup_logging
from .settings import Settings, check_data_dir, load_settings, with_overrides
from .storage.db import Database, run_with_database
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

    user = sub.add_parser("user", help="users: passwords for the pages, bearer tokens for the API").add_subparsers(
        dest="action", required=True)
    ua = user.add_parser("add", help="create a user and print its bearer token; asks for a password on a terminal",
                         description="Creates a user and prints its bearer token (for API clients) on standard "
                                     "output. The password (for the web pages) comes from --password-file, else "
                                     "is asked twice on the terminal (Enter: none); with neither, the user is "
                                     "token-only.")
    _common(ua)
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=ROLES)
    ua.add_argument("--password-file", type=Path, metavar="FILE",
                    help="read the password from FILE (its first line; - for standard input)")
    up = user.add_parser("passwd", help="set a user's password (signs them out everywhere)")
    _common(up)
    up.add_argument("name")
    up.add_argument("--password-file", type=Path, metavar="FILE",
                    help="read the password from FILE (its first line; - for standard input)")
    ul = user.add_parser("list", help="list users (id, name, role, whether a password is set)")
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


def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[Any]]) -> Any:
    return run_with_database(check_data_dir(settings.data_dir), fn)


def _calls_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = _with_db(_settings(args), lambda db: CallRepo(db).latest(max(1, args.limit)))
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


def _new_password(args: argparse.Namespace, *, required: bool) -> str | None:
    """The password for ``args.name``: from --password-file if given, else asked twice on the terminal.

    None: no password (a token-only user): Enter at the prompt, or no terminal and no file, when not ``required``.
    """
    from .auth import check_new_password

    if args.password_file is not None:
        where = "standard input" if str(args.password_file) == "-" else str(args.password_file)
        try:
            text = sys.stdin.readline() if str(args.password_file) == "-" else \
                args.password_file.read_text(encoding="utf-8").partition("\n")[0]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the password from {where}: {getattr(exc, 'strerror', None) or exc}") \
                from None
        password = text.rstrip("\r\n")
        try:
            check_new_password(password)
        except ValueError as exc:
            raise ConfigError(f"the password in {where}: {exc}") from None
        return password
    if not sys.stdin.isatty():
        if required:
            raise ConfigError("no terminal to ask for the password on: use --password-file FILE (- for standard input)")
        return None
    import getpass

    hint = "" if required else ", Enter for none: an API-only user"
    for _ in range(3):
        first = getpass.getpass(f"Password for {args.name} (at least 8 characters{hint}): ")
        if not first and not required:
            return None
        try:
            check_new_password(first)
        except ValueError as exc:
            print(f"callcenter: {exc}", file=sys.stderr)
            continue
        if getpass.getpass("The same password again: ") == first:
            return first
        print("callcenter: the two passwords differ", file=sys.stderr)
    raise ConfigError(f"no password set for {args.name} (three tries)")


def _user_add(args: argparse.Namespace) -> int:
    from .auth import hash_password

    password = _new_password(args, required=False)
    hashed = hash_password(password) if password is not None else None
    token = secrets.token_urlsafe(32)
    try:
        _with_db(_settings(args), lambda db: UserRepo(db).add(args.name, args.role, token, password_hash=hashed))
    except sqlite3.IntegrityError:
        print(f"callcenter: error: user {args.name!r} already exists", file=sys.stderr)
        return 2
    print(token)
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    from .auth import hash_password

    settings = _settings(args)
    if _with_db(settings, lambda db: UserRepo(db).by_name(args.name)) is None:
        print(f"callcenter: error: no user {args.name!r}", file=sys.stderr)
        return 2
    hashed = hash_password(_new_password(args, required=True) or "")
    if _with_db(settings, lambda db: UserRepo(db).set_password(args.name, hashed)) is None:
        print(f"callcenter: error: no user {args.name!r}", file=sys.stderr)
        return 2
    print(f"password of {args.name} set; their page sessions are signed out", file=sys.stderr)
    return 0


def _user_list(args: argparse.Namespace) -> int:
    async def listing(db: Database) -> list[tuple[Any, str | None]]:
        users = UserRepo(db)
        set_at = await users.password_set_at()
        return [(u, set_at.get(u.id)) for u in await users.all()]

    for u, set_at in _with_db(_settings(args), listing):
        print(f"{u.id}\t{u.name}\t{u.role}\t{'password set ' + set_at[:10] if set_at else 'token only'}")
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
        ("user", "passwd"): _user_passwd,
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

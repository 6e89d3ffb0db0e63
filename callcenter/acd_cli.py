"""`callcenter agent ...`, `callcenter queue ...`, `callcenter customer ...`: the ACD from a shell.

Like `callcenter flow` (callcenter/flow_cli.py), every command goes through the running server's
API when one answers (``--server URL``; default ``http://127.0.0.1:<http_port>``), so the live ACD
applies a change at once; when none answers at the default address it works on the data
directory's database directly (stderr says which; the two backends are callcenter/acd_backends.py).
Then ``agent login|logout|pause|resume`` only record the requested state, which the server
applies when it starts, and say so. An explicit ``--server`` that does not answer is an error. The
token comes from ``--token-file FILE`` or ``$CALLCENTER_TOKEN``, never from the command line (admin
to add or change agents and queues; an agent's own token may change that agent's state).

Exit codes: 0 done; 1 a CSV has bad lines (all printed as FILE:LINE: message); 2 anything else
(invalid fields, no such agent or queue, a refused token, no server and no data directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routing.config import format_skills
from routing.exceptions import ConfigInvalid

from .acd_backends import Backend, NotFound, Recorded, connect
from .agent_import import read_csv_file
from .exceptions import CallCenterError, ConfigError
from .flow_cli import TOKEN_ENV, _err, _read
from .storage.acd import (
    CsvInvalid,
)

Handler = Callable[[argparse.Namespace], int]
Common = Callable[[argparse.ArgumentParser], None]
STATE_ACTIONS = ("login", "logout", "pause", "resume")


# -- parsers ---------------------------------------------------------------------------------------------

def _cmd(group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str,
         common: Common) -> argparse.ArgumentParser:
    """A subcommand with the common options, --server and --token-file. No abbreviated options:
    ``--token SECRET`` must be an error, not ``--token-file SECRET``."""
    p = group.add_parser(name, help=help, allow_abbrev=False)
    common(p)
    p.add_argument("--server", help="the server's base URL (default http://127.0.0.1:<http_port>)")
    p.add_argument("--token-file", type=Path, help=f"a file holding the API token (or set {TOKEN_ENV})")
    return p


def _optional_seconds(text: str) -> float | None:
    if text.strip().lower() in ("none", "agent", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (or 'agent': each agent's own)")\
            from None


def add_agent_parsers(agent: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    """`agent add|list|show|remove|login|logout|pause|resume` under ``agent`` (dest ``action``)."""
    a = _cmd(agent, "add", "add an agent (or change one with --update)", common)
    a.add_argument("id")
    a.add_argument("--name")
    a.add_argument("--team")
    a.add_argument("--uri", help="how the engine reaches them: sip:alice@10.0.0.5:5060")
    a.add_argument("--skills", help="skill:proficiency pairs, e.g. support:3,english:1 (proficiency 1..5)")
    a.add_argument("--wrap-up", type=float, dest="wrap_up_s", help="seconds after each call (default 10)")
    a.add_argument("--max-offers", type=int, dest="max_offers", help="offers ringing at once (default 1)")
    a.add_argument("--weight", type=int, help="weighted-random's weight (default 1)")
    a.add_argument("--order", type=int, help="linear's order, lower first (default 0)")
    a.add_argument("--user", help="the API user who is this agent (may change their own state)")
    a.add_argument("--update", action="store_true", help="change an existing agent: only the options given")
    _cmd(agent, "list", "configured agents and their requested states", common) \
        .add_argument("--json", action="store_true", help="print JSON instead of a table")
    s = _cmd(agent, "show", "an agent's configuration and live status", common)
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    _cmd(agent, "remove", "delete an agent (the live ACD logs them out)", common).add_argument("id")
    i = _cmd(agent, "import", "add or change many agents from a CSV (id,name,team,uri,skills,...)", common)
    i.add_argument("file", type=Path)
    i.add_argument("--skip-bad", action="store_true", help="import the good rows, report the bad ones")
    i.add_argument("--json", action="store_true", help="print the result as JSON")
    for action in STATE_ACTIONS:
        p = _cmd(agent, action, f"{action} an agent", common)
        p.add_argument("id")
        p.add_argument("--reason", default="", help="the break reason code (pause), e.g. lunch")


def add_queue_parsers(queue: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    """`queue add|list|show` under ``queue``."""
    a = _cmd(queue, "add", "add a queue (or change one with --update)", common)
    a.add_argument("name")
    a.add_argument("--skills", help="required skill:minimum pairs, e.g. support:2,english")
    a.add_argument("--strategy", help="ring-all, longest-idle (default), fewest-calls, round-robin, linear, random, "
                                      "weighted-random, best-proficiency")
    a.add_argument("--ring-timeout", type=float, dest="ring_timeout_s", help="seconds an offer rings (default 15)")
    a.add_argument("--max-wait", type=float, dest="max_wait_s", help="seconds before overflow (0: no limit)")
    a.add_argument("--max-length", type=int, dest="max_length", help="waiting callers (0: no limit)")
    a.add_argument("--overflow", help='where callers go then: "", queue:NAME, voicemail:MAILBOX or callback')
    a.add_argument("--wrap-up", type=_optional_seconds, dest="wrap_up_s", default=argparse.SUPPRESS,
                   help="seconds after each call (default 'agent': each agent's own)")
    a.add_argument("--service-level", type=float, dest="service_level_s", help="answered within T s (default 20)")
    a.add_argument("--hold-music", dest="hold_music", help="a WAV file or a folder of them")
    a.add_argument("--announce-every", type=float, dest="announce_every_s",
                   help="seconds between position/wait announcements (0: none; default 30)")
    a.add_argument("--no-callback", dest="callback", action="store_false", default=None,
                   help='do not offer "press 1 to be called back"')
    a.add_argument("--priority", type=int, help="an agent serving several queues takes the highest first")
    a.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="any other queue field (JSON values: --set 'escalation=[{\"after_s\": 30, ...}]')")
    a.add_argument("--update", action="store_true", help="change an existing queue: only the options given")
    _cmd(queue, "list", "configured queues", common) \
        .add_argument("--json", action="store_true", help="print JSON instead of a table")
    s = _cmd(queue, "show", "a queue's configuration", common)
    s.add_argument("name")
    s.add_argument("--json", action="store_true")


def add_customer_parsers(customer: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    """`customer import|show` under ``customer``."""
    i = _cmd(customer, "import", "upsert customers from a CSV (phone,name,vip_tier,language,last_agent,notes)",
             common)
    i.add_argument("file", type=Path)
    i.add_argument("--skip-bad", action="store_true", help="import the good lines, report the bad ones")
    s = _cmd(customer, "show", "a customer's profile and last calls", common)
    s.add_argument("phone")
    s.add_argument("--json", action="store_true")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    """Register the three command groups ``agent``, ``queue`` and ``customer`` (each with dest ``action``)."""
    add_agent_parsers(sub.add_parser("agent", help="ACD agents: add, list, log in/out, pause...")
                      .add_subparsers(dest="action", required=True), common)
    add_queue_parsers(sub.add_parser("queue", help="ACD queues: add, list, show")
                      .add_subparsers(dest="action", required=True), common)
    add_customer_parsers(sub.add_parser("customer", help="customer profiles: import a CSV, show one")
                         .add_subparsers(dest="action", required=True), common)


def _command(fn: Callable[[Backend, argparse.Namespace], int]) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        try:
            backend = connect(args)
        except CallCenterError as exc:
            _err(str(exc))
            return 2
        print(f"(via {backend.where})", file=sys.stderr)
        try:
            return fn(backend, args)
        except ConfigInvalid as exc:
            for p in exc.problems:
                print(f"{exc.what}: {p}", file=sys.stderr)
            _err(f"{exc.what} is invalid: nothing was changed")
            return 2
        except CsvInvalid as exc:
            for p in exc.problems:
                print(p, file=sys.stderr)
            _err(str(exc))
            return 1
        except CallCenterError as exc:
            _err(str(exc))
            return 2
        finally:
            backend.close()

    return handler


# -- printing ---------------------------------------------------------------------------------------------

def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for line in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _fields_text(d: dict[str, Any]) -> None:
    for k, v in d.items():
        if isinstance(v, dict) and k == "skills":
            v = format_skills(v) or "-"
        elif isinstance(v, list | dict):
            v = json.dumps(v)
        print(f"{k:<18} {'' if v is None else v}")


# -- agent -----------------------------------------------------------------------------------------------

def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The options given on the command line (``--skills`` stays text: routing.config reads "a:3,b")."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _agent_add(backend: Backend, args: argparse.Namespace) -> int:
    fields = _given(args, ("name", "team", "uri", "skills", "wrap_up_s", "max_offers", "weight", "order", "user"))
    if args.update:
        out = backend.change("agent", args.id, fields)
        print(f"agent {out['id']} changed" + ("" if backend.live else " (the server applies it when it starts)"))
    else:
        out = backend.add("agent", {"id": args.id, **fields})
        print(f"agent {out['id']} added (logged out)")
    return 0


def _agent_list(backend: Backend, args: argparse.Namespace) -> int:
    rows = backend.list("agent")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no agents configured", file=sys.stderr)
        return 0
    state = lambda r: f"{r['state']}({r['reason']})" if r["reason"] else r["state"]  # noqa: E731
    _table([[r["id"], r["name"], r["team"], state(r), format_skills(r["skills"]) or "-", r["uri"] or "-",
             r["user"] or "-"] for r in rows], ["ID", "NAME", "TEAM", "REQUESTED", "SKILLS", "URI", "USER"])
    return 0


def _agent_show(backend: Backend, args: argparse.Namespace) -> int:
    got = backend.get("agent", args.id)
    if got is None:
        raise NotFound(f"no agent {args.id!r} is configured")
    status = backend.status(args.id)
    if args.json:
        print(json.dumps({**got, "status": status}, indent=2))
        return 0
    _fields_text(got)
    if status is not None:
        live = "live" if status.get("live") else "recorded (the ACD is not running)"
        print(f"{'status':<18} {status['state']}{' (' + status['reason'] + ')' if status.get('reason') else ''}"
              f"{', then ' + status['pending'] if status.get('pending') else ''}"
              f"{', on ' + status['contact'] if status.get('contact') else ''} [{live}]")
    return 0


def _agent_remove(backend: Backend, args: argparse.Namespace) -> int:
    backend.remove_agent(args.id)
    print(f"agent {args.id} removed")
    return 0


def _agent_import(backend: Backend, args: argparse.Namespace) -> int:
    out = backend.import_agents(read_csv_file(args.file), str(args.file), args.skip_bad)
    for p in out["problems"]:
        print(f"{p} (skipped)", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    counts = f"added {len(out['added'])}, changed {len(out['changed'])}, unchanged {len(out['unchanged'])}"
    later = "" if backend.live or not (out["added"] or out["changed"]) else " (the server applies it when it starts)"
    print(f"{args.file}: {counts}, skipped {out['skipped']}{later}")
    return 0


def _state(action: str) -> Callable[[Backend, argparse.Namespace], int]:
    def run(backend: Backend, args: argparse.Namespace) -> int:
        try:
            out = backend.set_state(args.id, action, args.reason)
        except Recorded as exc:
            print(f"agent {args.id}: {action} recorded; {exc}", file=sys.stderr)
            return 0
        if not out.get("live"):
            print(f"agent {args.id}: {action} recorded as {out['state']}"
                  f"{' (' + out['reason'] + ')' if out.get('reason') else ''}; no server is running, "
                  "it applies when the server starts")
            return 0
        pending = f" ({out['pending']} after the current call)" if out.get("pending") else ""
        print(f"agent {args.id}: {out['state']}{' (' + out['reason'] + ')' if out.get('reason') else ''}{pending}")
        return 0

    return run


# -- queue -----------------------------------------------------------------------------------------------

QUEUE_FLAGS = ("skills", "strategy", "ring_timeout_s", "max_wait_s", "max_length", "overflow", "wrap_up_s",
               "service_level_s", "hold_music", "announce_every_s", "callback", "priority")


def parse_setting(text: str) -> tuple[str, Any]:
    """``key=value`` with a JSON value (``30``, ``true``, ``[...]``), else the text as is."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE (e.g. --set aging_per_min=2)")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _queue_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = _given(args, QUEUE_FLAGS)
    if hasattr(args, "wrap_up_s"):           # (--wrap-up agent: None, i.e. each agent's own)
        fields["wrap_up_s"] = args.wrap_up_s
    for text in args.settings:
        key, value = parse_setting(text)
        fields[key] = value
    return fields


def _queue_add(backend: Backend, args: argparse.Namespace) -> int:
    fields = _queue_fields(args)
    if args.update:
        out = backend.change("queue", args.name, fields)
        print(f"queue {out['name']} changed" + ("" if backend.live else " (the server applies it when it starts)"))
    else:
        out = backend.add("queue", {"name": args.name, **fields})
        print(f"queue {out['name']} added ({out['strategy']})")
    return 0


def _queue_list(backend: Backend, args: argparse.Namespace) -> int:
    rows = backend.list("queue")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no queues configured", file=sys.stderr)
        return 0
    _table([[r["name"], r["strategy"], format_skills(r["skills"]) or "-", str(r["priority"]),
             f"{r['ring_timeout_s']:g}", f"{r['max_wait_s']:g}" if r["max_wait_s"] else "-", r["overflow"] or "-"]
            for r in rows], ["QUEUE", "STRATEGY", "SKILLS", "PRIORITY", "RING_S", "MAX_WAIT_S", "OVERFLOW"])
    return 0


def _queue_show(backend: Backend, args: argparse.Namespace) -> int:
    got = backend.get("queue", args.name)
    if got is None:
        raise NotFound(f"no queue {args.name!r} is configured")
    if args.json:
        print(json.dumps(got, indent=2))
    else:
        _fields_text(got)
    return 0


# -- customer --------------------------------------------------------------------------------------------

def _customer_import(backend: Backend, args: argparse.Namespace) -> int:
    out = backend.import_customers(_read(args.file), str(args.file), args.skip_bad)
    for p in out["skipped"]:
        print(f"{p} (skipped)", file=sys.stderr)
    skipped = f", {len(out['skipped'])} bad lines skipped" if out["skipped"] else ""
    print(f"{args.file}: {out['inserted']} new, {out['updated']} updated{skipped}")
    return 0


def _customer_show(backend: Backend, args: argparse.Namespace) -> int:
    got = backend.get("customer", args.phone)
    if got is None:
        raise NotFound(f"no customer profile and no calls for {args.phone!r}")
    if args.json:
        print(json.dumps(got, indent=2))
        return 0
    calls = got.pop("calls")
    if not got.pop("known"):
        print(f"{got['phone']}: no profile (the number has called)")
    else:
        _fields_text(got)
    if calls:
        print()
        _table([[c["started_at"], c["direction"], c["queue"] or "-", c["agent"] or "-",
                 c["disposition"] or "active", c["id"]] for c in calls],
               ["STARTED", "DIRECTION", "QUEUE", "AGENT", "DISPOSITION", "CALL"])
    return 0


AGENT_HANDLERS: dict[str, Handler] = {
    "add": _command(_agent_add),
    "list": _command(_agent_list),
    "show": _command(_agent_show),
    "remove": _command(_agent_remove),
    "import": _command(_agent_import),
    **{action: _command(_state(action)) for action in STATE_ACTIONS},
}
QUEUE_HANDLERS: dict[str, Handler] = {
    "add": _command(_queue_add),
    "list": _command(_queue_list),
    "show": _command(_queue_show),
}
CUSTOMER_HANDLERS: dict[str, Handler] = {
    "import": _command(_customer_import),
    "show": _command(_customer_show),
}

"""`callcenter agent ...`, `callcenter queue ...`, `callcenter customer ...`: the ACD from a shell.

Like `callcenter flow` (callcenter/flow_cli.py), every command goes through the running server's
API when one answers (``--server URL``; default ``http://127.0.0.1:<http_port>``), so the live ACD
applies a change at once; when none answers at the default address it works on the data
directory's database directly (stderr says which). Then ``agent login|logout|pause|resume`` only
record the requested state, which the server applies when it starts, and say so. An explicit
``--server`` that does not answer is an error. The token comes from ``--token-file FILE`` or
``$CALLCENTER_TOKEN``, never from the command line (admin to add or change agents and queues;
an agent's own token may change that agent's state).

Exit codes: 0 done; 1 a CSV has bad lines (all printed as FILE:LINE: message); 2 anything else
(invalid fields, no such agent or queue, a refused token, no server and no data directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from routing.config import agent_from_dict, format_skills, queue_from_dict
from routing.exceptions import ConfigInvalid

from .agent_import import import_agents, read_csv_file
from .exceptions import AuthError, CallCenterError, ConfigError, UnknownAgent, UnknownQueue
from .flow_cli import TOKEN_ENV, _detail, _err, _json, _read, _token, _trust_env, find_server
from .settings import check_data_dir
from .storage.acd import (
    AgentRepo,
    AlreadyExists,
    CsvInvalid,
    CustomerRepo,
    QueueRepo,
    requested_state,
)
from .storage.db import Database, run_with_database

T = TypeVar("T")
Handler = Callable[[argparse.Namespace], int]
Common = Callable[[argparse.ArgumentParser], None]
STATE_ACTIONS = ("login", "logout", "pause", "resume")


class NotFound(CallCenterError):
    """No such agent, queue or customer."""


class Recorded(CallCenterError):
    """The requested state was recorded but no live ACD applied it (the message says why)."""


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


# -- backends ---------------------------------------------------------------------------------------------

class Backend(Protocol):
    """Both speak the API's JSON shapes (callcenter/acd_api.py)."""

    where: str
    live: bool       # a running server applies changes at once

    def get(self, what: str, key: str) -> dict[str, Any] | None: ...
    def list(self, what: str) -> list[dict[str, Any]]: ...
    def add(self, what: str, fields: dict[str, Any]) -> dict[str, Any]: ...
    def change(self, what: str, key: str, fields: dict[str, Any]) -> dict[str, Any]: ...
    def remove_agent(self, agent_id: str) -> dict[str, Any]: ...
    def set_state(self, agent_id: str, action: str, reason: str) -> dict[str, Any]: ...
    def status(self, agent_id: str) -> dict[str, Any] | None: ...
    def import_customers(self, text: str, file: str, skip_bad: bool) -> dict[str, Any]: ...
    def import_agents(self, text: str, file: str, skip_bad: bool) -> dict[str, Any]: ...
    def close(self) -> None: ...


_PATHS = {"agent": "/api/agents", "queue": "/api/queues", "customer": "/api/customers"}


class ApiBackend:
    live = True

    def __init__(self, url: str, token: str) -> None:
        self.where = f"server {url}"
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0,
                                 trust_env=_trust_env(url))

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, *, what: str = "", missing_ok: bool = False, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CallCenterError(f"the server at {self.url} failed: {exc}") from None
        body = _json(r)
        if r.status_code in (401, 403):
            raise AuthError(r.status_code, f"the server at {self.url} refused: {_detail(r)}")
        if r.status_code == 404 and missing_ok:
            return None
        if r.status_code == 404:
            raise NotFound(_detail(r))
        if r.status_code == 409:
            raise AlreadyExists(_detail(r))
        if r.status_code == 422 and isinstance(body, dict) and isinstance(body.get("errors"), list):
            if what == "csv":
                raise CsvInvalid(list(body["errors"]))
            raise ConfigInvalid(str(body.get("detail", "invalid")).partition(":")[0], list(body["errors"]))
        if r.status_code == 422 and isinstance(body, dict) and isinstance(body.get("detail"), list):
            # FastAPI's own validation of the body's types: [{"loc": ["body", field...], "msg": ...}]
            problems = [".".join(str(x) for x in d.get("loc", [])[1:]) + f": {d.get('msg', '?')}"
                        for d in body["detail"] if isinstance(d, dict)]
            raise ConfigInvalid(what or "request", problems)
        if r.status_code == 503:
            raise Recorded(_detail(r))
        if r.status_code >= 400:
            raise CallCenterError(f"the server answered {r.status_code}: {_detail(r)}")
        return body

    @staticmethod
    def _key(key: str) -> str:
        return quote(key, safe="")

    def get(self, what: str, key: str) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call("GET", f"{_PATHS[what]}/{self._key(key)}", missing_ok=True)
        return out

    def list(self, what: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", _PATHS[what])
        return out

    def add(self, what: str, fields: dict[str, Any]) -> dict[str, Any]:
        key = fields.get("id", fields.get("name", ""))
        out: dict[str, Any] = self._call("POST", _PATHS[what], json=fields, what=f"{what} {key}")
        return out

    def change(self, what: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self._call("PUT", f"{_PATHS[what]}/{self._key(key)}", json=fields,
                                         what=f"{what} {key}")
        return out

    def remove_agent(self, agent_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("DELETE", f"/api/agents/{self._key(agent_id)}")
        return out

    def set_state(self, agent_id: str, action: str, reason: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", f"/api/agents/{self._key(agent_id)}/state",
                                         json={"action": action, "reason": reason})
        return out

    def status(self, agent_id: str) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call("GET", f"/api/agents/{self._key(agent_id)}/status", missing_ok=True)
        return out

    def import_customers(self, text: str, file: str, skip_bad: bool) -> dict[str, Any]:
        out: dict[str, Any] = self._call(
            "POST", "/api/customers/import", what="csv", content=text.encode("utf-8"),
            params={"skip_bad": "true" if skip_bad else "false", "file": file},
            headers={"Content-Type": "text/csv; charset=utf-8"})
        return out

    def import_agents(self, text: str, file: str, skip_bad: bool) -> dict[str, Any]:
        out: dict[str, Any] = self._call(
            "POST", "/api/agents/import", what="csv", content=text.encode("utf-8"),
            params={"skip_bad": "true" if skip_bad else "false", "file": file},
            headers={"Content-Type": "text/csv; charset=utf-8"})
        return out


class DbBackend:
    """The same operations on the data directory's database (one short connection each)."""

    live = False

    def __init__(self, data_dir: Path, why: str = "") -> None:
        self.data_dir = check_data_dir(data_dir)
        self.where = f"data directory {self.data_dir}{why}"

    def close(self) -> None:
        pass

    def _run(self, fn: Callable[[Database], Awaitable[T]]) -> T:
        return run_with_database(self.data_dir, fn)

    def get(self, what: str, key: str) -> dict[str, Any] | None:
        async def go(db: Database) -> dict[str, Any] | None:
            if what == "customer":
                return await CustomerRepo(db).lookup(key)
            rec = await (AgentRepo(db).get(key) if what == "agent" else QueueRepo(db).get(key))
            return rec.to_json() if rec else None

        return self._run(go)

    def list(self, what: str) -> list[dict[str, Any]]:
        async def go(db: Database) -> list[dict[str, Any]]:
            recs = await (AgentRepo(db).all() if what == "agent" else QueueRepo(db).all())
            return [r.to_json() for r in recs]

        return self._run(go)

    def add(self, what: str, fields: dict[str, Any]) -> dict[str, Any]:
        if what == "agent":
            spec = agent_from_dict(fields)
            return self._run(lambda db: AgentRepo(db).add(spec)).to_json()
        qspec = queue_from_dict(fields)
        return self._run(lambda db: QueueRepo(db).add(qspec)).to_json()

    def change(self, what: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            if what == "agent":
                return self._run(lambda db: AgentRepo(db).change(key, fields)).to_json()
            return self._run(lambda db: QueueRepo(db).change(key, fields)).to_json()
        except (UnknownAgent, UnknownQueue) as exc:
            raise NotFound(str(exc)) from None

    def remove_agent(self, agent_id: str) -> dict[str, Any]:
        try:
            return self._run(lambda db: AgentRepo(db).delete(agent_id)).to_json()
        except UnknownAgent as exc:
            raise NotFound(str(exc)) from None

    def set_state(self, agent_id: str, action: str, reason: str) -> dict[str, Any]:
        async def go(db: Database) -> dict[str, Any]:
            repo = AgentRepo(db)
            rec = await repo.get(agent_id)
            if rec is None:
                raise NotFound(f"no agent {agent_id!r} is configured")
            state, why = requested_state(action, rec.state, reason)
            rec = await repo.set_state(agent_id, state, why)
            return {"id": agent_id, "state": rec.state, "reason": rec.reason, "live": False}

        try:
            return self._run(go)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def status(self, agent_id: str) -> dict[str, Any] | None:
        return None

    def import_customers(self, text: str, file: str, skip_bad: bool) -> dict[str, Any]:
        return self._run(lambda db: CustomerRepo(db).import_csv(text, file=file, skip_bad=skip_bad)).to_json()

    def import_agents(self, text: str, file: str, skip_bad: bool) -> dict[str, Any]:
        return self._run(lambda db: import_agents(AgentRepo(db), text, file=file, skip_bad=skip_bad)).to_json()


def connect(args: argparse.Namespace, probe_timeout: float = 2.0) -> Backend:
    """The server's API if one answers at ``--server`` (or the default address); else the data directory."""
    settings, url, up = find_server(args, probe_timeout)
    if not up:
        try:
            return DbBackend(settings.data_dir, f" (no server answers at {url})")
        except ConfigError as cexc:
            raise ConfigError(f"no server answers at {url}, and {cexc}") from None
    token = _token(args)
    if token is None:
        raise AuthError(401, f"the server at {url} needs a token: --token-file FILE or {TOKEN_ENV}")
    return ApiBackend(url, token)


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

"""`callcenter flow ...`: validate, schema, test, and deploy/list/show/diff/rollback of versioned flows.

validate, schema and test work on local files only. deploy, list, show, diff and rollback go through
the running server's API when one answers (``--server URL``; default ``http://127.0.0.1:<http_port>``
from the settings), so the server sees a deploy at once; when none answers at the default address they
write straight into the data directory (a running server notices within a second, see
callcenter/flow_directory.py). Each says on stderr which of the two it used. An explicit ``--server``
that does not answer is an error (no silent fall-back to a local database), and so is a server that
refuses the token (exit 2).

The admin token comes from ``--token-file FILE`` or the ``CALLCENTER_TOKEN`` environment variable,
never from the command line (it would show in ``ps``).

Exit codes: 0 done; 1 a flow or cases file has errors, or a test case failed; 2 anything else (bad
arguments, no such flow or number, no server and no data directory, a refused token).
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from .exceptions import AuthError, ConfigError
from .recognizer import phrase_checker
from .settings import Settings, check_data_dir, load_settings, with_overrides
from .storage.db import Database, run_with_database
from .storage.flows import (
    ConflictError,
    FlowRepo,
    FlowStoreError,
    FlowVersion,
    InvalidFlowError,
    NotFoundError,
    NumberRepo,
    NumberTarget,
    check_number,
    peek_name,
)

T = TypeVar("T")
TOKEN_ENV = "CALLCENTER_TOKEN"


def add_parsers(flow: argparse._SubParsersAction[argparse.ArgumentParser],
                common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the flow subcommands to ``flow`` (``common`` adds --config/--data-dir)."""
    fv = flow.add_parser("validate", help="check flow files; problems print file:line: message")
    common(fv)  # (--config: the [asr] recognizer whose vocabulary speech nodes are checked against)
    fv.add_argument("files", nargs="+", type=Path)
    fs = flow.add_parser("schema", help="print the JSON Schema of flow files (for editors)")
    fs.add_argument("--out", type=Path, help="write it to this file instead")
    ft = flow.add_parser("test", help="run scripted callers through a flow, print node and branch coverage")
    ft.add_argument("file", type=Path)
    ft.add_argument("--cases", type=Path, required=True, help="the test cases (YAML)")

    def remote(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument("--server", help="the server's base URL (default http://127.0.0.1:<http_port>)")
        p.add_argument("--token-file", type=Path, help=f"a file holding an admin token (or set {TOKEN_ENV})")

    fd = flow.add_parser("deploy", help="store a new version of a flow; with --number, route that number to it")
    remote(fd)
    fd.add_argument("file", type=Path)
    fd.add_argument("--number", help="the dialled number (the Request-URI's user part) to point at this version")
    fd.add_argument("--comment", default="", help="why (kept with the version and the number's history)")
    fl = flow.add_parser("list", help="deployed flows, their latest versions and the numbers using them")
    remote(fl)
    fl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fsh = flow.add_parser("show", help="print a deployed flow's YAML (details on stderr)")
    remote(fsh)
    fsh.add_argument("target", metavar="NUMBER_OR_NAME")
    fsh.add_argument("--version", type=int, help="this version of the flow (default: the number's, or the latest)")
    fdf = flow.add_parser("diff", help="unified diff of two flows: name@version, name, NUMBER or a file")
    remote(fdf)
    fdf.add_argument("a")
    fdf.add_argument("b")
    fr = flow.add_parser("rollback", help="point a number back at its previous flow version (or --to VERSION)")
    remote(fr)
    fr.add_argument("number")
    fr.add_argument("--to", type=int, help="this version of the number's current flow")
    fr.add_argument("--comment", default="")


def _err(message: str) -> None:
    print(f"callcenter: error: {message}", file=sys.stderr)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


# -- local commands ---------------------------------------------------------------------------------

def validate(args: argparse.Namespace) -> int:
    from ivr.flow import check_flow

    texts: dict[Path, str] = {}
    status = 0
    for f in args.files:
        try:
            texts[f] = _read(f)
        except ConfigError as exc:
            print(f"{f}:0: {exc}", file=sys.stderr)
            status = 1
    # Subflow nodes may name any flow given on this command line (and deployed ones, checked at deploy).
    names = {n for n in (peek_name(t) for t in texts.values()) if n}
    phrase_check = phrase_checker(_settings(args))
    for f, text in texts.items():
        flow, problems = check_flow(text, file=str(f), base_dir=f.parent, known_flows=names or None,
                                    phrase_check=phrase_check)
        for p in problems:
            print(p, file=sys.stderr)
        errors = sum(p.severity != "warning" for p in problems)
        warnings = len(problems) - errors
        if flow is None or errors:
            status = 1
            print(f"{f}: {errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
        else:
            extra = f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
            print(f"{f}: ok ({flow.name}, {len(flow.nodes)} nodes{extra})")
    return status


def schema(args: argparse.Namespace) -> int:
    from ivr.schema import flow_schema

    text = json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def test(args: argparse.Namespace) -> int:
    from ivr.cases import CasesError, run_cases
    from ivr.exceptions import FlowError

    try:
        report = run_cases(args.file, args.cases)
    except CasesError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    except FlowError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(report.text())
    return 0 if report.passed else 1


# -- backends: the server's API, or the data directory ---------------------------------------------

class Backend(Protocol):
    """Both return the API's JSON shapes (see callcenter/flows_api.py) and raise FlowStoreError/AuthError."""

    where: str

    def deploy(self, text: str, file: str, number: str | None, comment: str, source_dir: str) -> dict[str, Any]: ...
    def flows(self) -> list[dict[str, Any]]: ...
    def flow(self, name: str) -> dict[str, Any] | None: ...
    def version(self, name: str, version: int) -> dict[str, Any] | None: ...
    def number(self, number: str) -> dict[str, Any] | None: ...
    def rollback(self, number: str, to: int | None, comment: str) -> dict[str, Any]: ...
    def close(self) -> None: ...


class ApiBackend:
    def __init__(self, url: str, token: str) -> None:
        self.where = f"server {url}"
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0,
                                 trust_env=_trust_env(url))

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, json_body: Any = None, missing_ok: bool = False) -> Any:
        try:
            r = self.http.request(method, path, json=json_body)
        except httpx.HTTPError as exc:
            raise FlowStoreError(f"the server at {self.url} failed: {exc}") from None
        if r.status_code in (401, 403):
            raise AuthError(r.status_code, f"the server at {self.url} refused the token: {_detail(r)}")
        if r.status_code == 404 and missing_ok:
            return None
        if r.status_code == 404:
            raise NotFoundError(_detail(r))
        if r.status_code == 409:
            raise ConflictError(_detail(r))
        if r.status_code == 422 and isinstance(_json(r), dict) and "errors" in _json(r):
            body = _json(r)
            raise InvalidFlowError(list(body["errors"]), list(body.get("warnings", [])))
        if r.status_code >= 400:
            raise FlowStoreError(f"the server answered {r.status_code}: {_detail(r)}")
        return r.json()

    def deploy(self, text: str, file: str, number: str | None, comment: str, source_dir: str) -> dict[str, Any]:
        body = {"text": text, "number": number, "comment": comment, "file": file, "source_dir": source_dir}
        out: dict[str, Any] = self._call("POST", "/api/flows", body)
        return out

    def flows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/api/flows")
        return out

    def flow(self, name: str) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call("GET", f"/api/flows/{quote(name, safe='')}", missing_ok=True)
        return out

    def version(self, name: str, version: int) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call("GET", f"/api/flows/{quote(name, safe='')}/versions/{version}",
                                                missing_ok=True)
        return out

    def number(self, number: str) -> dict[str, Any] | None:
        out: dict[str, Any] | None = self._call("GET", f"/api/numbers/{quote(number, safe='')}", missing_ok=True)
        return out

    def rollback(self, number: str, to: int | None, comment: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", f"/api/numbers/{quote(number, safe='')}/rollback",
                                         {"to": to, "comment": comment})
        return out


def _trust_env(url: str) -> bool:
    """Proxy variables (HTTP_PROXY...) apply to a remote server, never to this machine's own (nor its token)."""
    host = httpx.URL(url).host
    return host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("127.")


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _detail(r: httpx.Response) -> str:
    body = _json(r)
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return r.text[:200] or r.reason_phrase


def _number_json(t: NumberTarget) -> dict[str, Any]:
    return {"number": t.number, "flow": t.flow, "version": t.version, "updated_at": t.updated_at,
            "updated_by": t.updated_by, "action": t.action, "comment": t.comment}


def _version_json(v: FlowVersion) -> dict[str, Any]:
    out = {"name": v.name, "version": v.version, "sha256": v.sha256, "created_at": v.created_at,
           "created_by": v.created_by, "comment": v.comment}
    return out if v.text is None else {**out, "text": v.text}


class DbBackend:
    """The same operations straight on the data directory's database (one short connection each)."""

    def __init__(self, data_dir: Path, why: str = "", phrase_check: Any = None) -> None:
        self.data_dir = check_data_dir(data_dir)
        self.phrase_check = phrase_check
        self.where = f"data directory {self.data_dir}{why}"
        try:
            self.by = f"cli:{getpass.getuser()}"
        except (KeyError, OSError):
            self.by = "cli"

    def close(self) -> None:
        pass

    def _run(self, fn: Callable[[Database], Awaitable[T]]) -> T:
        return run_with_database(self.data_dir, fn)

    def deploy(self, text: str, file: str, number: str | None, comment: str, source_dir: str) -> dict[str, Any]:
        result = self._run(lambda db: FlowRepo(db, self.phrase_check).deploy(
            text, file=file, number=number, comment=comment, by=self.by, source_dir=source_dir))
        prev = {"flow": result.previous[0], "version": result.previous[1]} if result.previous else None
        return {"name": result.name, "version": result.version, "sha256": result.sha256, "created": result.created,
                "number": result.number, "previous": prev, "warnings": result.warnings}

    def flows(self) -> list[dict[str, Any]]:
        async def go(db: Database) -> list[dict[str, Any]]:
            by_flow: dict[str, list[dict[str, Any]]] = {}
            for t in await NumberRepo(db).all():
                by_flow.setdefault(t.flow, []).append(_number_json(t))
            return [{"name": s.name, "latest_version": s.latest, "versions": s.versions, "updated_at": s.updated_at,
                     "numbers": by_flow.get(s.name, [])} for s in await FlowRepo(db).summaries()]

        return self._run(go)

    def flow(self, name: str) -> dict[str, Any] | None:
        async def go(db: Database) -> dict[str, Any] | None:
            versions = await FlowRepo(db).versions(name)
            if not versions:
                return None
            return {"name": name, "latest_version": versions[-1].version,
                    "versions": [_version_json(v) for v in versions],
                    "numbers": [_number_json(t) for t in await NumberRepo(db).for_flow(name)]}

        return self._run(go)

    def version(self, name: str, version: int) -> dict[str, Any] | None:
        v = self._run(lambda db: FlowRepo(db).get(name, version))
        return _version_json(v) if v else None

    def number(self, number: str) -> dict[str, Any] | None:
        async def go(db: Database) -> dict[str, Any] | None:
            repo = NumberRepo(db)
            t = await repo.get(number)
            if t is None:
                return None
            history = [{"at": h.at, "by": h.by, "action": h.action, "flow": h.flow, "version": h.version,
                        "comment": h.comment} for h in await repo.history(number)]
            return {**_number_json(t), "history": history}

        return self._run(go)

    def rollback(self, number: str, to: int | None, comment: str) -> dict[str, Any]:
        before, after = self._run(lambda db: NumberRepo(db).rollback(number, to, by=self.by, comment=comment))
        return {"before": _number_json(before), "after": _number_json(after)}


def _settings(args: argparse.Namespace) -> Settings:
    return with_overrides(load_settings(args.config), data_dir=args.data_dir)


def default_url(settings: Settings) -> str:
    host = settings.http_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{settings.http_port}" if ":" in host else f"http://{host}:{settings.http_port}"


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        token = _read(args.token_file).strip()
        if not token:
            raise ConfigError(f"token file {args.token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or None


def find_server(args: argparse.Namespace, probe_timeout: float = 2.0) -> tuple[Settings, str, bool]:
    """(settings, the server's base URL, whether a callcenter server answers there). ``--server`` given and
    not answering, a bad URL, or something else answering: ConfigError. (The flow, agent and queue commands.)"""
    settings = _settings(args)
    url = (args.server or default_url(settings)).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--server {url!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8080)")
    try:
        r = httpx.get(f"{url}/healthz", timeout=probe_timeout, trust_env=_trust_env(url))
    except httpx.InvalidURL:
        raise ConfigError(f"--server {url!r} is not a URL (e.g. http://127.0.0.1:8080)") from None
    except httpx.TransportError as exc:
        if args.server:
            raise ConfigError(f"no server answers at {url} ({exc.__class__.__name__})") from None
        return settings, url, False
    if r.status_code != 200 or not isinstance(_json(r), dict) or _json(r).get("status") != "ok":
        raise ConfigError(f"{url} answers, but not as a callcenter server (GET /healthz: {r.status_code})")
    return settings, url, True


def connect(args: argparse.Namespace, probe_timeout: float = 2.0) -> Backend:
    """The server's API if one answers at ``--server`` (or the default address); else the data directory."""
    settings, url, up = find_server(args, probe_timeout)
    if not up:
        try:
            return DbBackend(settings.data_dir, f" (no server answers at {url})", phrase_checker(settings))
        except ConfigError as cexc:
            raise ConfigError(f"no server answers at {url}, and {cexc}") from None
    token = _token(args)
    if token is None:
        raise AuthError(401, f"the server at {url} needs an admin token: --token-file FILE or {TOKEN_ENV}")
    return ApiBackend(url, token)


# -- remote commands -------------------------------------------------------------------------------

def _remote(fn: Callable[[Backend, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            backend = connect(args)
        except AuthError as exc:
            _err(str(exc))
            return 2
        print(f"(via {backend.where})", file=sys.stderr)
        try:
            return fn(backend, args)
        except InvalidFlowError as exc:
            for w in exc.warnings:
                print(w, file=sys.stderr)
            for e in exc.errors:
                print(e, file=sys.stderr)
            _err(f"{exc}: nothing was deployed")
            return 1
        except (FlowStoreError, AuthError) as exc:
            _err(str(exc))
            return 2
        finally:
            backend.close()

    return handler


def _deploy(backend: Backend, args: argparse.Namespace) -> int:
    if args.number is not None:
        check_number(args.number)
    text = _read(args.file)
    out = backend.deploy(text, str(args.file), args.number, args.comment, str(args.file.resolve().parent))
    for w in out["warnings"]:
        print(w, file=sys.stderr)
    how = "new version" if out["created"] else "unchanged: the same text as the latest version"
    line = f"{out['name']}@{out['version']} ({how})"
    if out["number"]:
        prev = out["previous"]
        line += f"; number {out['number']} -> {out['name']}@{out['version']}"
        if prev is None:
            line += " (new number)"
        elif (prev["flow"], prev["version"]) == (out["name"], out["version"]):
            line += " (it already pointed there)"
        else:
            line += f" (was {prev['flow']}@{prev['version']})"
    print(line)
    return 0


def _list(backend: Backend, args: argparse.Namespace) -> int:
    rows = backend.flows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no flows deployed", file=sys.stderr)
        return 0
    width = max(4, *(len(r["name"]) for r in rows))
    print(f"{'FLOW':<{width}}  LATEST  VERSIONS  UPDATED                        NUMBERS")
    for r in rows:
        nums = ", ".join(f"{n['number']} (v{n['version']})" for n in r["numbers"]) or "-"
        print(f"{r['name']:<{width}}  {r['latest_version']:<6}  {r['versions']:<8}  {r['updated_at']:<29}  {nums}")
    return 0


def _pick(backend: Backend, target: str, version: int | None) -> tuple[dict[str, Any], str]:
    """(the version with its text, how it was chosen) for a NUMBER or a flow name."""
    num = backend.number(target) if _is_number(target) else None
    if num is not None:
        name, v = num["flow"], version if version is not None else num["version"]
        why = f"number {target} points at {num['flow']}@{num['version']}"
    else:
        flow = backend.flow(target)
        if flow is None:
            raise NotFoundError(f"{target!r} is neither a number with a flow nor a deployed flow's name")
        name, v = target, version if version is not None else flow["latest_version"]
        why = f"flow {target}, latest version {flow['latest_version']}"
    got = backend.version(name, v)
    if got is None:
        raise NotFoundError(f"flow {name!r} has no version {v}")
    return got, why


def _is_number(text: str) -> bool:
    try:
        check_number(text)
    except FlowStoreError:
        return False
    return True


def _show(backend: Backend, args: argparse.Namespace) -> int:
    got, why = _pick(backend, args.target, args.version)
    comment = f": {got['comment']}" if got["comment"] else ""
    print(f"# {got['name']}@{got['version']} ({why}); sha256 {got['sha256'][:12]}, {got['created_at']}, "
          f"by {got['created_by'] or '?'}{comment}", file=sys.stderr)
    sys.stdout.write(got["text"])
    return 0


def _ref(backend: Backend, ref: str) -> tuple[str, str]:
    """(label, text) of a diff operand: a file, name@version, a NUMBER (its current) or a name (latest)."""
    path = Path(ref)
    if path.is_file() or ref.endswith((".yaml", ".yml")) or os.sep in ref:
        return ref, _read(path)
    if "@" in ref:
        name, _, v = ref.rpartition("@")
        if not v.isdigit():
            raise FlowStoreError(f"{ref!r}: expected name@VERSION (a number after @)")
        got = backend.version(name, int(v))
        if got is None:
            raise NotFoundError(f"flow {name!r} has no version {v}")
        return f"{name}@{v}", str(got["text"])
    got, _ = _pick(backend, ref, None)
    label = f"{got['name']}@{got['version']}"
    return (label if ref == got["name"] else f"{ref} ({label})"), str(got["text"])


def _diff(backend: Backend, args: argparse.Namespace) -> int:
    (la, ta), (lb, tb) = _ref(backend, args.a), _ref(backend, args.b)
    lines = list(difflib.unified_diff(ta.splitlines(keepends=True), tb.splitlines(keepends=True), la, lb))
    if not lines:
        print(f"{la} and {lb} are the same", file=sys.stderr)
    for line in lines:
        sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return 0


def _rollback(backend: Backend, args: argparse.Namespace) -> int:
    check_number(args.number)
    out = backend.rollback(args.number, args.to, args.comment)
    b, a = out["before"], out["after"]
    if (b["flow"], b["version"]) == (a["flow"], a["version"]):
        print(f"number {args.number} already points at {a['flow']}@{a['version']}")
    else:
        print(f"number {args.number}: {b['flow']}@{b['version']} -> {a['flow']}@{a['version']}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": validate,
    "schema": schema,
    "test": test,
    "deploy": _remote(_deploy),
    "list": _remote(_list),
    "show": _remote(_show),
    "diff": _remote(_diff),
    "rollback": _remote(_rollback),
}


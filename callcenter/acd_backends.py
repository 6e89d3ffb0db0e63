"""How the ACD commands (callcenter/acd_cli.py) reach the ACD: a running server's API, or the database.

``connect`` picks: the server's API when one answers at ``--server`` (or the default address), so the
live ACD applies a change at once; else the data directory's database directly. Both backends speak
the API's JSON shapes (callcenter/acd_api.py) and raise the same errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from routing.config import agent_from_dict, queue_from_dict
from routing.exceptions import ConfigInvalid

from .agent_import import import_agents
from .exceptions import AuthError, CallCenterError, ConfigError, UnknownAgent, UnknownQueue
from .flow_cli import TOKEN_ENV, _detail, _json, _token, _trust_env, find_server
from .settings import check_data_dir
from .storage.acd import AgentRepo, AlreadyExists, CsvInvalid, CustomerRepo, QueueRepo, requested_state
from .storage.db import Database, run_with_database

T = TypeVar("T")


class NotFound(CallCenterError):
    """No such agent, queue or customer."""


class Recorded(CallCenterError):
    """The requested state was recorded but no live ACD applied it (the message says why)."""


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

"""Which flow answers a dialled number: the server's in-memory view of the deployed flows.

The server asks ``directory.resolve(number)`` for every incoming call. It is a dictionary look-up
(synchronous, no I/O): the directory keeps a snapshot of every number's route, rebuilt by ``load()``.
A route is the flow version the number points at plus the versions of every flow reachable through
its subflow nodes, taken at that moment (the latest version of each; the flow's own name stays at the
number's version). A call keeps the ``Resolved`` it got at its start for its whole life, so a deploy
never changes a call in progress; new calls get the new snapshot at once.

Parsed flows are cached by (name, version) for the life of the process (versions are immutable).

Keeping the snapshot fresh:
- after a deploy or rollback through the API, ``await directory.deployed()`` (the API does it);
- deploys written straight into the database by ``callcenter flow deploy`` (no server answered it):
  ``run()`` is a task that checks, once per ``interval`` seconds, a change marker (the newest row id of
  ``flow_versions`` and of ``number_history``: two index look-ups) and reloads when it moved.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ivr.flow import parse_flow
from ivr.nodes import Flow, SubflowNode

from .storage.db import Database
from .storage.flows import FlowRepo, NumberRepo

log = logging.getLogger("callcenter.flows")


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a call runs: ``flow`` (version ``version`` of ``name``; 0 = the default flow from a file)
    and every flow its subflow nodes reach, by name. ``flow_dir`` is the folder its relative audio
    paths resolve against (the deployed file's folder; None: not known)."""

    flow: Flow
    version: int
    name: str
    subflows: dict[str, Flow] = field(default_factory=dict)
    flow_dir: Path | None = None


class FlowDirectory:
    def __init__(self, db: Database, *, base_dir: Path | None = None) -> None:
        """``base_dir``: where audio paths of versions deployed without a source folder resolve."""
        self._flows = FlowRepo(db)
        self._numbers = NumberRepo(db)
        self._db = db
        self._base_dir = base_dir
        self._cache: dict[tuple[str, int], tuple[Flow, Path | None]] = {}
        self._broken: set[tuple[str, int]] = set()      # stored versions the loader refuses (logged once)
        self._routes: dict[str, Resolved] = {}
        self._latest: dict[str, int] = {}
        self._default_flow: Flow | None = None
        self._default: Resolved | None = None
        self._marker: tuple[int, int] | None = None
        self._lock = asyncio.Lock()

    # -- the call path -----------------------------------------------------------------------------

    def resolve(self, number: str) -> Resolved | None:
        """The route of ``number``; else the default flow; else None (the call is refused with 404)."""
        return self._routes.get(number, self._default)

    def deployed_route(self, number: str) -> Resolved | None:
        """The route of ``number`` only if a flow is deployed for it (no default)."""
        return self._routes.get(number)

    @property
    def default(self) -> Resolved | None:
        return self._default

    @property
    def numbers(self) -> list[str]:
        return sorted(self._routes)

    def flows(self) -> list[Flow]:
        """Every flow a new call may run (the routes, the default, their subflows), each once."""
        seen: dict[int, Flow] = {}
        for route in [*self._routes.values(), self._default]:
            if route is not None:
                for flow in (route.flow, *route.subflows.values()):
                    seen.setdefault(id(flow), flow)
        return list(seen.values())

    # -- keeping it fresh ------------------------------------------------------------------------

    async def set_default(self, flow: Flow | None) -> None:
        """The flow for numbers with no deployment (from the settings' file; its subflows come from the DB)."""
        self._default_flow = flow
        await self.reload()

    async def load(self) -> None:
        """Rebuild the snapshot from the database (parsing only versions not seen before)."""
        async with self._lock:
            marker = await self._change_marker()
            self._latest = await self._flows.latest_versions()
            routes: dict[str, Resolved] = {}
            by_version: dict[tuple[str, int], Resolved | None] = {}
            for target in await self._numbers.all():
                key = (target.flow, target.version)
                if key not in by_version:
                    loaded = await self._load(*key)
                    by_version[key] = None if loaded is None else Resolved(
                        loaded[0], target.version, target.flow, await self._subflows(loaded[0], key), loaded[1])
                route = by_version[key]
                if route is not None:
                    routes[target.number] = route
            default = None
            if self._default_flow is not None:
                df = self._default_flow
                default = Resolved(df, 0, df.name, await self._subflows(df, None),
                                   Path(df.source).parent if df.source else None)
            self._routes, self._default, self._marker = routes, default, marker

    async def reload(self) -> None:
        await self.load()

    async def deployed(self) -> None:
        """Call after a deploy or rollback so that the next call sees it."""
        await self.load()

    async def refresh(self) -> bool:
        """Reload if the database changed since the last load (e.g. a CLI deploy); True if it did."""
        if await self._change_marker() == self._marker:
            return False
        await self.load()
        return True

    async def run(self, interval: float = 1.0) -> None:
        """Refresh every ``interval`` seconds until cancelled (a failing check is logged, not fatal)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.refresh():
                    log.info("flows reloaded from the database", extra={"numbers": len(self._routes)})
            except Exception:
                log.exception("flow directory refresh failed")

    # -- internals -------------------------------------------------------------------------------

    async def _change_marker(self) -> tuple[int, int]:
        async with self._db.conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM flow_versions), (SELECT COALESCE(MAX(id), 0) FROM number_history)"
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def _flow(self, name: str, version: int) -> Flow | None:
        loaded = await self._load(name, version)
        return loaded[0] if loaded else None

    async def _load(self, name: str, version: int) -> tuple[Flow, Path | None] | None:
        """The parsed version and its audio folder (parsed once: versions are immutable)."""
        key = (name, version)
        cached = self._cache.get(key)
        if cached is not None or key in self._broken:
            return cached
        stored = await self._flows.get(name, version)
        if stored is None or stored.text is None:
            log.error("a number points at a flow version that is not stored", extra={"flow": name, "version": version})
            self._broken.add(key)
            return None
        base = Path(stored.source_dir) if stored.source_dir else self._base_dir
        try:  # (in a thread: a large flow takes milliseconds to check, and calls are running)
            # (audio files are checked at deploy; one deleted since plays the fallback tone, the
            # version still loads)
            flow = await asyncio.to_thread(
                functools.partial(parse_flow, stored.text, f"{name}@{version}", base, check_audio=False))
        except Exception as exc:  # a stored version this loader refuses must not stop the server
            log.error("stored flow version does not load", extra={"flow": name, "version": version, "error": str(exc)})
            self._broken.add(key)
            return None
        self._cache[key] = (flow, base)
        return self._cache[key]

    async def _subflows(self, root: Flow, pinned: tuple[str, int] | None) -> dict[str, Flow]:
        """Every flow reachable from ``root`` through subflow nodes: latest versions, ``pinned`` for itself."""
        found: dict[str, Flow] = {}
        todo = [root]
        while todo:
            flow = todo.pop()
            for node in flow.nodes.values():
                if not isinstance(node, SubflowNode) or node.flow in found:
                    continue
                if pinned is not None and node.flow == pinned[0]:
                    sub: Flow | None = await self._flow(*pinned)
                elif node.flow in self._latest:
                    sub = await self._flow(node.flow, self._latest[node.flow])
                else:
                    sub = None
                if sub is None:
                    log.warning("subflow is not deployed", extra={"flow": root.name, "subflow": node.flow})
                    continue
                found[node.flow] = sub
                todo.append(sub)
        return found

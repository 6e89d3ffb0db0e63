"""Flow schema: a flow is a named graph of nodes, loaded from TOML and validated.

```toml
[flow]
name = "demo"
start = "welcome"

[nodes.welcome]
type = "play"          # speak a prompt, then go to `next`
say = "Welcome to ..."
next = "goodbye"

[nodes.goodbye]
type = "hangup"
```
Validation errors name the file and the line of the offending node or key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import FlowError


@dataclass(frozen=True, slots=True)
class PlayNode:
    id: str
    say: str
    next: str | None


@dataclass(frozen=True, slots=True)
class HangupNode:
    id: str


Node = PlayNode | HangupNode


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    start: str
    nodes: dict[str, Node]

    def prompts(self) -> list[str]:
        """Every text this flow may speak (to render ahead of the first call)."""
        return [n.say for n in self.nodes.values() if isinstance(n, PlayNode)]


class _Lines:
    """Finds the line of a table or key in the TOML text, for error messages."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def of(self, table: str, key: str | None = None) -> int:
        header = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
        start = next((i for i, ln in enumerate(self._lines) if header.match(ln)), None)
        if start is None:
            return 1
        if key is not None:
            pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
            for i in range(start + 1, len(self._lines)):
                if self._lines[i].lstrip().startswith("["):
                    break
                if pat.match(self._lines[i]):
                    return i + 1
        return start + 1


def parse_flow(text: str, file: str = "<flow>") -> Flow:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise FlowError(file, int(m.group(1)) if m else 1, f"not valid TOML: {exc}") from None
    lines = _Lines(text)

    def fail(message: str, table: str = "flow", key: str | None = None) -> FlowError:
        return FlowError(file, lines.of(table, key), message)

    head = data.get("flow")
    if not isinstance(head, dict):
        raise fail("missing [flow] table with `name` and `start`")
    name, start = head.get("name"), head.get("start")
    if not isinstance(name, str) or not name.strip():
        raise fail("[flow] needs a non-empty string `name`", key="name")
    if not isinstance(start, str):
        raise fail("[flow] needs `start`, the id of the first node", key="start")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise fail("the flow has no [nodes.<id>] tables")

    nodes: dict[str, Node] = {}
    for node_id, raw in raw_nodes.items():
        table = f"nodes.{node_id}"
        if not isinstance(raw, dict):
            raise fail(f"node {node_id!r} must be a table", table)
        nodes[node_id] = _parse_node(node_id, raw, lambda m, k=None, t=table: fail(m, t, k))

    if start not in nodes:
        raise fail(f"`start` names {start!r}, which is not a node", key="start")
    for node in nodes.values():
        nxt = getattr(node, "next", None)
        if nxt is not None and nxt not in nodes:
            raise fail(f"node {node.id!r}: `next` names {nxt!r}, which is not a node", f"nodes.{node.id}", "next")
    return Flow(name=name, start=start, nodes=nodes)


def _parse_node(node_id: str, raw: dict[str, Any], fail: Any) -> Node:
    kind = raw.get("type")
    allowed: set[str]
    node: Node
    if kind == "play":
        say = raw.get("say")
        if not isinstance(say, str) or not say.strip():
            raise fail(f"node {node_id!r}: a play node needs a non-empty `say` text", "say")
        nxt = raw.get("next")
        if nxt is not None and not isinstance(nxt, str):
            raise fail(f"node {node_id!r}: `next` must be a node id", "next")
        node, allowed = PlayNode(node_id, say.strip(), nxt), {"type", "say", "next"}
    elif kind == "hangup":
        node, allowed = HangupNode(node_id), {"type"}
    else:
        raise fail(f"node {node_id!r}: unknown type {kind!r} (expected 'play' or 'hangup')", "type")
    extra = sorted(set(raw) - allowed)
    if extra:
        raise fail(f"node {node_id!r}: unknown key {extra[0]!r}", extra[0])
    return node


def load_flow(path: str | Path) -> Flow:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(str(path), 1, f"cannot read flow file: {exc}") from None
    return parse_flow(text, str(path))

"""The HTTP client of `http` nodes: JSON in and out, a hard timeout, a bounded reply.

One ``httpx.AsyncClient`` per server (connection reuse across calls). A slow server never
holds a call past the node's timeout: the whole exchange, connect to last byte, is bounded,
and the driver bounds it once more. Replies larger than ``max_bytes`` are refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

from .exceptions import NotJsonReply

USER_AGENT = "callcenter-ivr/0.1"


class ReplyTooLarge(Exception):
    pass


class FlowHttpClient:
    def __init__(self, max_bytes: int = 256 * 1024) -> None:
        self.max_bytes = max_bytes
        self._client = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": USER_AGENT},
                                         limits=httpx.Limits(max_connections=200, max_keepalive_connections=20))

    async def request(self, method: str, url: str, *, headers: Mapping[str, str], json: Any,
                      timeout_s: float) -> tuple[int, Any]:
        async with asyncio.timeout(timeout_s):
            async with self._client.stream(method, url, headers=dict(headers), json=json,
                                           timeout=httpx.Timeout(timeout_s)) as reply:
                body = bytearray()
                async for chunk in reply.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ReplyTooLarge(f"reply larger than {self.max_bytes} bytes")
                return reply.status_code, _decode(reply.status_code, bytes(body))

    async def aclose(self) -> None:
        await self._client.aclose()


def _decode(status: int, body: bytes) -> Any:
    """The JSON of a reply; None for an empty one (a 204); NotJsonReply for anything else."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NotJsonReply(status) from None

"""Calls the engine places (``Engine.dial``): checking what to dial, From accounts, event sinks.

Engine thread only, except the pure checks. ``EngineCore.dial`` (voice/core.py) registers the
new ``Call`` in its calls dict and here, then runs ``makeCall``; what pjsua reports from inside
``makeCall`` is held back (``Sinks.hold``) and goes out once ``makeCall`` has returned, or is
dropped with the call if ``makeCall`` fails (then ``dial`` raises and the call never existed).

Every event of a placed call goes to the ``sink`` the application gave, through the engine's
batched emit (so in order with the command results, on the loop), never to ``Engine.events``;
the sink is forgotten after the call's CallEnded. A sink that raises is logged and does not
stop the batch.

What may be dialled: a ``sip:`` or ``sips:`` URI of printable ASCII (no spaces, no CR/LF, no
``<>"``, no ``?`` URI headers, which pjsip would copy into the INVITE: nothing can be smuggled
into the request), whose host is an IP address. A host name would be
resolved by pjsip synchronously on the engine thread (no DNS resolver is configured), stopping
every call for as long as DNS takes; the application resolves names itself (a trunk's
address in callcenter.toml is an IP). ``from_uri`` becomes the From of the INVITE: pjsua takes
From from the account, so each distinct From gets an account of its own (at most
``MAX_FROM_ACCOUNTS``); "" is the server's own account. ``headers`` are added to the INVITE;
headers that pjsip writes itself (Via, From, To, Call-ID, CSeq, Contact...) cannot be set.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import pjsua2 as pj

from .events import CallEnded, EngineEvent
from .exceptions import EngineError
from .text import clean

log = logging.getLogger("voice.engine")

MAX_URI = 500
MAX_FROM_ACCOUNTS = 16
MAX_HEADERS = 32
MAX_HEADER_VALUE = 1000

# Printable ASCII but '<', '>', '"' (it stays one URI) and '?' (URI headers: pjsip would add them to the INVITE)
_URI = re.compile(rf"(?i:sips?):[!#-;=@-~]{{1,{MAX_URI}}}")
# user@ (optional), then the host (an IPv6 literal in brackets, or up to ':' or ';'), then :port
_HOST = re.compile(r"(?i:sips?):(?:[^@]*@)?(\[[0-9A-Fa-f:.]+\]|[^:;]+)(?::(\d{1,5}))?(?:;.*)?")
_FROM = re.compile(rf"[ ->@-~]{{1,{MAX_URI}}}")  # printable ASCII but '?'

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,64}")
_VALUE = re.compile(rf"[ -~\t]{{0,{MAX_HEADER_VALUE}}}")
# Headers pjsip writes itself (and their compact forms): a second one would break the request.
_RESERVED = frozenset({
    "via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "contact", "m", "content-length", "l",
    "content-type", "c", "max-forwards", "route", "record-route", "allow", "supported", "k", "require",
    "session-expires", "x", "min-se", "expires", "authorization", "proxy-authorization",
})


def check_uri(uri: str) -> None:
    """Raise EngineError unless ``uri`` is a sip:/sips: URI of printable ASCII with an IP host."""
    if not isinstance(uri, str) or not _URI.fullmatch(uri):
        raise EngineError(f"not a sip: or sips: URI of printable ASCII without <>\"? (at most {MAX_URI}): "
                          f"{clean(str(uri), 120)!r}")
    m = _HOST.fullmatch(uri)
    host = m.group(1).strip("[]") if m else ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise EngineError(f"the host of {clean(uri, 120)!r} is not an IP address (names are not resolved "
                          "on the engine thread)") from None
    if m and m.group(2) is not None and not 0 < int(m.group(2)) < 65536:
        raise EngineError(f"bad port in {clean(uri, 120)!r}")


def check_from(from_uri: str) -> None:
    if not isinstance(from_uri, str) or not _FROM.fullmatch(from_uri) or not re.search(r"(?i)\bsips?:", from_uri):
        raise EngineError(f"from_uri must be a sip: or sips: URI (or name-addr) of printable ASCII, "
                          f"not {clean(str(from_uri), 120)!r}")


def call_param(headers: Mapping[str, str]) -> Any:
    """A ``pj.CallOpParam`` for makeCall carrying ``headers`` (checked: EngineError)."""
    if len(headers) > MAX_HEADERS:
        raise EngineError(f"at most {MAX_HEADERS} extra headers")
    prm = pj.CallOpParam(True)
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise EngineError(f"not a header name: {clean(str(name), 80)!r}")
        if name.lower() in _RESERVED:
            raise EngineError(f"header {name} is written by the engine, it cannot be set")
        if not isinstance(value, str) or not _VALUE.fullmatch(value):
            raise EngineError(f"header {name}: the value must be printable ASCII (at most {MAX_HEADER_VALUE})")
        hdr = pj.SipHeader()
        hdr.hName, hdr.hValue = name, value.strip()
        prm.txOption.headers.append(hdr)
    return prm


class Sinks:
    """Where each placed call's events go (engine id -> sink)."""

    def __init__(self, emit: Callable[[Callable[[], None]], None]) -> None:
        self._emit = emit
        self._sinks: dict[int, Callable[[EngineEvent], None]] = {}
        self._held: dict[int, list[EngineEvent]] = {}  # calls inside makeCall

    def hold(self, cid: int, sink: Callable[[EngineEvent], None]) -> None:
        """A call about to be placed: its events wait until ``release`` (or ``discard``)."""
        self._sinks[cid] = sink
        self._held[cid] = []

    def route(self, event: EngineEvent) -> bool:
        """Send ``event`` to its call's sink; False if its call has none (an incoming call)."""
        sink = self._sinks.get(event.call)
        if sink is None:
            return False
        held = self._held.get(event.call)
        if held is not None:
            held.append(event)
            return True
        self._emit(functools.partial(_deliver, sink, event))
        if isinstance(event, CallEnded):
            del self._sinks[event.call]
        return True

    def release(self, cid: int) -> None:
        """``makeCall`` returned: what the call reported meanwhile goes out, in order."""
        for event in self._held.pop(cid, []):
            self.route(event)

    def discard(self, cid: int) -> None:
        """``makeCall`` failed: the call never existed for the application."""
        self._held.pop(cid, None)
        self._sinks.pop(cid, None)


def _deliver(sink: Callable[[EngineEvent], None], event: EngineEvent) -> None:
    try:
        sink(event)
    except Exception:
        log.exception("call event sink failed", extra={"call": event.call, "event": event.type})


class FromAccounts:
    """One pjsua account per distinct From of placed calls ("" is the server's own)."""

    def __init__(self, create: Callable[[str], Any]) -> None:
        self._create = create
        self._accounts: dict[str, Any] = {}

    def get(self, default: Any, from_uri: str) -> Any:
        if not from_uri:
            return default
        acc = self._accounts.get(from_uri)
        if acc is None:
            check_from(from_uri)
            if len(self._accounts) >= MAX_FROM_ACCOUNTS:
                raise EngineError(f"at most {MAX_FROM_ACCOUNTS} distinct from_uri values")
            acc = self._create(from_uri)
            self._accounts[from_uri] = acc
        return acc

    def shutdown(self) -> None:
        for acc in self._accounts.values():
            acc.shutdown()
        self._accounts.clear()

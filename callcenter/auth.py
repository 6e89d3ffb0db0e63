"""Signing in to the pages: password hashes, session cookies, the failed-sign-in limiter, and who a request is from.

* Passwords: ``hashlib.scrypt`` (n=2**14, r=8, p=1, a 16-byte random salt, a 32-byte key), stored as
  ``scrypt$n$r$p$salt_b64$hash_b64`` and compared with ``hmac.compare_digest``. A sign-in as an unknown
  user, or as a token-only user (no password), is checked against a dummy hash: every refusal costs the
  same time, so timing does not tell which user names exist. Hashing (about 50 ms and 16 MiB) runs on a
  worker thread, at most ``HASH_CONCURRENCY`` at a time.
* Sessions: the ``cc_session`` cookie holds 32 random bytes (base64url); the database keeps only their
  SHA-256 (callcenter/storage/sessions.py). A session ends ``IDLE_S`` after its last use or ``MAX_AGE_S``
  after sign-in, whichever comes first, at sign-out, and when the user's password changes. The cookie is
  HttpOnly, SameSite=Strict, Path=/, and Secure when the request came over https.
* Failed sign-ins (:class:`SignInLimiter`): counted per (user name, address) and per address in a sliding
  window; past the limit the answer is 429 with Retry-After, before any password is checked.
* Who a request is from (:func:`identify`): an ``Authorization: Bearer`` token (API clients) if the request
  has one, else the session cookie. With the cookie, a request that changes something (POST, PUT, PATCH,
  DELETE) must carry an Origin header naming the host it was sent to: the defence against cross-site
  request forgery. :func:`user_from_websocket` takes the cookie first (its handshake must come from this
  origin), else the bearer header; never a query parameter.

Neither a cookie value nor a token is ever logged or put in a URL; the log says who signed in from where.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from .exceptions import AuthError
from .storage.db import iso_utc
from .storage.repos import User, UserRepo
from .storage.sessions import SessionRepo

if TYPE_CHECKING:
    from .api import ApiContext

log = logging.getLogger("callcenter.auth")

COOKIE = "cc_session"
IDLE_S = 12 * 3600.0             # a session unused this long has ended
MAX_AGE_S = 7 * 86400.0          # and none lasts longer than this after sign-in
TOUCH_S = 60.0                   # last_seen_at is written at most this often per session
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
HASH_CONCURRENCY = 4             # scrypt runs at a time (each holds 16 MiB)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")    # 32 bytes, base64url without padding
_DEFAULT_PORT = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class TooManySignIns(AuthError):
    """Too many failed sign-ins from this address (for this user): try again in ``retry_after`` seconds (429)."""

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, round(retry_after / 60))
        super().__init__(429, f"too many failed sign-ins: try again in {minutes} minute{'s' if minutes > 1 else ''}")
        self.retry_after = retry_after


# -- passwords ---------------------------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _prepare(password: str) -> bytes:
    return unicodedata.normalize("NFC", password).encode("utf-8")


def check_new_password(password: str) -> None:
    """ValueError saying why ``password`` may not be used (length only: at least 8, at most 1024 characters)."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"a password may have at most {MAX_PASSWORD} characters")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The stored form of ``password``: ``scrypt$n$r$p$salt_b64$hash_b64`` with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(_prepare(password), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=_maxmem(n, r))
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _maxmem(n: int, r: int) -> int:
    return 128 * n * r * 2 + (1 << 20)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    # bounds keep a damaged row from costing the server gigabytes or minutes
    if not (2 <= n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and 16 <= len(key) <= 64):
        return None
    return n, r, p, salt, key


@cache
def _dummy() -> tuple[int, int, int, bytes, bytes]:
    parsed = _parse(hash_password(secrets.token_urlsafe(16)))
    assert parsed is not None
    return parsed


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``. None (no password) or a damaged hash: False, after the same work."""
    parsed = _parse(stored) if stored else None
    real = parsed is not None
    n, r, p, salt, expected = parsed if parsed is not None else _dummy()
    got = hashlib.scrypt(_prepare(password), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=_maxmem(n, r))
    return hmac.compare_digest(got, expected) and real


# -- the failed-sign-in limiter -----------------------------------------------------------------------------------

def _address_key(address: str) -> str:
    """An IPv6 client is counted by its /64 (one host usually holds all of it); anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class SignInLimiter:
    """Failed sign-ins in a sliding window, per (user name, address) and per address, in memory.

    ``retry_after`` is 0 while fewer than the limit failed within ``window_s``, else the seconds until the
    oldest of them leaves the window. A success clears its (user, address) count, never the address's own
    (or one good account would reset the count of guesses at others). At most ``max_keys`` counts are kept,
    the least recently touched dropped first, so a flood of addresses cannot fill the memory.
    """

    def __init__(self, *, per_user: int = 5, per_address: int = 20, window_s: float = 900.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if per_user < 1 or per_address < 1 or window_s <= 0 or max_keys < 2:
            raise ValueError("SignInLimiter needs positive limits, window and size")
        self.per_user, self.per_address, self.window_s, self.max_keys = per_user, per_address, window_s, max_keys
        self.clock = clock
        self._fails: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _keys(self, name: str, address: str) -> tuple[tuple[tuple[str, str], int], tuple[tuple[str, str], int]]:
        addr = _address_key(address)
        return ((addr, name.casefold()[:128]), self.per_user), ((addr, ""), self.per_address)

    def retry_after(self, name: str, address: str) -> int:
        """Seconds to wait before this sign-in may be tried (0: now)."""
        now = self.clock()
        return max(self._wait(key, limit, now) for key, limit in self._keys(name, address))

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> int:
        fails = self._fails.get(key)
        if fails is None:
            return 0
        while fails and fails[0] <= now - self.window_s:
            fails.popleft()
        if not fails:
            del self._fails[key]
            return 0
        return 0 if len(fails) < limit else max(1, math.ceil(fails[0] + self.window_s - now))

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        for key, limit in self._keys(name, address):
            fails = self._fails.pop(key, None) or deque(maxlen=limit)
            fails.append(now)
            self._fails[key] = fails                  # (re-inserted: now the most recently touched)
        while len(self._fails) > self.max_keys:
            self._fails.popitem(last=False)

    def succeeded(self, name: str, address: str) -> None:
        self._fails.pop(self._keys(name, address)[0][0], None)

    def __len__(self) -> int:
        return len(self._fails)


# -- sessions -----------------------------------------------------------------------------------------------------

def cookie_digest(value: str) -> str:
    return hashlib.sha256(value.encode("ascii", "replace")).hexdigest()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Auth:
    """Sign-in, sessions and the limiter of one server (one per ApiContext: :func:`auth_of`).

    ``clock`` (epoch seconds) is injectable so tests can age sessions; the limiter has its own clock.
    """

    def __init__(self, users: UserRepo, sessions: SessionRepo | None = None, *,
                 clock: Callable[[], float] = time.time, idle_s: float = IDLE_S, max_age_s: float = MAX_AGE_S,
                 limiter: SignInLimiter | None = None) -> None:
        self.users = users
        self.sessions = sessions or SessionRepo(users.db)
        self.clock = clock
        self.idle_s, self.max_age_s = idle_s, max_age_s
        self.limiter = limiter or SignInLimiter()
        self._hashing = asyncio.Semaphore(HASH_CONCURRENCY)

    async def check_password(self, password: str, stored: str | None) -> bool:
        """verify_password on a worker thread (the loop keeps serving calls meanwhile)."""
        async with self._hashing:
            return await asyncio.to_thread(verify_password, password, stored)

    async def sign_in(self, name: str, password: str, *, address: str = "", user_agent: str = "") -> tuple[User, str]:
        """The user and a new session's cookie value; AuthError(401) or TooManySignIns(429) if refused."""
        wait = self.limiter.retry_after(name, address)
        if wait:
            log.warning("sign-in refused: too many failures", extra={"user": name[:64], "address": address,
                                                                     "retry_after": wait})
            raise TooManySignIns(wait)
        found = await self.users.credentials(name)
        ok = await self.check_password(password, found[1] if found else None)
        if found is None or not ok:
            self.limiter.failed(name, address)
            log.warning("sign-in failed", extra={"user": name[:64], "address": address,
                                                 "why": "no password set" if found else "wrong user or password"})
            raise AuthError(401, "wrong user name or password")
        self.limiter.succeeded(name, address)
        user = found[0]
        value = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
        now = self.clock()
        await self.sessions.purge(iso_utc(now))
        await self.sessions.create(cookie_digest(value), user.id, now=iso_utc(now),
                                   expires_at=iso_utc(now + min(self.idle_s, self.max_age_s)),
                                   address=address[:64], user_agent=user_agent[:200])
        log.info("signed in", extra={"user": user.name, "role": user.role, "address": address})
        return user, value

    async def session_user(self, value: str) -> User | None:
        """The user of the live session with this cookie value (None: unknown, expired or signed out)."""
        if not _COOKIE_VALUE.fullmatch(value):
            return None
        digest, now = cookie_digest(value), self.clock()
        row = await self.sessions.get(digest, iso_utc(now))
        if row is None:
            return None
        if now - _epoch(row.last_seen_at) >= TOUCH_S:
            expires = min(_epoch(row.created_at) + self.max_age_s, now + self.idle_s)
            await self.sessions.touch(digest, last_seen_at=iso_utc(now), expires_at=iso_utc(expires))
        return row.user

    async def sign_out(self, value: str) -> None:
        """End the session with this cookie value (nothing if there is none)."""
        if not _COOKIE_VALUE.fullmatch(value):
            return
        digest = cookie_digest(value)
        row = await self.sessions.get(digest, iso_utc(self.clock()))
        await self.sessions.delete(digest)
        if row is not None:
            log.info("signed out", extra={"user": row.user.name})


def auth_of(ctx: ApiContext) -> Auth:
    """The context's Auth, made on first use (tests put their own, with a clock, in ``ctx.auth``)."""
    if ctx.auth is None:
        ctx.auth = Auth(ctx.users)
    auth: Auth = ctx.auth
    return auth


def cookie_header(value: str, *, secure: bool) -> str:
    """The Set-Cookie value that starts a session (no Max-Age: the browser drops it when it closes)."""
    return f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure else "")


def clear_cookie_header(*, secure: bool) -> str:
    return f"{COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure else "")


def is_secure(conn: HTTPConnection) -> bool:
    return conn.url.scheme in ("https", "wss")


# -- who a request is from ----------------------------------------------------------------------------------------

def same_origin(conn: HTTPConnection) -> bool:
    """Whether the request's Origin header names the host it was sent to (its Host header).

    A missing Origin, ``null`` or another host is False; Sec-Fetch-Site, when the browser sends it, must say
    ``same-origin``. A port left out on either side is the default port of the Origin's scheme, so a page
    behind a TLS-terminating proxy still matches.
    """
    fetch_site = conn.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    origin, host = conn.headers.get("origin", ""), conn.headers.get("host", "")
    if not origin or not host:
        return False
    try:
        o, h = urlsplit(origin), urlsplit("//" + host)
        if o.scheme not in ("http", "https") or not o.hostname or not h.hostname:
            return False
        default = _DEFAULT_PORT[o.scheme]
        return o.hostname == h.hostname and (o.port or default) == (h.port or default)
    except ValueError:          # a malformed port
        return False


@dataclass(frozen=True, slots=True)
class Identity:
    user: User
    via: Literal["bearer", "cookie"]


def _bearer(conn: HTTPConnection) -> str | None:
    """The bearer token of the Authorization header; None without the header; AuthError if it is not Bearer."""
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def identify(conn: HTTPConnection, ctx: ApiContext) -> Identity:
    """Who sent this request: the bearer token if there is one, else the session cookie (see the module doc).

    AuthError(401) without valid credentials, AuthError(403) for a cookie-authenticated change from
    another origin (or with no Origin header).
    """
    token = _bearer(conn)
    if token is not None:
        user = await ctx.users.by_token(token)
        if user is None:
            raise AuthError(401, "unknown or revoked token")
        return Identity(user, "bearer")
    value = conn.cookies.get(COOKIE)
    if value:
        user = await auth_of(ctx).session_user(value)
        if user is None:
            raise AuthError(401, "your session has ended (signed out or expired): sign in again")
        if conn.scope.get("method", "GET") not in SAFE_METHODS and not same_origin(conn):
            log.warning("cross-site request refused", extra={"user": user.name, "path": conn.url.path,
                                                             "origin": conn.headers.get("origin", "")[:100]})
            raise AuthError(403, "this request did not come from this site's pages (its Origin header does not "
                                 "match the host); API clients send a bearer token")
        return Identity(user, "cookie")
    raise AuthError(401, "sign in, or send Authorization: Bearer <token>")


async def user_from_request(conn: HTTPConnection, ctx: ApiContext) -> User | None:
    """:func:`identify` without the reasons: the user, or None."""
    try:
        return (await identify(conn, ctx)).user
    except AuthError:
        return None


async def user_from_websocket(ws: HTTPConnection, ctx: ApiContext) -> User | None:
    """The user of a WebSocket handshake: the session cookie first (the handshake's Origin must match its host:
    browsers always send one), else an ``Authorization: Bearer`` header; None if neither is valid.
    A token in the URL's query is never looked at.
    """
    value = ws.cookies.get(COOKIE)
    if value and same_origin(ws):
        user = await auth_of(ctx).session_user(value)
        if user is not None:
            return user
    try:
        token = _bearer(ws)
    except AuthError:
        return None
    return await ctx.users.by_token(token) if token else None

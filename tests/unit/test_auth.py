"""callcenter/auth.py on a real SQLite database: password hashes, the failed-sign-in limiter, session
lifetimes (with an injected clock), the Origin check, WebSocket credentials, and the `user` commands.

The only stand-in is a spy around ``hashlib.scrypt`` (it still does the real work) that counts how
often, and with what cost, a refusal hashed: that is what "the same timing path" means, without
measuring time in a test.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import HTTPConnection

from callcenter import cli
from callcenter.auth import (
    COOKIE,
    Auth,
    SignInLimiter,
    TooManySignIns,
    clear_cookie_header,
    cookie_digest,
    cookie_header,
    hash_password,
    same_origin,
    user_from_websocket,
    verify_password,
)
from callcenter.exceptions import AuthError
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, UserRepo

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def auth(db: Database, clock: Clock) -> Auth:
    users = UserRepo(db)
    await users.add("alice", "agent", "tok-alice", password_hash=hash_password("correct horse"))
    await users.add("api", "admin", "tok-api")                               # token only
    return Auth(users, clock=clock, limiter=SignInLimiter(clock=clock))


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def spy(password: bytes, *, salt: bytes, n: int, r: int, p: int, **kw: Any) -> bytes:
        calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, **kw)

    monkeypatch.setattr(hashlib, "scrypt", spy)
    return calls


# -- passwords -------------------------------------------------------------------------------------------------

def test_hash_format_and_verify() -> None:
    stored = hash_password("correct horse")
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    import base64
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)
    assert hash_password("correct horse") != stored                       # a fresh salt each time
    # the same text typed as composed or decomposed characters is the same password
    assert verify_password(unicodedata.normalize("NFD", "café crème"), hash_password("café crème"))


@pytest.mark.parametrize("stored", [None, "", "plain", "scrypt$16384$8$1$!!$!!", "scrypt$3$8$1$AAAA$AAAA",
                                    f"scrypt${2 ** 30}$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
                                    "bcrypt$2b$12$whatever"])
def test_no_or_damaged_hash_never_matches(stored: str | None, scrypt_calls: list[tuple[int, int, int]]) -> None:
    assert verify_password("anything at all", stored) is False
    assert scrypt_calls[-1] == (16384, 8, 1)              # the dummy hash was checked: the same work as a real one


async def test_refusals_take_the_same_path(auth: Auth, scrypt_calls: list[tuple[int, int, int]]) -> None:
    outcomes = []
    for name, password in (("alice", "wrong password"), ("nobody", "correct horse"), ("api", "correct horse")):
        before = len(scrypt_calls)
        with pytest.raises(AuthError) as err:
            await auth.sign_in(name, password, address="10.0.0.1")
        outcomes.append((err.value.status, str(err.value), scrypt_calls[before:]))
    assert outcomes == [(401, "wrong user name or password", [(16384, 8, 1)])] * 3
    user, value = await auth.sign_in("alice", "correct horse", address="10.0.0.1")
    assert user.name == "alice" and len(value) == 43


# -- the limiter ------------------------------------------------------------------------------------------------

def test_limiter_per_user_and_address(clock: Clock) -> None:
    lim = SignInLimiter(per_user=3, per_address=5, window_s=600, clock=clock)
    for _ in range(2):
        lim.failed("alice", "10.0.0.1")
        clock.advance(10)
    assert lim.retry_after("alice", "10.0.0.1") == 0
    lim.failed("Alice", "10.0.0.1")                       # (names count case-insensitively)
    assert lim.retry_after("alice", "10.0.0.1") == 600 - 20      # until the first failure leaves the window
    assert lim.retry_after("bob", "10.0.0.1") == 0               # another user from there: not yet
    assert lim.retry_after("alice", "10.0.0.2") == 0             # the same user from elsewhere: fine
    clock.advance(580)
    assert lim.retry_after("alice", "10.0.0.1") == 0             # the first failure aged out
    lim.failed("alice", "10.0.0.1")
    assert lim.retry_after("alice", "10.0.0.1") > 0


def test_limiter_success_clears_the_user_count_only(clock: Clock) -> None:
    lim = SignInLimiter(per_user=3, per_address=4, window_s=600, clock=clock)
    for name in ("alice", "alice", "bob"):
        lim.failed(name, "10.0.0.1")
    lim.succeeded("alice", "10.0.0.1")
    assert lim.retry_after("alice", "10.0.0.1") == 0
    lim.failed("carol", "10.0.0.1")                       # 4 failures from the address, whoever they were for
    assert lim.retry_after("alice", "10.0.0.1") == 600
    assert lim.retry_after("dave", "10.0.0.1") == 600
    assert lim.retry_after("dave", "10.0.0.9") == 0


def test_limiter_ipv6_counts_by_64_and_memory_is_bounded(clock: Clock) -> None:
    lim = SignInLimiter(per_user=2, per_address=100, clock=clock)
    lim.failed("alice", "2001:db8:1:2::1")
    lim.failed("alice", "2001:db8:1:2:ffff::9")           # the same /64
    assert lim.retry_after("alice", "2001:db8:1:2::77") > 0
    assert lim.retry_after("alice", "2001:db8:1:3::1") == 0
    small = SignInLimiter(max_keys=10, clock=clock)
    for i in range(500):
        small.failed(f"user{i}", f"10.1.{i // 256}.{i % 256}")
    assert len(small) == 10
    with pytest.raises(ValueError):
        SignInLimiter(per_user=0)


async def test_locked_out_before_any_password_is_checked(auth: Auth, scrypt_calls: list[tuple[int, int, int]]) -> None:
    for _ in range(5):
        with pytest.raises(AuthError):
            await auth.sign_in("alice", "guess", address="10.0.0.7")
    before = len(scrypt_calls)
    with pytest.raises(TooManySignIns) as err:
        await auth.sign_in("alice", "correct horse", address="10.0.0.7")   # even the right password
    assert err.value.status == 429 and 0 < err.value.retry_after <= 900 and len(scrypt_calls) == before
    user, _ = await auth.sign_in("alice", "correct horse", address="10.0.0.8")
    assert user.name == "alice"


# -- sessions ---------------------------------------------------------------------------------------------------

async def test_session_idle_timeout(auth: Auth, clock: Clock) -> None:
    _, value = await auth.sign_in("alice", "correct horse", address="10.0.0.1", user_agent="Chromium")
    assert (await auth.session_user(value)) is not None
    clock.advance(11 * HOUR)
    assert (await auth.session_user(value)) is not None          # used: the idle clock starts again
    clock.advance(11 * HOUR)
    assert (await auth.session_user(value)) is not None
    clock.advance(12 * HOUR + 1)
    assert await auth.session_user(value) is None                # 12 h unused


async def test_session_maximum_age(auth: Auth, clock: Clock) -> None:
    _, value = await auth.sign_in("alice", "correct horse")
    for _ in range(27):                                          # used every 6 h: 6 days 18 h
        clock.advance(6 * HOUR)
        assert (await auth.session_user(value)) is not None
    clock.advance(6 * HOUR)                                      # 7 days since sign-in
    assert await auth.session_user(value) is None


async def test_sign_out_password_change_and_what_is_stored(auth: Auth, db: Database) -> None:
    _, one = await auth.sign_in("alice", "correct horse", address="10.0.0.1", user_agent="UA " * 200)
    _, two = await auth.sign_in("alice", "correct horse", address="10.0.0.2")
    assert one != two
    async with db.conn.execute("SELECT * FROM sessions") as cur:
        rows = [dict(r) for r in await cur.fetchall()]
    assert sorted(r["id_sha256"] for r in rows) == sorted([cookie_digest(one), cookie_digest(two)])
    assert not any(one in str(v) or two in str(v) for r in rows for v in r.values())   # only the digest is kept
    assert {r["address"] for r in rows} == {"10.0.0.1", "10.0.0.2"} and max(len(r["user_agent"]) for r in rows) == 200
    await auth.sign_out(one)
    assert await auth.session_user(one) is None and await auth.session_user(two) is not None
    assert await UserRepo(db).set_password("alice", hash_password("a new password")) is not None
    assert await auth.session_user(two) is None                  # a new password signs out everywhere
    with pytest.raises(AuthError):
        await auth.sign_in("alice", "correct horse")
    assert (await auth.sign_in("alice", "a new password"))[0].name == "alice"
    for junk in ("", "x" * 43 + "!", "short", one + "x"):
        assert await auth.session_user(junk) is None
    assert await UserRepo(db).set_password("nobody", hash_password("whatever1")) is None


def test_cookie_headers() -> None:
    v = "A" * 43
    assert cookie_header(v, secure=False) == f"{COOKIE}={v}; HttpOnly; SameSite=Strict; Path=/"
    assert cookie_header(v, secure=True).endswith("; Secure")
    assert clear_cookie_header(secure=False).startswith(f"{COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict")


# -- the Origin check and WebSocket credentials -------------------------------------------------------------------

def conn(headers: dict[str, str], *, kind: str = "http", scheme: str = "http", query: str = "") -> HTTPConnection:
    return HTTPConnection({"type": kind, "scheme": scheme, "method": "POST", "path": "/x",
                           "query_string": query.encode(),
                           "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                           "server": ("127.0.0.1", 8080)})


@pytest.mark.parametrize(("origin", "host", "fetch_site", "ok"), [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", None, True),
    ("http://127.0.0.1:8080", "127.0.0.1:8080", "same-origin", True),
    ("http://127.0.0.1:8080", "127.0.0.1:8080", "cross-site", False),
    ("http://127.0.0.1:8080", "127.0.0.1:8080", "same-site", False),
    ("https://cc.example.com", "cc.example.com", None, True),           # behind a TLS proxy: default ports
    ("https://cc.example.com:443", "CC.example.com", None, True),
    ("http://cc.example.com", "cc.example.com:80", None, True),
    ("http://evil.example", "127.0.0.1:8080", None, False),
    ("http://127.0.0.1:9999", "127.0.0.1:8080", None, False),
    ("https://cc.example.com", "cc.example.com:8443", None, False),
    ("null", "127.0.0.1:8080", None, False),
    ("", "127.0.0.1:8080", None, False),
    ("http://127.0.0.1:8080", "", None, False),
    ("ftp://127.0.0.1:8080", "127.0.0.1:8080", None, False),
    ("http://127.0.0.1:99999", "127.0.0.1:99999", None, False),          # a malformed port
    ("http://[::1]:8080", "[::1]:8080", None, True),
])
def test_same_origin(origin: str, host: str, fetch_site: str | None, ok: bool) -> None:
    headers = {k: v for k, v in (("origin", origin), ("host", host), ("sec-fetch-site", fetch_site)) if v}
    assert same_origin(conn(headers)) is ok


async def test_user_from_websocket(auth: Auth, db: Database) -> None:
    from callcenter.api import ApiContext

    ctx = ApiContext(calls=CallRepo(db), users=auth.users, data_dir=Path("."), active_calls=lambda: 0, auth=auth)
    _, value = await auth.sign_in("alice", "correct horse")
    here = {"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080"}
    cookie = {"cookie": f"{COOKIE}={value}"}
    got = await user_from_websocket(conn({**here, **cookie}, kind="websocket"), ctx)
    assert got is not None and got.name == "alice"
    # the cookie from a page of another site (cross-site WebSocket hijacking) does not count
    assert await user_from_websocket(conn({**cookie, "host": here["host"], "origin": "http://evil.example"},
                                          kind="websocket"), ctx) is None
    assert await user_from_websocket(conn({**cookie, "host": here["host"]}, kind="websocket"), ctx) is None
    bearer = await user_from_websocket(conn({"authorization": "Bearer tok-api"}, kind="websocket"), ctx)
    assert bearer is not None and bearer.name == "api"
    assert await user_from_websocket(conn({"authorization": "Basic dG9rLWFwaQ=="}, kind="websocket"), ctx) is None
    assert await user_from_websocket(conn({"authorization": "Bearer nope"}, kind="websocket"), ctx) is None
    # a token or a cookie value in the URL is never looked at
    for query in ("token=tok-api", f"access_token=tok-api&{COOKIE}={value}"):
        assert await user_from_websocket(conn(here, kind="websocket", query=query), ctx) is None


# -- the `user` commands --------------------------------------------------------------------------------------------

class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("CALLCENTER_CONFIG", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))           # not a terminal
    (tmp_path / "data").mkdir()
    yield tmp_path / "data"


def run_cli(data: Path, *argv: str) -> int:
    return cli.main(["user", *argv, "--data-dir", str(data)])


def credentials(data: Path, name: str) -> tuple[Any, str | None] | None:
    import asyncio

    async def go() -> tuple[Any, str | None] | None:
        database = await Database.open(data)
        try:
            return await UserRepo(database).credentials(name)
        finally:
            await database.close()

    return asyncio.run(go())


def test_user_add_with_a_password_file(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("s3cret password\nsecond line ignored\n", encoding="utf-8")
    assert run_cli(data, "add", "alice", "--role", "agent", "--password-file", str(pw)) == 0
    out = capsys.readouterr().out
    token = out.strip()
    assert out == token + "\n" and len(token) >= 40               # stdout: the token and nothing else
    found = credentials(data, "alice")
    assert found is not None and verify_password("s3cret password", found[1])
    assert "s3cret" not in (found[1] or "")

    pw.write_text("short\n", encoding="utf-8")
    assert run_cli(data, "add", "bob", "--role", "qa", "--password-file", str(pw)) == 2
    assert "at least 8 characters" in capsys.readouterr().err and credentials(data, "bob") is None
    assert run_cli(data, "add", "bob", "--role", "qa", "--password-file", str(tmp_path / "missing")) == 2
    assert "cannot read the password" in capsys.readouterr().err and credentials(data, "bob") is None


def test_user_add_without_a_terminal_is_token_only(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(data, "add", "robot", "--role", "supervisor") == 0
    assert len(capsys.readouterr().out.strip()) >= 40
    found = credentials(data, "robot")
    assert found is not None and found[1] is None
    assert run_cli(data, "passwd", "robot") == 2
    assert "no terminal" in capsys.readouterr().err
    assert run_cli(data, "passwd", "nobody") == 2
    assert "no user 'nobody'" in capsys.readouterr().err


def test_user_add_and_passwd_on_a_terminal(data: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import getpass

    answers = iter(["short", "long enough 1", "long enough 2", "long enough 1", "long enough 1"])
    prompts: list[str] = []

    def ask(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(getpass, "getpass", ask)
    monkeypatch.setattr(sys, "stdin", Tty(""))
    assert run_cli(data, "add", "carol", "--role", "qa") == 0
    got = capsys.readouterr()
    assert "at least 8 characters" in got.err and "differ" in got.err and len(got.out.strip()) >= 40
    assert len(prompts) == 5 and "Password for carol" in prompts[0]
    found = credentials(data, "carol")
    assert found is not None and verify_password("long enough 1", found[1])

    answers = iter(["", "x"])                                      # Enter: no password, an API-only user
    assert run_cli(data, "add", "bot", "--role", "qa") == 0
    found = credentials(data, "bot")
    assert found is not None and found[1] is None

    answers = iter(["changed pass", "changed pass"])
    assert run_cli(data, "passwd", "carol") == 0
    found = credentials(data, "carol")
    assert found is not None and verify_password("changed pass", found[1])
    answers = iter(["a" * 9, "b" * 9] * 3)
    assert run_cli(data, "passwd", "carol") == 2
    assert "three tries" in capsys.readouterr().err

    capsys.readouterr()
    assert run_cli(data, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1\tcarol\tqa\tpassword set 20") and lines[1] == "2\tbot\tqa\ttoken only"


def test_user_commands_as_a_process(tmp_path: Path) -> None:
    """The real command with no terminal on stdin (as scripts and the tests' ServerProcess.token run it)."""
    data = tmp_path / "data"
    data.mkdir()
    base = [sys.executable, "-m", "callcenter.cli", "user"]
    out = subprocess.run([*base, "add", "eve", "--role", "agent", "--data-dir", str(data)], cwd=ROOT,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1 and len(out.stdout.strip()) >= 40
    out = subprocess.run([*base, "passwd", "eve", "--password-file", "-", "--data-dir", str(data)], cwd=ROOT,
                         input="from stdin pw\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "", out.stderr
    found = credentials(data, "eve")
    assert found is not None and verify_password("from stdin pw", found[1])

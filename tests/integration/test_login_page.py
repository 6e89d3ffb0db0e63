"""The /login page in headless Chromium against a real uvicorn server and a real database.

Sign in (the cookie is HttpOnly, SameSite=Strict, invisible to scripts), a wrong password shows an
error, ?next= is followed only to a path on this site, the QA page works on the cookie (its <audio>
streams the recording with Range requests), a dead session sends a page to /login?next=..., sign out,
and the rate limit after five failures. Screenshots go to /tmp/login-page-*.png.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from callcenter.api import ApiContext
from callcenter.auth import COOKIE, hash_password
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, UserRepo
from tests.support.browser import chromium, console, missing, screenshot, wait_for
from tests.support.site import ThreadedSite
from tests.unit.test_qa_api import add_agent, add_call, add_recording, add_transcript, iso, qa_app, write_wav

PASSWORD = "correct horse battery"
SHOTS = Path("/tmp")


class SeenRequests:
    """ASGI middleware noting each request's path, query and Range header (to check what the browser sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append((scope["path"], scope["query_string"].decode(), headers.get(b"range", b"").decode()))
        await self.app(scope, receive, send)


class LoginServer(ThreadedSite):
    """The app (pages, QA routes, /api/session) on a thread of this process, its own loop."""

    label = "login test server"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.app: SeenRequests | None = None

    async def serve(self) -> None:
        db = await Database.open(self.data_dir)
        try:
            users = UserRepo(db)
            hashed = hash_password(PASSWORD)
            for name, role in (("quinn", "qa"), ("ann", "agent"), ("sam", "supervisor")):
                await users.add(name, role, f"tok-{name}", password_hash=hashed)
            await add_agent(db, "alice", "Alice Smith")
            write_wav(self.data_dir / "recordings" / "call-1-stereo.wav", seconds=4.0)
            await add_call(db, "call-1", started_at=iso(14, 9, 41), seconds=4.0, caller="+15551234567")
            await add_recording(db, "call-1", "stereo", "recordings/call-1-stereo.wav", 4.0)
            await add_transcript(db, "call-1", [("customer", 0.5, 2.0, "hello there")], duration_s=4.0)
            ctx = ApiContext(calls=CallRepo(db), users=users, data_dir=self.data_dir, active_calls=lambda: 0)
            self.app = SeenRequests(qa_app(ctx))
            await self.run_app(self.app)
        finally:
            await db.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LoginServer]:
    why = missing()
    if why:  # ./run installs them: a missing browser is a broken setup, not a reason to skip
        pytest.fail(f"the login page test needs headless Chromium: {why}")
    data = tmp_path / "data"
    data.mkdir()
    srv = LoginServer(data.resolve()).start()
    try:
        yield srv
    finally:
        srv.stop()


def js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def sign_in(d: Any, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    wait_for(d, lambda d: d.find_element(By.ID, "submit").is_enabled(), what="the sign-in form")
    for field, text in (("name", name), ("password", password)):
        box = d.find_element(By.ID, field)
        box.clear()
        box.send_keys(text)
    d.find_element(By.ID, "submit").click()


def path_of(d: Any) -> str:
    u = urlsplit(d.current_url)
    return u.path + (f"?{u.query}" if u.query else "") + (f"#{u.fragment}" if u.fragment else "")


def landed_on(path: str) -> Callable[[Any], bool]:
    return lambda d: path_of(d) == path


def session_cookie(d: Any) -> dict[str, Any] | None:
    return next((c for c in d.get_cookies() if c["name"] == COOKIE), None)


def test_sign_in_page(site: LoginServer) -> None:
    from selenium.webdriver.common.by import By

    with chromium(window=(1280, 800)) as d:
        # the QA page, not signed in: its dialog leads to the sign-in page, which will come back to /qa
        d.get(f"{site.url}/qa")
        wait_for(d, lambda d: js(d, "return document.getElementById('signin').open"), what="the QA sign-in dialog")
        screenshot(d, SHOTS / "login-page-qa-dialog.png")
        d.find_element(By.ID, "signin-login").click()
        wait_for(d, lambda d: path_of(d) == "/login?next=%2Fqa", what="the sign-in page")
        wait_for(d, lambda d: d.find_element(By.ID, "name") == d.switch_to.active_element, what="the name focused")
        screenshot(d, SHOTS / "login-page-empty.png")

        # a wrong password: a clear message, the password cleared, still here, no cookie
        sign_in(d, "quinn", "not the password")
        err = wait_for(d, lambda d: d.find_element(By.ID, "error").text, what="the error message")
        assert err == "Wrong user name or password."
        assert d.find_element(By.ID, "password").get_attribute("value") == ""
        assert urlsplit(d.current_url).path == "/login" and session_cookie(d) is None
        screenshot(d, SHOTS / "login-page-error.png")

        # sign in: back on /qa, which works on the cookie alone (no token in sessionStorage)
        sign_in(d, "quinn", PASSWORD)
        wait_for(d, lambda d: urlsplit(d.current_url).path == "/qa", what="the QA page")
        wait_for(d, lambda d: d.find_element(By.ID, "who-name").text == "quinn", what="signed in as quinn")
        assert not js(d, "return document.getElementById('signin').open")
        assert js(d, "return sessionStorage.getItem('callcenter.token')") is None
        cookie = session_cookie(d)
        assert cookie is not None
        flags = (cookie["httpOnly"], cookie["sameSite"], cookie["secure"], cookie["path"])
        assert flags == (True, "Strict", False, "/")
        assert COOKIE not in js(d, "return document.cookie")                      # scripts cannot read it
        value = cookie["value"]

        # the recording streams straight from its URL (no blob:), with Range requests, on the cookie
        wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#results tr.call"), what="the call listed")
        d.find_element(By.CSS_SELECTOR, "#results tr.call").click()
        wait_for(d, lambda d: js(d, "const a = document.getElementById('audio'); return a.readyState >= 1 && "
                                    "a.duration > 3.5"), what="the recording to load")
        assert js(d, "return document.getElementById('audio').src").startswith(f"{site.url}/api/qa/calls/call-1/audio")
        assert site.app is not None
        audio = [r for r in site.app.seen if r[0] == "/api/qa/calls/call-1/audio"]
        assert audio and any(r[2].startswith("bytes=") for r in audio), audio

        # the cookie never travelled in a URL (what the page fetched, what the server saw)
        urls = js(d, "return performance.getEntriesByType('resource').map(e => e.name)") + [d.current_url]
        assert not any(value in u for u in urls)
        assert not any(value in q or value in p for p, q, _ in site.app.seen)

        # the session ends behind the page's back: its next request sends it to /login?next=/qa
        gone = httpx.delete(f"{site.url}/api/session", headers={"Cookie": f"{COOKIE}={value}", "Origin": site.url})
        assert gone.status_code == 204
        d.find_element(By.ID, "search-btn").click()
        wait_for(d, lambda d: path_of(d).startswith("/login?next=%2Fqa"), what="back to the sign-in page")
        assert session_cookie(d) is None                                            # cleared by the 401

        # ?next= is followed to a path on this site...
        sign_in(d, "quinn", PASSWORD)
        wait_for(d, lambda d: urlsplit(d.current_url).path == "/qa", what="back on the QA page")
        # ...and sign out from the page ends the session
        d.find_element(By.ID, "signout").click()
        wait_for(d, lambda d: urlsplit(d.current_url).path == "/login", what="signed out")
        assert session_cookie(d) is None
        assert httpx.get(f"{site.url}/api/session", headers={"Cookie": f"{COOKIE}={value}"}).status_code == 401

        check_console(d)

        # never to another site; an agent without a next goes to /agent, a supervisor to /supervisor
        for nxt, who, lands in (("//evil.example/x", "quinn", "/qa"), ("https://evil.example/", "ann", "/agent"),
                                ("/\\evil.example", "sam", "/supervisor"), ("/qa?x=1", "ann", "/qa?x=1")):
            d.get(f"{site.url}/login?" + urlencode({"next": nxt}))
            sign_in(d, who, PASSWORD)
            wait_for(d, landed_on(lands), what=f"{who} to land on {lands}")
            assert urlsplit(d.current_url).netloc == urlsplit(site.url).netloc
        console(d)              # (what the agent and supervisor pages said is their tests' business)

        # five failures for ann from this address: the sixth try is refused, even with the right password
        d.delete_all_cookies()
        d.get(f"{site.url}/login")
        for i in range(5):
            sign_in(d, "ann", f"guess number {i}")
            wait_for(d, lambda d: d.find_element(By.ID, "error").text == "Wrong user name or password."
                     and d.find_element(By.ID, "submit").is_enabled(), what=f"failure {i + 1}")
        sign_in(d, "ann", PASSWORD)
        wait_for(d, lambda d: "Too many" in d.find_element(By.ID, "error").text, what="the 429 message")
        msg: str = d.find_element(By.ID, "error").text
        assert msg.startswith("Too many failed sign-ins. Try again in ") and msg.endswith("minutes.")
        assert urlsplit(d.current_url).path == "/login" and session_cookie(d) is None
        screenshot(d, SHOTS / "login-page-locked.png")

        check_console(d)


def check_console(d: Any) -> None:
    """No console errors but the refused requests the test made on purpose (401: wrong password, dead session)."""
    errors = [m for m in console(d) if not any(a in m for a in ("status of 401", "status of 429"))]
    assert not errors, errors

"""The agent desk (/agent) and the supervisor board (/supervisor) in headless Chromium, against a real app.

uvicorn serves the real app on a free port of this process (its own thread and event loop): a real
database, real users with scrypt passwords, the real sign-in (callcenter/auth_api.py, the /login page),
the real desk WebSocket (callcenter/desk.py) and the real live ACD (callcenter/acd.py) with agents
and queues added through the REST API. People sign in through the /login page as they would. The
SIP engine is built but not started: nothing here places a call (the call path, a pjsua2 phone
calling and the agent answering in the page, is tested with the whole server elsewhere). Each test
checks what the page shows and, through the REST API, what the ACD really did.

Screenshots go to /tmp/agent-page-*.png and /tmp/supervisor-page-*.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcenter import desk
from callcenter.acd import AcdService
from callcenter.acd_store import AcdStore
from callcenter.api import ApiContext, create_app
from callcenter.auth import hash_password
from callcenter.live_events import EventBus
from callcenter.storage.db import Database
from callcenter.storage.repos import CallRepo, EventRepo, UserRepo
from callcenter.trunk import Trunk
from ivr.prompts import PromptCache
from tests.support.browser import chromium, console, missing, screenshot, wait_for
from tests.support.ports import free_port
from tests.support.site import ThreadedSite
from voice.config import EngineConfig
from voice.engine import Engine

PASSWORD = "correct horse battery staple"
ADMIN = "tok-admin"
SHOTS = Path("/tmp")
AGENTS = [("alice", "Alice Smith", "support:2,english:1"), ("bob", "Bob Jones", "sales:1"),
          ("carol", "Carol White", "support:1,sales:1")]
QUEUES = [("support", "support:1"), ("sales", "sales:1")]


class DeskSite(ThreadedSite):
    """The app on a thread of this process: pages, sign-in, REST API, live events, the desk, the live ACD."""

    label = "desk test server"
    stop_wait_s = 20.0

    async def serve(self) -> None:
        db = await Database.open(self.data_dir)
        bus = EventBus()
        acd_task: asyncio.Task[None] | None = None
        hub: desk.DeskHub | None = None
        try:
            users, calls, events = UserRepo(db), CallRepo(db), EventRepo(db)
            hashed = hash_password(PASSWORD)
            await users.add("admin", "admin", ADMIN)
            for name, role in (("alice", "agent"), ("bob", "agent"), ("ann", "agent"), ("sam", "supervisor")):
                await users.add(name, role, f"tok-{name}", password_hash=hashed)
            engine = Engine(EngineConfig(sip_port=free_port()))    # (not started: no call in these tests)
            prompts = PromptCache(self.data_dir / "prompts", 8000, lambda *_: None)
            acd = AcdService(engine, AcdStore(db), events, calls, prompts, self.data_dir,
                             hold_music=self.data_dir / "moh", trunk=Trunk(), bus=bus)
            await acd.start()
            acd_task = asyncio.create_task(acd.run(), name="acd")
            ctx = ApiContext(calls=calls, users=users, data_dir=self.data_dir, active_calls=lambda: 0, db=db,
                             acd=acd, bus=bus)
            app = create_app(ctx)
            hub = desk.DeskHub(ctx)
            app.include_router(desk.build_router(ctx, hub))
            await self.run_app(app)
        finally:
            if hub is not None:
                await hub.close()
            if acd_task is not None:
                acd_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acd_task
            bus.close()
            await db.close()

    def start(self) -> DeskSite:
        super().start()
        try:
            for agent_id, name, skills in AGENTS:
                self.api("POST", "/api/agents", {"id": agent_id, "name": name, "uri": "desk", "skills": skills,
                                                 "user": agent_id, "wrap_up_s": 5})
            for queue, skills in QUEUES:
                self.api("POST", "/api/queues", {"name": queue, "skills": skills})
        except BaseException:
            self.stop()
            raise
        return self

    def api(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, self.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"},
                          timeout=10)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def status(self, agent: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", f"/api/agents/{agent}/status")
        return result


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeskSite]:
    why = missing()
    if why:  # ./run installs them: a missing browser is a broken setup, not a reason to skip
        pytest.fail(f"the desk page tests need headless Chromium: {why}")
    data = tmp_path / "data"
    data.mkdir()
    srv = DeskSite(data.resolve()).start()
    try:
        yield srv
    finally:
        srv.stop()


# -- helpers driving the pages ---------------------------------------------------------------------------------------
def by_id(d: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return d.find_element(By.ID, element_id)


def by_testid(d: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def attr(d: Any, element_id: str, name: str) -> str:
    return str(by_id(d, element_id).get_attribute(name) or "")


def sign_in(d: Any, site: DeskSite, name: str, page: str) -> None:
    """Through the real /login page, coming back to ``page``."""
    d.get(f"{site.url}{page}")
    wait_for(d, lambda d: "/login" in d.current_url, what="the page sending us to /login")
    wait_for(d, lambda d: by_id(d, "submit").is_enabled(), what="the sign-in form")
    by_id(d, "name").send_keys(name)
    by_id(d, "password").send_keys(PASSWORD)
    by_id(d, "submit").click()
    wait_for(d, lambda d: d.current_url.rstrip("/").endswith(page), what=f"back on {page} after signing in")


def page_errors(d: Any) -> list[str]:
    """SEVERE console lines, leaving out refused requests the page handled (a 403/409 the test caused)."""
    return [m for m in console(d) if "the server responded with a status of" not in m]


def wait_state(d: Any, state: str, timeout: float = 10.0) -> None:
    wait_for(d, lambda d: attr(d, "acd-state", "data-state") == state, timeout,
             what=f"the page to show the ACD state {state} (it shows {attr(d, 'acd-state', 'data-state')})")


def wait_rest(site: DeskSite, agent: str, state: str, reason: str | None = None,
              timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    st = site.status(agent)
    while time.monotonic() < deadline:
        st = site.status(agent)
        if st["state"] == state and (reason is None or st["reason"] == reason):
            return st
        time.sleep(0.1)
    raise AssertionError(f"the ACD says {agent} is {st}, not {state} {reason or ''}")


# -- the agent page ---------------------------------------------------------------------------------------------------
def test_agent_page_changes_state_through_the_desk(site: DeskSite) -> None:
    from selenium.webdriver.support.ui import Select

    with chromium(fake_media=True) as d:
        sign_in(d, site, "alice", "/agent")
        wait_for(d, lambda d: attr(d, "conn", "data-status") == "connected", what="the desk connection")
        wait_state(d, "logged_out")
        assert by_id(d, "state-label").text == "Logged out"
        assert by_id(d, "who-name").text == "alice"
        assert "logged out" in by_id(d, "idle-title").text.lower()
        assert not by_id(d, "btn-available").get_attribute("disabled")
        assert by_id(d, "btn-logout").get_attribute("disabled"), "Log out is offered to a logged-out agent"
        screenshot(d, SHOTS / "agent-page-logged-out.png")

        by_id(d, "btn-available").click()
        wait_state(d, "available")
        assert wait_rest(site, "alice", "available")["live"] is True
        assert by_id(d, "state-label").text == "Available"
        assert "waiting for a call" in by_id(d, "idle-title").text.lower()
        assert by_id(d, "btn-available").get_attribute("disabled"), "Available is offered to an available agent"
        screenshot(d, SHOTS / "agent-page-available.png")

        Select(by_id(d, "break-reason")).select_by_value("lunch")
        by_id(d, "btn-break").click()
        wait_state(d, "break")
        wait_rest(site, "alice", "break", "lunch")
        assert by_id(d, "state-reason").text.lower() == "lunch"
        wait_for(d, lambda d: by_id(d, "state-timer").text in ("0:00", "0:01", "0:02"), what="the timer restarting")
        screenshot(d, SHOTS / "agent-page-break.png")

        by_id(d, "btn-available").click()          # back from the break: resume
        wait_state(d, "available")
        wait_rest(site, "alice", "available")

        by_id(d, "btn-logout").click()
        wait_state(d, "logged_out")
        wait_rest(site, "alice", "logged_out")
        # the requested state is recorded too (a restarted server logs the same agents in)
        assert site.api("GET", "/api/agents/alice")["state"] == "logged_out"
        log = by_id(d, "log").text
        for line in ("State: Available", "State: Break (lunch)", "State: Logged out"):
            assert line in log, f"{line!r} missing from the activity log:\n{log}"
        assert page_errors(d) == []


def test_agent_page_follows_a_change_made_elsewhere_and_resumes_after_a_drop(site: DeskSite) -> None:
    with chromium(fake_media=True) as d:
        sign_in(d, site, "bob", "/agent")
        wait_for(d, lambda d: attr(d, "conn", "data-status") == "connected", what="the desk connection")
        wait_state(d, "logged_out")
        session = d.execute_script("return window.__desk.desk.session")

        # a supervisor (here the REST API) logs bob in: the page shows it live
        site.api("POST", "/api/agents/bob/state", {"action": "login"})
        wait_state(d, "available")

        # the network drops: the page says so, reconnects, and proves with its resume token that it is the same page
        d.execute_script("window.__desk.desk.ws.close(4000, 'test drop')")
        wait_for(d, lambda d: attr(d, "conn", "data-status") == "reconnecting", 5, what="the page noticing the drop")
        assert "Reconnecting" in by_id(d, "conn-text").text
        wait_for(d, lambda d: attr(d, "conn", "data-status") == "connected", 15, what="the page reconnecting")
        wait_for(d, lambda d: d.execute_script("return window.__desk.desk.welcome.resumed === true"), 5,
                 what="the desk confirming the resumed session")
        assert d.execute_script("return window.__desk.desk.session") == session
        wait_state(d, "available")
        assert "session resumed" in by_id(d, "log").text

        # a message the desk refuses is shown plainly, and nothing changes
        d.execute_script("window.__desk.desk.send('hold', {call_id: 'no-such-call'})")
        wait_for(d, lambda d: by_id(d, "error").is_displayed(), what="the refusal shown")
        assert by_id(d, "error-text").text.strip()
        assert site.status("bob")["state"] == "available"
        assert page_errors(d) == []


def test_agent_page_says_plainly_when_the_user_is_no_agent(site: DeskSite) -> None:
    with chromium(fake_media=True) as d:
        sign_in(d, site, "ann", "/agent")          # role agent, but no agent has user "ann"
        wait_for(d, lambda d: by_id(d, "error").is_displayed(), what="the error banner")
        assert "not linked to an agent" in by_id(d, "error-text").text
        assert attr(d, "conn", "data-status") == "closed"
        assert by_id(d, "btn-available").get_attribute("disabled")
        screenshot(d, SHOTS / "agent-page-no-agent.png")


# -- the supervisor page ----------------------------------------------------------------------------------------------
def test_supervisor_page_lists_agents_and_queues_and_forces_a_state(site: DeskSite) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    site.api("POST", "/api/agents/bob/state", {"action": "login"})
    site.api("POST", "/api/agents/carol/state", {"action": "login"})
    site.api("POST", "/api/agents/carol/state", {"action": "pause", "reason": "training"})
    with chromium(fake_media=True) as d:
        sign_in(d, site, "sam", "/supervisor")
        wait_for(d, lambda d: attr(d, "conn-desk", "data-status") == "connected", what="the desk connection")

        def queue_rows(d: Any) -> list[str]:
            return [r.get_attribute("data-queue") for r in d.find_elements(By.CSS_SELECTOR, "#queues tbody tr")]

        wait_for(d, lambda d: sorted(queue_rows(d)) == ["sales", "support"], what="both queues listed")
        support = d.find_element(By.CSS_SELECTOR, '#queues tr[data-queue="support"]')
        assert support.find_element(By.CSS_SELECTOR, '[data-testid="q-waiting"]').text == "0"

        # logged-in agents by default; "All" lists everyone
        wait_for(d, lambda d: by_testid(d, "agent-state-bob").text == "Available", what="bob available")
        assert by_testid(d, "agent-state-carol").text == "Break"
        assert not d.find_elements(By.CSS_SELECTOR, '[data-testid="agent-state-alice"]'), \
            "a logged-out agent is listed under Logged in"
        assert by_id(d, "agents-count").text == "2 of 3 logged in"
        Select(by_id(d, "agent-filter")).select_by_value("all")
        wait_for(d, lambda d: by_testid(d, "agent-state-alice").text == "Logged out", what="alice listed under All")
        assert by_id(d, "tot-available").text == "1"
        screenshot(d, SHOTS / "supervisor-page-board.png")

        # force alice in, then on a break, through the desk's force_state; the ACD says so
        d.find_element(By.CSS_SELECTOR, '[data-testid="force-alice"]').click()
        wait_for(d, lambda d: by_id(d, "force-menu").is_displayed(), what="the force menu")
        d.find_element(By.CSS_SELECTOR, '[data-testid="force-available"]').click()
        wait_rest(site, "alice", "available")
        wait_for(d, lambda d: by_testid(d, "agent-state-alice").text == "Available", 12, what="alice shown available")

        d.find_element(By.CSS_SELECTOR, '[data-testid="force-alice"]').click()
        Select(by_id(d, "force-reason")).select_by_value("coaching")
        d.find_element(By.CSS_SELECTOR, '[data-testid="force-break"]').click()
        wait_rest(site, "alice", "break", "coaching")
        wait_for(d, lambda d: by_testid(d, "agent-state-alice").text == "Break", 12, what="alice shown on break")
        assert not by_id(d, "error").is_displayed(), by_id(d, "error-text").text
        assert page_errors(d) == []


def test_supervisor_page_refuses_an_agent(site: DeskSite) -> None:
    with chromium(fake_media=True) as d:
        sign_in(d, site, "alice", "/supervisor")
        wait_for(d, lambda d: by_id(d, "error").is_displayed(), what="the error banner")
        assert "needs supervisor or admin" in by_id(d, "error-text").text

"""Bearer tokens from `callcenter user add`; roles enforced: no token -> 401, wrong role -> 403."""

from __future__ import annotations

from tests.support.server import ServerProcess


def test_roles_and_tokens(short_server: ServerProcess) -> None:
    s = short_server
    assert s.get("/api/calls").status_code == 401
    assert s.get("/api/calls").headers["www-authenticate"] == "Bearer"
    assert s.get("/api/calls", "not-a-token").status_code == 401

    agent = s.token("agent", "alice")
    assert s.get("/api/calls", agent).status_code == 403
    assert "agent" in s.get("/api/calls", agent).json()["detail"]
    assert s.get("/api/me", agent).json() == {"id": 1, "name": "alice", "role": "agent"}

    for role in ("supervisor", "qa", "admin"):
        assert s.get("/api/calls?limit=5", s.token(role)).status_code == 200, role
    assert s.get("/api/users", s.token("supervisor")).status_code == 403
    admin = s.token("admin", "root")
    assert [u["name"] for u in s.get("/api/users", admin).json()][0] == "alice"
    assert s.get("/api/calls?limit=0", admin).status_code == 422
    assert s.get("/api/calls/nope", admin).status_code == 404
    assert s.get("/api/calls/nope/recording", admin).status_code == 404


def test_user_add_rejects_duplicates_and_bad_roles(short_server: ServerProcess) -> None:
    assert short_server.cli("user", "add", "bob", "--role", "qa").returncode == 0
    dup = short_server.cli("user", "add", "bob", "--role", "qa")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    bad = short_server.cli("user", "add", "eve", "--role", "king")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    listed = short_server.cli("user", "list")
    assert "bob\tqa" in listed.stdout and "eve" not in listed.stdout

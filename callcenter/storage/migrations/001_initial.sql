-- Calls, the append-only event log (queue_log style) and API users.
CREATE TABLE calls (
    id                TEXT PRIMARY KEY,          -- our id (uuid4 hex)
    sip_call_id       TEXT NOT NULL,
    caller            TEXT NOT NULL,
    callee            TEXT NOT NULL,
    remote_address    TEXT NOT NULL DEFAULT '',
    flow              TEXT NOT NULL DEFAULT '',
    codec             TEXT NOT NULL DEFAULT '',
    started_at        TEXT NOT NULL,             -- ISO 8601 UTC: INVITE received
    answered_at       TEXT,                      -- ACK for our 200 received
    ended_at          TEXT,
    disposition       TEXT,                      -- completed | caller_hangup | missed | failed | shutdown | interrupted
    hangup_cause      TEXT NOT NULL DEFAULT '',
    recording_path    TEXT,                      -- relative to the data directory
    recording_sha256  TEXT,
    recording_bytes   INTEGER,
    recording_seconds REAL
);
CREATE INDEX calls_started ON calls (started_at DESC);
CREATE INDEX calls_sip_call_id ON calls (sip_call_id);

CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    call_id  TEXT NOT NULL DEFAULT '',
    queue    TEXT NOT NULL DEFAULT '',
    agent    TEXT NOT NULL DEFAULT '',
    event    TEXT NOT NULL,                      -- CALLSTART, ANSWER, ... (see docs/events.md)
    data     TEXT NOT NULL DEFAULT '{}'          -- JSON
);
CREATE INDEX events_call ON events (call_id);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'agent', 'qa')),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL
);

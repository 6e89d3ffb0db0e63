-- IVR flows as immutable versions, numbers routed to a flow version (with their history), voicemails.
-- SQL for these tables lives in callcenter/storage/flows.py.

CREATE TABLE flow_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- global order of deploys (the directory's change marker)
    name        TEXT NOT NULL,                      -- the flow's `name:`
    version     INTEGER NOT NULL CHECK (version >= 1),  -- 1, 2, 3... per name
    text        TEXT NOT NULL,                      -- the YAML exactly as deployed
    sha256      TEXT NOT NULL,                      -- of the UTF-8 text
    source_dir  TEXT NOT NULL DEFAULT '',           -- where the file was (audio paths resolve against it)
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL DEFAULT '',
    comment     TEXT NOT NULL DEFAULT '',
    UNIQUE (name, version)
);
CREATE INDEX flow_versions_sha ON flow_versions (name, sha256);
CREATE TRIGGER flow_versions_immutable_update BEFORE UPDATE ON flow_versions
BEGIN SELECT RAISE(ABORT, 'flow versions are immutable'); END;
CREATE TRIGGER flow_versions_immutable_delete BEFORE DELETE ON flow_versions
BEGIN SELECT RAISE(ABORT, 'flow versions are immutable'); END;

-- Which flow version answers a dialled number (the Request-URI's user part).
CREATE TABLE numbers (
    number      TEXT PRIMARY KEY,
    flow        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL DEFAULT 'deploy' CHECK (action IN ('deploy', 'rollback', 'rollback_to')),
    comment     TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (flow, version) REFERENCES flow_versions (name, version)
);

-- Every change of a number's target, written by the triggers below in the same statement as the
-- change itself (so a change and its history row can never be split by a commit in between).
-- Rollback reads it as a stack: deploy and rollback_to push a target, rollback pops one.
CREATE TABLE number_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    number      TEXT NOT NULL,
    flow        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    action      TEXT NOT NULL,
    at          TEXT NOT NULL,
    by          TEXT NOT NULL DEFAULT '',
    comment     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX number_history_number ON number_history (number, id);
CREATE TRIGGER numbers_history_insert AFTER INSERT ON numbers
BEGIN
    INSERT INTO number_history (number, flow, version, action, at, by, comment)
    VALUES (NEW.number, NEW.flow, NEW.version, NEW.action, NEW.updated_at, NEW.updated_by, NEW.comment);
END;
CREATE TRIGGER numbers_history_update AFTER UPDATE ON numbers
WHEN NEW.flow IS NOT OLD.flow OR NEW.version IS NOT OLD.version
BEGIN
    INSERT INTO number_history (number, flow, version, action, at, by, comment)
    VALUES (NEW.number, NEW.flow, NEW.version, NEW.action, NEW.updated_at, NEW.updated_by, NEW.comment);
END;
CREATE TRIGGER numbers_no_delete BEFORE DELETE ON numbers
BEGIN SELECT RAISE(ABORT, 'numbers are repointed, not deleted'); END;
CREATE TRIGGER number_history_append_only_update BEFORE UPDATE ON number_history
BEGIN SELECT RAISE(ABORT, 'number history is append-only'); END;
CREATE TRIGGER number_history_append_only_delete BEFORE DELETE ON number_history
BEGIN SELECT RAISE(ABORT, 'number history is append-only'); END;

CREATE TABLE voicemails (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id        TEXT NOT NULL,
    mailbox        TEXT NOT NULL,
    path           TEXT NOT NULL,                   -- relative to the data directory, under voicemail/
    seconds        REAL NOT NULL,
    sha256         TEXT NOT NULL,
    bytes          INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    caller_number  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX voicemails_mailbox ON voicemails (mailbox, id DESC);
CREATE INDEX voicemails_call ON voicemails (call_id);

-- The flow version a call ran (calls.flow holds its name); NULL for calls before this migration
-- and for the configured default flow read from a file.
ALTER TABLE calls ADD COLUMN flow_version INTEGER;

-- A call's IVR path (GET /api/calls/{id}) is its IVR_* rows of `events`, read through events_call.

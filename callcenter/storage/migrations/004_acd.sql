-- The ACD: agents, queues, customers, callback requests; the agent's leg of a call.
-- SQL for these tables lives in callcenter/storage/acd.py. Queue metrics come from the events table.

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,                 -- e.g. "alice" (routing.model.AgentSpec.id)
    name        TEXT NOT NULL DEFAULT '',
    team        TEXT NOT NULL DEFAULT '',
    uri         TEXT NOT NULL DEFAULT '',         -- sip:alice@10.0.0.5:5060 (a softphone the engine calls)
    skills      TEXT NOT NULL DEFAULT '{}',       -- JSON {skill: proficiency 1..5}
    wrap_up_s   REAL NOT NULL DEFAULT 10,
    max_offers  INTEGER NOT NULL DEFAULT 1,
    weight      INTEGER NOT NULL DEFAULT 1,
    ord         INTEGER NOT NULL DEFAULT 0,       -- linear strategy's order
    user_name   TEXT NOT NULL DEFAULT '',         -- the API user who is this agent (may change their own state)
    state       TEXT NOT NULL DEFAULT 'logged_out'
                CHECK (state IN ('logged_out', 'available', 'break')),  -- what the agent asked for; restored at start
    reason      TEXT NOT NULL DEFAULT '',         -- the break reason
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE queues (
    name        TEXT PRIMARY KEY,
    config      TEXT NOT NULL DEFAULT '{}',       -- JSON of routing.model.QueueSpec's other fields
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE customers (
    phone       TEXT PRIMARY KEY,                 -- as the caller's number arrives (E.164 recommended)
    name        TEXT NOT NULL DEFAULT '',
    vip_tier    INTEGER NOT NULL DEFAULT 0 CHECK (vip_tier BETWEEN 0 AND 9),
    language    TEXT NOT NULL DEFAULT '',
    last_agent  TEXT NOT NULL DEFAULT '',         -- updated when an agent answers them
    notes       TEXT NOT NULL DEFAULT '',
    updated_at  TEXT NOT NULL
);

-- "Press 1 to be called back": the request keeps the caller's place in line (entered_at) across restarts.
CREATE TABLE callbacks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL UNIQUE,             -- the call that asked (the contact's id)
    queue       TEXT NOT NULL,
    number      TEXT NOT NULL,                    -- whom to call back
    entered_at  REAL NOT NULL,                    -- epoch seconds the caller entered the queue
    priority    INTEGER NOT NULL DEFAULT 0,
    vip_tier    INTEGER NOT NULL DEFAULT 0,
    skills      TEXT NOT NULL DEFAULT '{}',
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  REAL NOT NULL DEFAULT 0,
    state       TEXT NOT NULL DEFAULT 'waiting'
                CHECK (state IN ('waiting', 'dialling', 'done', 'failed')),
    agent       TEXT NOT NULL DEFAULT '',
    result_call TEXT NOT NULL DEFAULT '',         -- the outbound call's id once dialled
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX callbacks_open ON callbacks (state) WHERE state IN ('waiting', 'dialling');

-- A call's queue and agent, and the agent's own leg (recorded separately).
ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound';   -- inbound | callback
ALTER TABLE calls ADD COLUMN queue TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN agent TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN agent_recording_path TEXT;
ALTER TABLE calls ADD COLUMN agent_recording_sha256 TEXT;
ALTER TABLE calls ADD COLUMN agent_recording_bytes INTEGER;
ALTER TABLE calls ADD COLUMN agent_recording_seconds REAL;

CREATE INDEX events_queue_at ON events (queue, at);
CREATE INDEX events_agent_at ON events (agent, at);
CREATE INDEX events_event_at ON events (event, at);

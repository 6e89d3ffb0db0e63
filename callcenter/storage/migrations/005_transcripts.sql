-- Recordings per leg, transcription jobs, transcripts with full-text search, keyword hits, QA
-- scorecards and emotion. SQL for these lives in callcenter/storage/transcripts.py (and qa.py).

-- Every file of a call: each leg, the stereo mix (caller left, agent right), the redacted copy.
CREATE TABLE recordings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL,
    leg         TEXT NOT NULL CHECK (leg IN ('caller', 'agent', 'stereo', 'redacted')),
    path        TEXT NOT NULL,                    -- relative to the data directory
    sha256      TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    offset_s    REAL NOT NULL DEFAULT 0,          -- where this leg starts in the call (the agent's leg starts late)
    pauses      TEXT NOT NULL DEFAULT '[]',       -- JSON [[start_s, end_s], ...]: recorded as silence
    created_at  TEXT NOT NULL,
    UNIQUE (call_id, leg)
);
CREATE INDEX recordings_created ON recordings (created_at);

-- Post-call work as rows: a worker leases a job (lease_until), a crashed worker's lease runs out.
CREATE TABLE transcription_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    worker      TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,          -- epoch seconds
    error       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX transcription_jobs_state ON transcription_jobs (state, id);

CREATE TABLE transcripts (
    call_id     TEXT PRIMARY KEY,
    engine      TEXT NOT NULL,
    model       TEXT NOT NULL DEFAULT '',
    language    TEXT NOT NULL DEFAULT 'en',
    duration_s  REAL NOT NULL,
    json_path   TEXT NOT NULL,                    -- relative to the data directory (asr.transcript JSON)
    vtt_path    TEXT NOT NULL,
    words       INTEGER NOT NULL DEFAULT 0,
    redacted    INTEGER NOT NULL DEFAULT 0,       -- digit sequences masked in the stored text
    created_at  TEXT NOT NULL
);

CREATE TABLE utterances (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL,
    speaker     TEXT NOT NULL CHECK (speaker IN ('customer', 'agent')),
    start_s     REAL NOT NULL,
    end_s       REAL NOT NULL,
    text        TEXT NOT NULL,                    -- redacted
    confidence  REAL NOT NULL DEFAULT 0
);
CREATE INDEX utterances_call ON utterances (call_id, start_s);
CREATE VIRTUAL TABLE utterances_fts USING fts5(text, content='utterances', content_rowid='id');
CREATE TRIGGER utterances_ai AFTER INSERT ON utterances BEGIN
    INSERT INTO utterances_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER utterances_ad AFTER DELETE ON utterances BEGIN
    INSERT INTO utterances_fts (utterances_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TABLE keyword_hits (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    category    TEXT NOT NULL DEFAULT '',
    speaker     TEXT NOT NULL DEFAULT '',
    start_s     REAL NOT NULL,
    end_s       REAL NOT NULL,
    phrase      TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT 'transcript' CHECK (source IN ('transcript', 'spotting')),
    created_at  TEXT NOT NULL
);
CREATE INDEX keyword_hits_call ON keyword_hits (call_id);
CREATE INDEX keyword_hits_category ON keyword_hits (category, created_at);

CREATE TABLE qa_scores (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT NOT NULL,
    scorecard   TEXT NOT NULL,
    item        TEXT NOT NULL,
    weight      REAL NOT NULL,
    auto_score  REAL,                             -- 0..1 from the rules (NULL: not automatic)
    score       REAL,                             -- the reviewer's override 0..1 (NULL: none)
    reviewer    TEXT NOT NULL DEFAULT '',
    comment     TEXT NOT NULL DEFAULT '',
    evidence    TEXT NOT NULL DEFAULT '',         -- why the rule scored it so
    updated_at  TEXT NOT NULL,
    UNIQUE (call_id, scorecard, item)
);

CREATE TABLE call_emotion (
    call_id     TEXT NOT NULL,
    speaker     TEXT NOT NULL,
    quarter     INTEGER NOT NULL CHECK (quarter BETWEEN 1 AND 4),
    lexicon     REAL NOT NULL,                    -- -1 (negative) .. 1 (positive)
    pitch_hz    REAL NOT NULL DEFAULT 0,
    energy_db   REAL NOT NULL DEFAULT 0,
    rate_wps    REAL NOT NULL DEFAULT 0,
    score       REAL NOT NULL,                    -- combined -1 .. 1
    PRIMARY KEY (call_id, speaker, quarter)
);
ALTER TABLE calls ADD COLUMN ends_angry INTEGER NOT NULL DEFAULT 0;

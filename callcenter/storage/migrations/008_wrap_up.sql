-- The agent's wrap-up of a call (the agent desk, docs/desk.md): a disposition code and a note.
-- Written by callcenter/storage/desk.py; the last wrap-up saved wins (wrap_up_at says when).
ALTER TABLE calls ADD COLUMN wrap_up_disposition TEXT;
ALTER TABLE calls ADD COLUMN wrap_up_note TEXT;
ALTER TABLE calls ADD COLUMN wrap_up_at TEXT;

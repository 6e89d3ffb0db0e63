-- Who called, parsed from the INVITE (voice/identity.py): `calls.caller` holds the caller's number
-- (P-Asserted-Identity's user part, else From's) and `calls.callee` the dialled number (the
-- Request-URI's user part) from this migration on; the display name and the raw URI are kept here.
ALTER TABLE calls ADD COLUMN caller_name TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN caller_uri TEXT NOT NULL DEFAULT '';

-- Customer lookups by the caller's number (the agent's screen: a profile and its last calls).
CREATE INDEX calls_caller ON calls (caller, started_at);
CREATE INDEX calls_callback_callee ON calls (callee, started_at) WHERE direction = 'callback';

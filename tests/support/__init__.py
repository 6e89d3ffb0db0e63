"""Test helpers: a pjsua2 test phone (its own process), a server fixture, SIPp and audio checks."""

"""Composition root: settings, storage, HTTP API, CLI; wires voice/, ivr/ and recordings/ together."""

"""The ACD core: agents, skills, queues, strategies and reservations (pure standard library)."""

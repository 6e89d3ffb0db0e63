"""Storage: aiosqlite in WAL mode, numbered SQL migrations, thin repositories."""

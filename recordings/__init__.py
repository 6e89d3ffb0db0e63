"""Recording life cycle: per-leg files, finalize, checksums, retention."""

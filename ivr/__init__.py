"""IVR flows: schema and validation, the sans-I/O interpreter, prompt rendering, a test harness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A running server with the demo flow; on teardown it must stop with exit 0 and no traceback."""
    srv = ServerProcess(tmp_path).start()
    try:
        yield srv
    finally:
        rc = srv.stop()
        log = srv.log()
        assert rc == 0, f"server exited with {rc}:\n{log[-3000:]}"
        assert "Traceback" not in log, log[-5000:]


@pytest.fixture
def short_server(tmp_path: Path) -> Iterator[ServerProcess]:
    from tests.support.server import SHORT_FLOW

    srv = ServerProcess(tmp_path, SHORT_FLOW).start()
    try:
        yield srv
    finally:
        rc = srv.stop()
        assert rc == 0, srv.log()[-3000:]
        assert "Traceback" not in srv.log(), srv.log()[-5000:]

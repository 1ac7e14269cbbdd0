"""The suite's own hygiene: a test that leaves a server thread running fails at its teardown, naming the thread;
servers that a test stops, or that a shared (module- or session-scoped) fixture owns, pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = '''
import tests.conftest as shared
from tests.conftest import _threads_end_with_their_test, pytest_configure  # noqa: F401

shared.THREADS_END_WITHIN_SECONDS = 1.0  # nothing here is slow to stop: do not wait the suite's 30 s
'''

TESTS = '''
import pytest
from starlette.applications import Starlette

from viltbridge.providers.serving import BackgroundServer


@pytest.fixture(scope="module")
def shared_server():
    server = BackgroundServer(Starlette())
    server.start()
    yield server
    server.stop()


def test_uses_the_shared_server(shared_server):
    assert shared_server.url


def test_uses_the_shared_server_again(shared_server):
    assert shared_server.url


def test_stops_its_server():
    server = BackgroundServer(Starlette())
    server.start()
    server.stop()


def test_forgets_its_server():
    BackgroundServer(Starlette()).start()
'''


def test_a_test_that_leaves_a_server_running_fails_at_teardown(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_servers.py").write_text(TESTS)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                          str(tmp_path / "test_servers.py")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "4 passed, 1 error" in run.stdout, run.stdout[-4000:]
    assert "ERROR at teardown of test_forgets_its_server" in run.stdout
    assert "still running: uvicorn-" in run.stdout

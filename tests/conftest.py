"""Fixtures shared by every suite: a real trialplane server on a free port,
clients of it, and a clock tests can move forward."""

from __future__ import annotations

import pytest
from support import Client, FakeClock, ServerProcess, postgres, start_server


def pytest_collection_modifyitems(config, items):
    """With TRIALPLANE_TEST_BACKEND=postgres, tests of SQLite's own files
    (marked sqlite_only) are left to the SQLite run."""
    if postgres.BACKEND == "postgres":
        kept = [item for item in items if item.get_closest_marker("sqlite_only") is None]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def drop_postgres_schemas():
    yield
    for schema in sorted(postgres.made):
        postgres.drop_schema(schema)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "trialplane.db"


@pytest.fixture
def server(db_path):
    srv = start_server(db_path)
    yield srv
    srv.stop()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def clocked_server(db_path, clock):
    srv = start_server(db_path, clock=clock)
    yield srv
    srv.stop()


@pytest.fixture
def clocked_client(clocked_server):
    c = Client.connect(clocked_server.address)
    yield c
    c.channel.close()


@pytest.fixture
def client(server):
    c = Client.connect(server.address)
    yield c
    c.channel.close()


@pytest.fixture
def process(db_path):
    p = ServerProcess(db_path)
    yield p
    if p.proc.poll() is None:
        p.proc.kill()
        p.proc.wait()

"""open_storage: which storage a database address names."""

import pytest
from trialplane.server.storage.factory import UnknownStorage, open_storage, sqlite_path
from trialplane.server.storage.journaled import JournaledStorage
from trialplane.server.storage.postgres.storage import PostgresStorage
from trialplane.server.storage.sqlite.storage import SqliteStorage


@pytest.mark.parametrize("url, path", [
    ("./trialplane.db", "./trialplane.db"),
    ("/var/lib/trialplane/db", "/var/lib/trialplane/db"),
    ("sqlite:///relative.db", "relative.db"),
    ("sqlite:////absolute/x.db", "/absolute/x.db"),
    ("sqlite://host/x.db", None),
    ("sqlite://", None),
    ("postgresql://user@127.0.0.1/test", None),
])
def test_sqlite_addresses(url, path):
    assert sqlite_path(url) == path


def test_open_storage_picks_sqlite_and_refuses_what_it_does_not_serve(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/a.db")
    # The embedded default: SQLite behind the write-behind report journal, beside the file.
    assert isinstance(storage, JournaledStorage) and storage.journal_path == f"{tmp_path}/a.db-reports"
    assert isinstance(storage.inner, SqliteStorage) and storage.inner.path == f"{tmp_path}/a.db"
    bare = open_storage(f"{tmp_path}/b.db", journal=False)
    assert isinstance(bare, SqliteStorage) and bare.path == f"{tmp_path}/b.db"
    # PostgreSQL never gets the journal: replicas keep nothing on their own disks.
    shared = open_storage("postgresql://user@127.0.0.1:5432/test")
    assert isinstance(shared, PostgresStorage) and shared.dsn == "postgresql://user@127.0.0.1:5432/test"
    with pytest.raises(UnknownStorage, match="unknown database 'redis'"):
        open_storage("redis://127.0.0.1:6379/0")
    with pytest.raises(UnknownStorage, match="names no file: write sqlite:///relative.db"):
        open_storage("sqlite://db-host/x.db")
    assert list(tmp_path.iterdir()) == []

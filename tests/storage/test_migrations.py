"""Numbered migrations: applied once, with their bookkeeping row, in order."""

import sqlite3

import sqlite_utils
from trialplane.server.storage.sqlite.engine import connect
from trialplane.server.storage.sqlite.migrations import MIGRATIONS, migrate


def test_migrations_apply_once_and_record_themselves(tmp_path):
    path = tmp_path / "m.db"
    conn = connect(str(path))
    assert migrate(conn) == [v for v, _, _ in MIGRATIONS]
    assert migrate(conn) == []
    conn.close()
    db = sqlite_utils.Database(str(path))
    assert [r["version"] for r in db["schema_migrations"].rows_where(order_by="version")] == [v for v, _, _ in MIGRATIONS]
    tables = set(db.table_names())
    assert {"studies", "trials", "trial_events", "workers", "profiler_chunks", "metric_chunks", "checkpoints", "task_logs"} <= tables
    assert "searcher_metric_value" in db["trials"].columns_dict
    assert db["trials"].foreign_keys == [] or all(fk.other_table == "studies" for fk in db["trials"].foreign_keys)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_migration_leaves_no_trace(tmp_path, monkeypatch):
    from trialplane.server.storage.sqlite import migrations

    path = tmp_path / "f.db"
    conn = connect(str(path))
    broken = [*MIGRATIONS, (99, "broken", "CREATE TABLE half_done (x INTEGER); CREATE TABLE oops (")]
    monkeypatch.setattr(migrations, "MIGRATIONS", broken)
    try:
        migrations.migrate(conn)
    except sqlite3.Error:
        pass
    else:
        raise AssertionError("the broken migration applied")
    versions = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    assert 99 not in versions and max(versions) == MIGRATIONS[-1][0]
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone() is None

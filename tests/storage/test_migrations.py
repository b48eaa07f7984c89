"""Numbered migrations: applied once, with their bookkeeping row, in order."""

import contextlib
import sqlite3

import sqlite_utils
from trialplane.server.domain.models import Study, Trial
from trialplane.server.storage.core import records
from trialplane.server.storage.sqlite.engine import connect
from trialplane.server.storage.sqlite.migrations import MIGRATIONS, migrate


@contextlib.contextmanager
def database_before(path: str, version: int, monkeypatch):
    """A connection to a new database at the versions below version, to
    hold rows as they were then; committed and closed on exit, with every
    migration known again."""
    from trialplane.server.storage.sqlite import migrations

    monkeypatch.setattr(migrations, "MIGRATIONS", [m for m in MIGRATIONS if m[0] < version])
    conn = connect(path)
    try:
        migrations.migrate(conn)
        yield conn
        conn.commit()
    finally:
        conn.close()
        monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)


def insert_old_study(conn, study: Study) -> None:
    """A study row as versions before 15 kept it: its suggestion count in the body."""
    row = records.study_row(study)
    row["body"] = row["body"][:-1] + f', "suggestion_count": {row.pop("suggestion_count")}}}'
    row.update(create_time=1, update_time=1, version=1)
    conn.execute(f"INSERT INTO studies ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", tuple(row.values()))


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


def test_migration_13_keeps_rows_and_references_and_ids_are_not_given_out_again(tmp_path, monkeypatch):
    import asyncio

    from trialplane.server.storage.factory import open_storage
    from trialplane.server.storage.sqlite import migrations

    path = str(tmp_path / "old.db")
    with database_before(path, 13, monkeypatch) as old:
        # The rows today's code would write, as the schema of version 12 holds them.
        insert_old_study(old, Study(name="s", trial_count=2))
        for name in ("t1", "t2", "t3"):
            row = records.trial_row(Trial(name=name, study_id=1, create_time=1, update_time=1, version=1))
            old.execute(f"INSERT INTO trials ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", tuple(row.values()))
        old.execute("INSERT INTO trial_events (trial_id, sequence, time, from_state, to_state, trial_run_id, message,"
                    " details) VALUES (2, 1, 1, 'QUEUED', 'QUEUED', 1, 'mark', '{}')")
        old.execute("DELETE FROM trials WHERE id = 3")
        # A trial-run token outlives its deleted trial: its id must not be given out again.
        old.execute("INSERT INTO tokens (name, kind, secret_hash, scopes, trial_id, trial_run_id, create_time)"
                    " VALUES ('run', 'TRIAL_RUN', ?, '', 3, 1, 1)", (b"x" * 32,))
    conn = connect(path)
    assert migrations.migrate(conn) == [v for v, _, _ in MIGRATIONS if v >= 13]
    schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
    assert "AUTOINCREMENT" in schema and "trials__new" not in schema
    assert [r[0] for r in conn.execute("SELECT name FROM trials ORDER BY id")] == ["t1", "t2"]
    # Indexes came along, and the references still cascade.
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'trials_study_state'").fetchone()
    assert conn.execute("SELECT count(*) FROM trial_events WHERE trial_id = 2").fetchone()[0] == 1
    conn.execute("DELETE FROM trials WHERE id = 2")
    assert conn.execute("SELECT count(*) FROM trial_events WHERE trial_id = 2").fetchone()[0] == 0
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()

    async def after():
        s = open_storage(path, journal=False)
        await s.open()
        made = await s.create_trial(Trial(name="new", study_id=1), None, lambda _: None)
        await s.close()
        return made.id

    # 3 was deleted before the migration, and a token names it; 2 since: the new one is 4.
    assert asyncio.run(after()) == 4


def test_migration_15_moves_the_suggestion_count_out_of_the_body(tmp_path, monkeypatch):
    import asyncio

    from trialplane.server.storage.factory import open_storage
    from trialplane.server.storage.sqlite import migrations

    path = str(tmp_path / "v14.db")
    with database_before(path, 15, monkeypatch) as old:
        insert_old_study(old, Study(name="counted", suggestion_count=7))
    conn = connect(path)
    assert migrations.migrate(conn) == [15]
    assert tuple(conn.execute("SELECT suggestion_count, json_extract(body, '$.suggestion_count') FROM studies").fetchone()) == (7, None)
    conn.close()

    async def read():
        s = open_storage(path, journal=False)
        await s.open()
        try:
            return (await s.get_study(1)).suggestion_count
        finally:
            await s.close()

    assert asyncio.run(read()) == 7

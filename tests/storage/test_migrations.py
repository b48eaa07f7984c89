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


def test_migration_13_keeps_rows_and_references_and_ids_are_not_given_out_again(tmp_path, monkeypatch):
    import asyncio

    from trialplane.server.domain.models import Study, Trial, TrialState
    from trialplane.server.domain.trial_lifecycle import Change, EventDraft
    from trialplane.server.storage.factory import open_storage
    from trialplane.server.storage.sqlite import migrations

    path = str(tmp_path / "old.db")

    async def before():
        s = open_storage(path, journal=False)
        await s.open()
        study = await s.create_study(Study(name="s"))
        for name in ("t1", "t2", "t3"):
            await s.create_trial(Trial(name=name, study_id=study.id), None, lambda _: None)
        await s.change_trial(2, lambda t, now: Change(t, [EventDraft(TrialState.QUEUED, TrialState.QUEUED, 1, "mark")]))
        await s.delete_trial(3, lambda _: None)
        await s.close()

    monkeypatch.setattr(migrations, "MIGRATIONS", [m for m in MIGRATIONS if m[0] < 13])
    asyncio.run(before())
    # A trial-run token outlives its deleted trial: its id must not be given out again.
    with sqlite3.connect(path) as old:
        old.execute("INSERT INTO tokens (name, kind, secret_hash, scopes, trial_id, trial_run_id, create_time)"
                    " VALUES ('run', 'TRIAL_RUN', ?, '', 3, 1, 1)", (b"x" * 32,))
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
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

"""Numbered schema migrations, applied at start-up.

Each migration runs in one transaction together with its row in
schema_migrations, so a crash never leaves a half-applied version.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable

MIGRATIONS: list[tuple[int, str, str | Callable[[sqlite3.Connection], object]]] = [
    (
        1,
        "studies, trials, trial events and workers",
        """
        CREATE TABLE studies (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            name_folded TEXT NOT NULL,
            owner TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            trial_count INTEGER NOT NULL DEFAULT 0,
            create_time INTEGER NOT NULL,
            update_time INTEGER NOT NULL,
            version INTEGER NOT NULL,
            request_id TEXT UNIQUE,
            body TEXT NOT NULL
        );
        CREATE INDEX studies_create_time ON studies (create_time, id);
        CREATE INDEX studies_update_time ON studies (update_time, id);
        CREATE INDEX studies_name_folded ON studies (name_folded, id);
        CREATE TABLE study_tags (
            study_id INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (tag, study_id)
        ) WITHOUT ROWID;
        CREATE INDEX study_tags_study ON study_tags (study_id);

        CREATE TABLE trials (
            id INTEGER PRIMARY KEY,
            study_id INTEGER REFERENCES studies (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            name_folded TEXT NOT NULL,
            state TEXT NOT NULL,
            restarts INTEGER NOT NULL,
            trial_run_id INTEGER NOT NULL,
            steps_completed INTEGER NOT NULL,
            create_time INTEGER NOT NULL,
            update_time INTEGER NOT NULL,
            start_time INTEGER,
            end_time INTEGER,
            stop_deadline INTEGER,
            runtime_deadline INTEGER,
            version INTEGER NOT NULL,
            request_id TEXT UNIQUE,
            body TEXT NOT NULL
        );
        CREATE INDEX trials_study ON trials (study_id, id);
        CREATE INDEX trials_state ON trials (state, id);
        CREATE INDEX trials_create_time ON trials (create_time, id);
        CREATE INDEX trials_update_time ON trials (update_time, id);
        CREATE INDEX trials_name ON trials (name, id);
        CREATE INDEX trials_stop_deadline ON trials (stop_deadline) WHERE stop_deadline IS NOT NULL;
        CREATE INDEX trials_runtime_deadline ON trials (runtime_deadline) WHERE runtime_deadline IS NOT NULL;
        CREATE TABLE trial_tags (
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (tag, trial_id)
        ) WITHOUT ROWID;
        CREATE INDEX trial_tags_trial ON trial_tags (trial_id);

        CREATE TABLE trial_events (
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            sequence INTEGER NOT NULL,
            time INTEGER NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            trial_run_id INTEGER NOT NULL,
            message TEXT NOT NULL,
            details TEXT NOT NULL,
            request_id TEXT,
            PRIMARY KEY (trial_id, sequence)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX trial_events_request ON trial_events (trial_id, request_id)
            WHERE request_id IS NOT NULL;

        CREATE TABLE workers (
            id INTEGER PRIMARY KEY,
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            trial_run_id INTEGER NOT NULL,
            type TEXT NOT NULL,
            state TEXT NOT NULL,
            rank INTEGER NOT NULL,
            slots INTEGER NOT NULL,
            address TEXT NOT NULL,
            tags TEXT NOT NULL,
            last_heartbeat INTEGER,
            create_time INTEGER NOT NULL,
            update_time INTEGER NOT NULL,
            request_id TEXT UNIQUE
        );
        CREATE INDEX workers_rank ON workers (trial_id, trial_run_id, rank);
        CREATE INDEX workers_heartbeat ON workers (trial_id, trial_run_id, last_heartbeat);
        """,
    ),
    (
        2,
        "profiler series and their columnar chunks",
        """
        CREATE TABLE profiler_series (
            id INTEGER PRIMARY KEY,
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            gpu_uuid TEXT NOT NULL,
            metric_type TEXT NOT NULL,
            sample_count INTEGER NOT NULL DEFAULT 0,
            chunk_count INTEGER NOT NULL DEFAULT 0,
            first_ts INTEGER,
            last_ts INTEGER,
            first_batch INTEGER,
            last_batch INTEGER,
            UNIQUE (trial_id, name, agent_id, gpu_uuid, metric_type)
        );
        CREATE TABLE profiler_chunks (
            id INTEGER PRIMARY KEY,
            series_id INTEGER NOT NULL REFERENCES profiler_series (id) ON DELETE CASCADE,
            first_ts INTEGER NOT NULL,
            last_ts INTEGER NOT NULL,
            first_batch INTEGER NOT NULL,
            last_batch INTEGER NOT NULL,
            count INTEGER NOT NULL,
            vmin REAL,
            vmax REAL,
            vlast REAL,
            data BLOB NOT NULL
        );
        CREATE INDEX profiler_chunks_series_time ON profiler_chunks (series_id, first_ts, id);
        CREATE INDEX profiler_chunks_series_end ON profiler_chunks (series_id, last_ts);
        CREATE TABLE profiler_streams (
            stream_id TEXT PRIMARY KEY,
            last_sequence INTEGER NOT NULL,
            update_time INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    (
        3,
        "metrics, checkpoints, logs and debug events",
        """
        ALTER TABLE trials ADD COLUMN searcher_metric_value REAL;
        ALTER TABLE trials ADD COLUMN best_validation TEXT;
        ALTER TABLE trials ADD COLUMN latest_validation TEXT;
        ALTER TABLE trials ADD COLUMN checkpoint_size INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE trials ADD COLUMN checkpoint_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE trials ADD COLUMN metrics_run INTEGER NOT NULL DEFAULT 1;
        CREATE INDEX trials_searcher_metric ON trials (searcher_metric_value, id)
            WHERE searcher_metric_value IS NOT NULL;

        CREATE TABLE metric_reports (
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            group_name TEXT NOT NULL,
            trial_run_id INTEGER NOT NULL,
            steps INTEGER NOT NULL,
            report_time INTEGER NOT NULL,
            archived INTEGER NOT NULL DEFAULT 0,
            body TEXT NOT NULL,
            request_id TEXT,
            PRIMARY KEY (trial_id, group_name, trial_run_id, steps)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX metric_reports_request ON metric_reports (request_id) WHERE request_id IS NOT NULL;

        CREATE TABLE metric_series (
            id INTEGER PRIMARY KEY,
            trial_id INTEGER REFERENCES trials (id) ON DELETE CASCADE,
            trial_key TEXT,
            group_name TEXT NOT NULL,
            name TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 0,
            finite_count INTEGER NOT NULL DEFAULT 0,
            total REAL DEFAULT 0,
            vmin REAL,
            vmax REAL,
            last REAL,
            last_step INTEGER NOT NULL DEFAULT -1,
            last_time INTEGER NOT NULL DEFAULT 0,
            recent BLOB NOT NULL DEFAULT x'',
            next_ordinal INTEGER NOT NULL DEFAULT 0,
            small_chunks INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX metric_series_trial ON metric_series (trial_id, group_name, name) WHERE trial_id IS NOT NULL;
        CREATE UNIQUE INDEX metric_series_key ON metric_series (trial_key, group_name, name) WHERE trial_key IS NOT NULL;
        CREATE INDEX metric_series_rank ON metric_series (group_name, name, last, trial_id);

        CREATE TABLE metric_chunks (
            id INTEGER PRIMARY KEY,
            series_id INTEGER NOT NULL REFERENCES metric_series (id) ON DELETE CASCADE,
            min_step INTEGER NOT NULL,
            max_step INTEGER NOT NULL,
            count INTEGER NOT NULL,
            live_count INTEGER NOT NULL,
            first_step INTEGER NOT NULL,
            last_step INTEGER NOT NULL,
            first_time INTEGER NOT NULL,
            last_time INTEGER NOT NULL,
            first REAL,
            last REAL,
            vmin REAL,
            vmax REAL,
            total REAL,
            finite_count INTEGER NOT NULL,
            data BLOB NOT NULL,
            raws TEXT
        );
        CREATE INDEX metric_chunks_series ON metric_chunks (series_id, min_step);

        CREATE TABLE debug_events (
            id INTEGER PRIMARY KEY,
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            metric TEXT NOT NULL,
            variant TEXT NOT NULL,
            iteration INTEGER NOT NULL,
            time INTEGER NOT NULL,
            payload TEXT NOT NULL
        );
        CREATE INDEX debug_events_trial ON debug_events (trial_id, id);

        CREATE TABLE checkpoints (
            uuid TEXT PRIMARY KEY,
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            trial_run_id INTEGER NOT NULL,
            state TEXT NOT NULL,
            steps_completed INTEGER NOT NULL,
            storage_uri TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            create_time INTEGER NOT NULL,
            update_time INTEGER NOT NULL,
            end_time INTEGER,
            objective REAL,
            body TEXT NOT NULL
        );
        CREATE INDEX checkpoints_trial ON checkpoints (trial_id, create_time);
        CREATE INDEX checkpoints_create_time ON checkpoints (create_time, uuid);

        CREATE TABLE task_logs (
            id INTEGER PRIMARY KEY,
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            time INTEGER NOT NULL,
            level TEXT NOT NULL,
            worker TEXT NOT NULL,
            stream TEXT NOT NULL,
            rank INTEGER NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX task_logs_trial ON task_logs (trial_id, id);
        """,
    ),
    (
        4,
        "stream batches stored by sequence",
        """
        CREATE TABLE profiler_stream_batches (
            stream_id TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            PRIMARY KEY (stream_id, sequence)
        ) WITHOUT ROWID;
        """,
    ),
    (
        5,
        "request ids scoped to method and parent, report digests",
        """
        CREATE TABLE request_ids (
            scope TEXT NOT NULL,
            request_id TEXT NOT NULL,
            digest BLOB,
            result TEXT NOT NULL,
            create_time INTEGER NOT NULL,
            PRIMARY KEY (scope, request_id)
        ) WITHOUT ROWID;
        INSERT INTO request_ids (scope, request_id, digest, result, create_time)
            SELECT 'CreateStudy', request_id, NULL, id, create_time FROM studies WHERE request_id IS NOT NULL;
        INSERT INTO request_ids (scope, request_id, digest, result, create_time)
            SELECT CASE WHEN study_id IS NULL THEN 'CreateTrial' ELSE 'CreateTrial/study ' || study_id END,
                   request_id, NULL, id, create_time
            FROM trials WHERE request_id IS NOT NULL;
        INSERT INTO request_ids (scope, request_id, digest, result, create_time)
            SELECT 'RegisterWorker/trial ' || trial_id, request_id, NULL, id, create_time
            FROM workers WHERE request_id IS NOT NULL;
        DROP INDEX metric_reports_request;
        CREATE UNIQUE INDEX metric_reports_request ON metric_reports (trial_id, request_id) WHERE request_id IS NOT NULL;
        ALTER TABLE metric_reports ADD COLUMN digest BLOB;
        """,
    ),
    (
        6,
        "task logs found by time for retention",
        """
        CREATE INDEX task_logs_trial_time ON task_logs (trial_id, time);
        """,
    ),
    (
        7,
        "the message of a worker's last state report",
        """
        ALTER TABLE workers ADD COLUMN state_message TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        8,
        "columns for what queries read out of JSON bodies (a trial's log retention, a checkpoint's validation)"
        " and an id that orders checkpoints",
        """
        ALTER TABLE trials ADD COLUMN log_retention_days INTEGER NOT NULL DEFAULT 0;
        UPDATE trials SET log_retention_days = coalesce(json_extract(body, '$.log_retention_days'), 0);
        CREATE TABLE checkpoints_keyed (
            id INTEGER PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
            trial_run_id INTEGER NOT NULL,
            state TEXT NOT NULL,
            steps_completed INTEGER NOT NULL,
            storage_uri TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            create_time INTEGER NOT NULL,
            update_time INTEGER NOT NULL,
            end_time INTEGER,
            objective REAL,
            validation_metrics TEXT,
            body TEXT NOT NULL
        );
        INSERT INTO checkpoints_keyed
            SELECT rowid, uuid, trial_id, trial_run_id, state, steps_completed, storage_uri, size_bytes, create_time,
                   update_time, end_time, objective, json_extract(body, '$.validation_metrics'),
                   json_remove(body, '$.validation_metrics')
            FROM checkpoints ORDER BY rowid;
        DROP TABLE checkpoints;
        ALTER TABLE checkpoints_keyed RENAME TO checkpoints;
        CREATE INDEX checkpoints_trial ON checkpoints (trial_id, create_time);
        CREATE INDEX checkpoints_create_time ON checkpoints (create_time, id);
        CREATE INDEX checkpoints_trial_steps ON checkpoints (trial_id, steps_completed);
        """,
    ),
    (
        9,
        "trials remember the SuggestTrials client they were made for",
        """
        ALTER TABLE trials ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
        CREATE INDEX trials_study_client ON trials (study_id, client_id);
        CREATE INDEX trials_study_update_time ON trials (study_id, update_time, id);
        """,
    ),
    (
        10,
        "Katib trial names a collector stopped early",
        """
        CREATE TABLE katib_early_stopped (
            trial_name TEXT PRIMARY KEY,
            stop_time INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    (
        11,
        "an index that finds a study's unfinished trials without reading its others",
        """
        CREATE INDEX trials_study_state ON trials (study_id, state, id);
        """,
    ),
    (
        12,
        "bearer tokens, kept by the hash of their secret",
        """
        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            secret_hash BLOB NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            study_ids TEXT,
            trial_id INTEGER NOT NULL DEFAULT 0,
            trial_run_id INTEGER NOT NULL DEFAULT 0,
            create_time INTEGER NOT NULL,
            expire_time INTEGER NOT NULL DEFAULT 0,
            revoke_time INTEGER NOT NULL DEFAULT 0,
            created_by TEXT NOT NULL DEFAULT ''
        );
        """,
    ),
    (
        13,
        "ids of studies, trials, workers and tokens are never given out again",
        # A rowid table hands out max(id) + 1, so deleting the newest trial
        # gave its id to the next one: a cache, a token limited to a study or
        # a trial-run token naming the old one would reach the new one.
        # AUTOINCREMENT is only had by making the table again.
        lambda conn: _autoincrement(conn, "studies", "trials", "workers", "tokens", floors=_NAMED_BY_TOKENS),
    ),
    (
        14,
        "trial-run tokens remember the token they were made with",
        """
        ALTER TABLE tokens ADD COLUMN parent_id INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX tokens_parent ON tokens (parent_id) WHERE parent_id != 0;
        """,
    ),
    (
        15,
        "a study's suggestion count in a column of its own",
        """
        ALTER TABLE studies ADD COLUMN suggestion_count INTEGER NOT NULL DEFAULT 0;
        UPDATE studies SET suggestion_count = coalesce(json_extract(body, '$.suggestion_count'), 0),
            body = json_remove(body, '$.suggestion_count');
        """,
    ),
]


# Ids deleted rows had that tokens still name: the next ids start past them.
_NAMED_BY_TOKENS: dict[str, str] = {
    "trials": "SELECT max(trial_id) FROM tokens",
    "studies": "SELECT max(value) FROM tokens, json_each(tokens.study_ids) WHERE tokens.study_ids IS NOT NULL",
}


def _autoincrement(conn: sqlite3.Connection, *tables: str, floors: dict[str, str]) -> None:
    """Makes each table again with AUTOINCREMENT on its id, with its rows,
    indexes and triggers (SQLite's procedure for a change ALTER TABLE cannot
    make). Runs with foreign keys off: the tables that reference it keep
    their rows. floors: per table, a query of an id the next ones must pass."""
    for table in tables:
        _remake_with_autoincrement(conn, table)
        floor = conn.execute(floors[table]).fetchone()[0] if table in floors else None
        if floor:
            conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (int(floor), table))
            conn.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS"
                         " (SELECT 1 FROM sqlite_sequence WHERE name = ?)", (table, int(floor), table))


def _remake_with_autoincrement(conn: sqlite3.Connection, table: str) -> None:
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    made, found = re.subn(r"\bid INTEGER PRIMARY KEY\b(?! AUTOINCREMENT)", "id INTEGER PRIMARY KEY AUTOINCREMENT", sql,
                          count=1)
    if not found:
        return
    made = re.sub(rf"^CREATE TABLE \"?{table}\"?", f"CREATE TABLE {table}__new", made, count=1)
    extras = [row[0] for row in conn.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL",
        (table,))]
    columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
    conn.execute(made)
    conn.execute(f"INSERT INTO {table}__new ({columns}) SELECT {columns} FROM {table}")
    conn.execute(f"DROP TABLE {table}")
    conn.execute(f"ALTER TABLE {table}__new RENAME TO {table}")
    for statement in extras:
        conn.execute(statement)


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Applies every pending migration; returns the versions applied now.

    A migration is SQL, or a function of the connection for what SQL alone
    cannot say. Foreign keys are off while migrations run (a table made
    again would otherwise take its referencing rows with it) and checked
    before each commit."""
    pending = [m for m in MIGRATIONS if m[0] not in applied_versions(conn)]
    if not pending:
        return []
    newly = []
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for version, name, sql in pending:
            if _apply(conn, version, name, sql):
                newly.append(version)
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return newly


def _apply(conn: sqlite3.Connection, version: int, name: str, sql) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    # Another process may have applied it while this one waited for the lock.
    if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
        conn.execute("ROLLBACK")
        return False
    try:
        if callable(sql):
            sql(conn)
        else:
            for statement in _statements(sql):
                conn.execute(statement)
        broken = conn.execute("PRAGMA foreign_key_check").fetchone()
        if broken is not None:
            raise sqlite3.IntegrityError(f"migration {version} broke a foreign key: {tuple(broken)}")
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (version, name, int(time.time())),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return True

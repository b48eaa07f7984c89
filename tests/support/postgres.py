"""PostgreSQL for tests: given by TRIALPLANE_TEST_POSTGRES_DSN, one schema per test."""

from __future__ import annotations

import hashlib
import os
from pathlib import PurePath
from urllib.parse import quote

DSN = os.environ.get("TRIALPLANE_TEST_POSTGRES_DSN", "")
# "postgres": the API and end-to-end suites run their servers on PostgreSQL.
BACKEND = os.environ.get("TRIALPLANE_TEST_BACKEND", "sqlite")
# Schemas made by this test process, dropped when it ends.
made: set[str] = set()


def schema_for(key: str) -> str:
    """The schema a test uses; the same key (its tmp_path) names the same one."""
    return "test_" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def url_with_schema(schema: str) -> str:
    """DSN, made to work in schema (created if need be)."""
    import psycopg

    if schema not in made:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        made.add(schema)
    separator = "&" if "?" in DSN else "?"
    return f"{DSN}{separator}options={quote(f'-csearch_path={schema}')}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    made.discard(schema)


def database_url(db_path) -> str:
    """What a test server's --db is: the SQLite file db_path, or with
    TRIALPLANE_TEST_BACKEND=postgres a schema of its own named after it. A
    string is an address a test chose itself and is kept as it is."""
    if BACKEND != "postgres" or not isinstance(db_path, PurePath):
        return str(db_path)
    if not DSN:
        raise RuntimeError("TRIALPLANE_TEST_BACKEND=postgres needs TRIALPLANE_TEST_POSTGRES_DSN")
    return url_with_schema(schema_for(str(db_path)))

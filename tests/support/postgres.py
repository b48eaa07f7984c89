"""PostgreSQL for tests: given by TRIALPLANE_TEST_POSTGRES_DSN, one schema per test."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import quote

DSN = os.environ.get("TRIALPLANE_TEST_POSTGRES_DSN", "")


def schema_for(key: str) -> str:
    """The schema a test uses; the same key (its tmp_path) names the same one."""
    return "test_" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def url_with_schema(schema: str) -> str:
    """DSN, made to work in schema (created if need be)."""
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    separator = "&" if "?" in DSN else "?"
    return f"{DSN}{separator}options={quote(f'-csearch_path={schema}')}"


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

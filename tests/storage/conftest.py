"""Fixtures of the storage suites that need PostgreSQL itself."""

from __future__ import annotations

import pytest
from support import postgres


@pytest.fixture
def schema(tmp_path):
    """A PostgreSQL schema of the test's own (created), dropped after it."""
    name = postgres.schema_for(str(tmp_path))
    postgres.url_with_schema(name)
    yield name
    postgres.drop_schema(name)

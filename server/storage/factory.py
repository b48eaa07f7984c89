"""open_storage(url): the storage a server runs on, chosen by its address.

A plain path, `sqlite:///relative.db` or `sqlite:////absolute.db` is the
embedded SQLite default. `postgresql://user@host:5432/db` (a libpq URL; add
`?options=-csearch_path%3Dname` for another schema) is PostgreSQL, which
several server replicas can share. Any other scheme is refused with the
schemes this build serves, before anything is created on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from ..domain.clock import now_us
from .interface import Storage

SCHEMES = ("sqlite", "postgresql")
POSTGRES_SCHEMES = ("postgresql", "postgres")


class UnknownStorage(ValueError):
    """The database address names no storage this server has."""


def sqlite_path(url: str) -> str | None:
    """The file a SQLite address names, or None when it is not one."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        return None
    # As SQLAlchemy spells it: sqlite:///relative.db, sqlite:////absolute.db.
    return parts.path[1:] or None


def open_storage(url: str, readers: int = 4, clock: Callable[[], int] | None = None, journal: bool = True) -> Storage:
    """The (not yet opened) storage for url. clock: microseconds since the
    epoch, for tests. journal: single metric reports are acknowledged from
    a write-behind journal beside a SQLite file."""
    path = sqlite_path(url)
    if path:
        from .journaled import JournaledStorage
        from .sqlite.storage import SqliteStorage

        storage = SqliteStorage(path, clock=clock or now_us, readers=readers)
        return JournaledStorage(storage, f"{storage.path}-reports") if journal else storage
    scheme = urlsplit(url).scheme or url
    if scheme in POSTGRES_SCHEMES:
        from .postgres.storage import PostgresStorage

        # No journal: an acknowledged write is committed in PostgreSQL, and
        # replicas keep nothing on their own disks.
        return PostgresStorage(url, clock=clock or now_us, pool_size=readers * 2)
    if scheme == "sqlite":
        raise UnknownStorage(f"{url!r} names no file: write sqlite:///relative.db or sqlite:////absolute/path.db")
    raise UnknownStorage(f"unknown database {scheme!r}: use a file path or one of {', '.join(s + '://' for s in SCHEMES)}")

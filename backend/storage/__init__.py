"""Persistence of bars behind one small interface: ``open_store(target)`` gives the SQLite store
(a file path: ``sqlite``) or the PostgreSQL one (``postgresql://...``: ``postgres``); both offer
``upsert``, ``load``, ``resume_points``, ``symbols``, ``count``, ``claim``, ``check_claims``,
``collector_health`` and ``close``, and nothing above them knows which. ``persistence`` writes
the store's changed bars into either."""

from __future__ import annotations

from pathlib import Path

from backend.storage.base import DEFAULT_DB, SCHEMA_VERSION, ClaimLost, StorageError, bar_rows
from backend.storage.sqlite import BarStore

__all__ = [
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "BarStore",
    "ClaimLost",
    "StorageError",
    "bar_rows",
    "open_store",
]


def open_store(target: str | Path):
    """The store for ``target``: a PostgreSQL URL (libpq syntax) or a SQLite file path."""
    # psycopg is imported only for a PostgreSQL URL
    from backend.storage.postgres import PgBarStore, is_postgres_url

    if is_postgres_url(str(target)):
        return PgBarStore(str(target))
    return BarStore(target)

"""The workspace's store opened on the engine its settings name: SQLite, or PostgreSQL by url."""

from __future__ import annotations

from mailer.config import Settings
from mailer.db.database import Database
from mailer.db.sqlite import SqliteDatabase


def open_database(settings: Settings, *, create: bool = True) -> Database:
    """``[database] url`` names a PostgreSQL database; without one, the SQLite file at
    ``[database] path``. ``create=False`` (commands that only read) creates nothing."""
    timeout = settings.database.busy_timeout
    if settings.database.url:
        from mailer.db.postgres import PostgresDatabase  # psycopg: only where it is used

        return PostgresDatabase(settings.database.url, timeout, create=create)
    return SqliteDatabase(settings.database_path, timeout, create=create)

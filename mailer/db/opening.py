"""The workspace's store opened on the engine its settings name: SQLite, or PostgreSQL by url."""

from __future__ import annotations

from types import ModuleType

from mailer.config import Settings
from mailer.db.database import Database
from mailer.db.sqlite import SqliteDatabase
from mailer.errors import InputError

EXTRA = "PostgreSQL needs psycopg: pip install 'mailer[postgresql]'"


def postgres() -> ModuleType:
    """The PostgreSQL engine's module, imported only where it is used: psycopg is an extra."""
    try:
        from mailer.db import postgres as engine
    except ImportError:
        raise InputError(EXTRA) from None
    return engine


def open_database(settings: Settings, *, create: bool = True) -> Database:
    """``[database] url`` names a PostgreSQL database; without one, the SQLite file at
    ``[database] path``. ``create=False`` (commands that only read) creates nothing."""
    timeout = settings.database.busy_timeout
    if settings.database.url:
        found: Database = postgres().PostgresDatabase(settings.database.url, timeout, create=create)
        return found
    return SqliteDatabase(settings.database_path, timeout, create=create)

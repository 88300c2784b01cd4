"""A workspace copied into a new folder while it runs: the database by SQLite's backup API."""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from mailer.config.loading import CONFIG_NAME, DEFAULT_DATABASE
from mailer.config.private import private_file, private_folder, write_private
from mailer.config.settings import DkimSettings, Settings
from mailer.db.database import NoDatabaseError
from mailer.db.sqlite import SqliteDatabase
from mailer.errors import DiskFullError, FileInputError, MailerError, StoreError
from mailer.tokens import SECRET_NAME, load_secret


@dataclass(frozen=True, slots=True)
class Written:
    path: Path  # in the backup folder
    what: str  # "database", "settings", "secret", "dkim key", "template", "media"


MEDIA = "media"  # the images reports carry, as `mailer serve` publishes them


def backup(settings: Settings, destination: Path) -> list[Written]:
    """Copy the workspace into ``destination``, a new (or empty) folder made 0700, each file
    0600, laid out as a workspace: the database as one consistent snapshot, taken while other
    processes read and write, mailer.toml, .mailer-secret, the DKIM key, templates/ and media/."""
    workspace = settings.workspace
    if not settings.database.url and not settings.database_path.is_file():
        raise NoDatabaseError(settings.database_path)  # no workspace: nothing is made
    _new_folder(destination)
    # A PostgreSQL store is the server's to back up (pg_dump); the rest is copied all the same.
    written = [] if settings.database.url else [_database(settings, destination)]
    try:
        secret = load_secret(workspace)  # without it no sent unsubscribe link works again
        config = workspace / CONFIG_NAME
        if config.is_file():
            written.append(_copy(config, destination / CONFIG_NAME, "settings"))
        target = destination / SECRET_NAME
        _write(target, (secret.hex() + "\n").encode("ascii"))
        written.append(Written(target, "secret"))
        key = workspace / settings.dkim.key_file
        if key.is_file():
            inside = _inside(workspace, key, Path(DkimSettings().key_file))
            written.append(_copy(key, destination / inside, "dkim key"))
        folders = ((settings.templates_dir, "templates", "template"),
                   (workspace / MEDIA, MEDIA, "media"))  # fmt: skip
        for folder, inside_name, what in folders:
            for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
                if path.is_file():
                    target = destination / inside_name / path.relative_to(folder)
                    written.append(_copy(path, target, what))
    except OSError as error:
        raise _os_error(error, getattr(error, "filename", None) or destination) from None
    return written


def _new_folder(destination: Path) -> None:
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise FileInputError(destination, "exists and is not an empty folder; choose a new one")
    try:
        private_folder(destination)
    except OSError as error:
        raise _os_error(error, destination) from None


def _database(settings: Settings, destination: Path) -> Written:
    """One read transaction of the live database copied page by page into a new file: the
    snapshot at its start, whatever writers commit meanwhile (WAL lets them go on)."""
    source = settings.database_path
    target = destination / _inside(settings.workspace, source, DEFAULT_DATABASE)
    with SqliteDatabase(source, settings.database.busy_timeout, create=False) as database:
        try:
            private_folder(target.parent)
            private_file(target)
        except OSError as error:
            raise _os_error(error, target) from None
        try:
            copy = sqlite3.connect(target, isolation_level=None)
            try:
                database.connection.backup(copy)  # all pages in one step: one snapshot
                copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
                check = copy.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                copy.close()
        except sqlite3.Error as error:
            raise _copy_error(database, error, target) from None
    if check != "ok":
        raise StoreError(target, f"the copy does not check: {check}")
    return Written(target, "database")


def _copy_error(database: SqliteDatabase, error: sqlite3.Error, target: Path) -> MailerError:
    found = database.error(error)  # the one place that knows what a sqlite error means
    if isinstance(found, DiskFullError):
        return DiskFullError(f"backup {target}", "take the backup again into a new folder")
    return found


def _inside(workspace: Path, path: Path, default: Path) -> Path:
    """Where ``path`` goes in a backup: where it is in the workspace, or ``default`` when it
    lives elsewhere (a restored workspace then needs its setting pointed there)."""
    try:
        inside = path.relative_to(workspace)
    except ValueError:
        return default
    return default if ".." in inside.parts else inside


def _copy(source: Path, target: Path, what: str) -> Written:
    _write(target, source.read_bytes())
    return Written(target, what)


def _write(target: Path, data: bytes) -> None:
    private_folder(target.parent)
    write_private(target, data)


def _os_error(error: OSError, where: Path | str) -> MailerError:
    if error.errno == errno.ENOSPC:
        return DiskFullError(f"backup {where}", "take the backup again into a new folder")
    return FileInputError(Path(os.fsdecode(where)), f"cannot copy: {error.strerror}")

"""What mailer creates is its owner's alone: the database and its -wal and -shm 0600, the folders
it makes for them and for the DKIM key 0700, keys and exports 0600, whatever the umask; files
and folders that were there already keep their modes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.audience import lists
from mailer.db.sqlite import SqliteDatabase as Database
from tests.conftest import Invoke


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """Umask 000: what mailer creates is as private as mailer asks, not as the umask makes it."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_database_wal_shm_and_their_folders_are_private(mailer: Invoke, workspace: Path) -> None:
    result = mailer("lists", "create", "weekly", env={"MAILER_DATABASE_PATH": "data/deep/m.db"})
    assert result.exit_code == 0, result.output
    database = workspace / "data" / "deep" / "m.db"
    assert (mode(workspace / "data"), mode(workspace / "data" / "deep")) == (0o700, 0o700)
    assert mode(database) == 0o600
    with Database(database) as store:  # the -wal and -shm exist while a connection writes
        lists.create(store, "monthly", "Monthly")
        assert mode(database.with_name("m.db-wal")) == 0o600
        assert mode(database.with_name("m.db-shm")) == 0o600


def test_the_default_subscribers_folder_is_private(mailer: Invoke, workspace: Path) -> None:
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mode(workspace / "subscribers") == 0o700
    assert mode(workspace / "subscribers" / "mailer.db") == 0o600


def test_existing_folders_and_database_keep_their_modes(mailer: Invoke, workspace: Path) -> None:
    folder = workspace / "subscribers"
    folder.mkdir(mode=0o750)
    database = folder / "mailer.db"
    Database(database).close()
    database.chmod(0o640)  # chosen by the admin, say for a backup group
    assert mailer("lists", "create", "weekly").exit_code == 0
    with Database(database) as store:
        lists.create(store, "monthly", "Monthly")
        assert mode(folder / "mailer.db-wal") == 0o640  # as its database, never looser
    assert (mode(folder), mode(database)) == (0o750, 0o640)


def test_dkim_key_and_its_folder_are_private(mailer: Invoke, workspace: Path) -> None:
    env = {"MAILER_DKIM_KEY_FILE": "keys/dkim/private.pem"}
    result = mailer("dkim", "keygen", "--domain", "example.org", "--type", "ed25519", env=env)
    assert result.exit_code == 0, result.output
    key = workspace / "keys" / "dkim" / "private.pem"
    assert (mode(workspace / "keys"), mode(key.parent), mode(key)) == (0o700, 0o700, 0o600)
    key.chmod(0o644)  # a key copied in carelessly
    forced = mailer("dkim", "keygen", "--domain", "example.org", "--force", env=env)
    assert forced.exit_code == 0, forced.output
    assert mode(key) == 0o600
    assert list(key.parent.iterdir()) == [key]


def test_an_existing_key_folder_keeps_its_mode(mailer: Invoke, workspace: Path) -> None:
    (workspace / "dkim").mkdir(mode=0o755)
    assert mailer("dkim", "keygen", "--domain", "example.org", "--type", "ed25519").exit_code == 0
    assert mode(workspace / "dkim") == 0o755
    assert mode(workspace / "dkim" / "private.pem") == 0o600


def test_exports_are_private(mailer: Invoke, workspace: Path) -> None:
    mailer("lists", "create", "weekly")
    mailer("subscribers", "add", "weekly", "ada@example.org", "--name", "Ada")
    fresh = workspace / "fresh.csv"
    assert mailer("subscribers", "export", "weekly", "--output", str(fresh)).exit_code == 0
    assert mode(fresh) == 0o600
    old = workspace / "old.csv"
    old.write_text("stale\n")
    old.chmod(0o644)
    stale_part = workspace / "old.csv.part"  # left by an export that crashed
    stale_part.write_text("half")
    stale_part.chmod(0o666)
    assert mailer("subscribers", "export", "weekly", "--output", str(old)).exit_code == 0
    assert mode(old) == 0o600
    assert old.read_text(encoding="utf-8").startswith("email,name")
    assert not stale_part.exists()
    tight = workspace / "tight.csv"
    tight.write_text("")
    tight.chmod(0o400)
    assert mailer("subscribers", "export", "weekly", "--output", str(tight)).exit_code == 0
    assert mode(tight) == 0o400  # replaced, and no looser than it was


def test_init_writes_mailer_toml_privately(mailer: Invoke, workspace: Path) -> None:
    assert mailer("init").exit_code == 0
    settings = workspace / "mailer.toml"
    assert mode(settings) == 0o600  # it may come to hold [smtp] password
    settings.chmod(0o644)
    assert mailer("init", "--force").exit_code == 0
    assert mode(settings) == 0o600
    assert sorted(p.name for p in workspace.iterdir()) == ["mailer.toml", "subscribers"]

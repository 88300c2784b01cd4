"""A full disk under an import, an export or a key: one line, exit 1, no traceback, nothing half
written, and the same command finishes once there is room. Real full disks: small tmpfs mounts
(the tests run as root)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import fill

ROWS = 60_000


def mailer(workspace: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")} | env
    command = [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)


def counts(database: Path) -> tuple[int, int, int]:
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return (
            db.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0],
            db.execute("SELECT COUNT(*) FROM memberships").fetchone()[0],
            db.execute("SELECT COUNT(*) FROM events WHERE kind = 'subscribed'").fetchone()[0],
        )


def test_an_import_that_fills_the_disk_keeps_whole_chunks_and_can_be_run_again(
    small_disk: Path, tmp_path: Path
) -> None:
    readers = tmp_path / "readers.csv"
    readers.write_text(
        "email,name,city\n"
        + "".join(f"r{i}@example.org,Reader number {i},City {i}\n" for i in range(ROWS)),
        encoding="utf-8",
    )
    database = small_disk / "mailer.db"
    env = {"MAILER_DATABASE_PATH": str(database)}
    assert mailer(tmp_path, "lists", "create", "big", **env).returncode == 0
    full = mailer(tmp_path, "subscribers", "import", "big", str(readers), **env)
    assert full.returncode == 1
    assert "Traceback" not in full.stderr
    assert full.stderr.splitlines() == [
        f"error: disk full: database {database}; free space, then run the same import again"
    ]
    subscribers, memberships, events = counts(database)
    assert subscribers == memberships == events
    assert subscribers % 5_000 == 0 and 5_000 <= subscribers < ROWS  # whole chunks only
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = mailer(tmp_path, "subscribers", "import", "big", str(readers), **env)
    assert again.returncode == 0, again.stderr
    assert f"{ROWS - subscribers} added, 0 updated, {subscribers} unchanged" in again.stdout
    assert counts(database) == (ROWS, ROWS, ROWS)


def test_an_export_to_a_full_disk_is_one_line_and_leaves_no_file(
    small_disk: Path, tmp_path: Path
) -> None:
    readers = tmp_path / "readers.csv"
    readers.write_text(
        "email,name\n" + "".join(f"r{i}@example.org,{'x' * 900}\n" for i in range(50))
    )
    imported = mailer(tmp_path, "subscribers", "import", "weekly", str(readers), "--create-list")
    assert imported.returncode == 0, imported.stderr
    fill(small_disk / "filler")
    output = small_disk / "readers.csv"
    result = mailer(tmp_path, "subscribers", "export", "weekly", "--output", str(output))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: disk full: export {output}; free space, then run the same export again"
    ]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_dkim_key_on_a_full_disk_is_one_line_and_leaves_no_file(
    small_disk: Path, tmp_path: Path
) -> None:
    fill(small_disk / "filler")
    key = small_disk / "private.pem"
    result = mailer(tmp_path, "dkim", "keygen", "--domain", "example.org",
                    MAILER_DKIM_KEY_FILE=str(key))  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: disk full: key file {key}; free space, then run the same keygen again"
    ]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]

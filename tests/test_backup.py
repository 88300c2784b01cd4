"""`mailer backup DEST`: a consistent copy of a running workspace that restores to one whose
campaigns show and whose sent unsubscribe links still work."""

from __future__ import annotations

import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mailer.cli import app
from mailer.tokens import Signer, load_secret
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke
from tests.smtp_servers import Mailbox, start
from tests.test_send_cli import command, environment, populate, smtp_env

# A real newsletter's own values: a send over SMTP refuses `mailer init`'s placeholders.
NEWSLETTER = {
    "MAILER_NEWSLETTER_SENDER": "Vale Survey <survey@vale.example>",
    "MAILER_NEWSLETTER_POSTAL_ADDRESS": "Vale Survey, 2 Mill Lane, Lower Vale",
    "MAILER_NEWSLETTER_BASE_URL": "https://news.vale.example",
}
# A second process that opens a write transaction on the database and holds it until told.
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO lists (slug, name, opt_in, created_at)"
           " VALUES ('uncommitted', 'x', 'single', 'now')")
print("holding", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def restored(backup: Path, *args: str) -> str:
    """Run the real CLI on the restored workspace (the backup folder itself)."""
    result = CliRunner().invoke(app, ["--workspace", str(backup), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def check_copy(backup: Path) -> sqlite3.Connection:
    db = sqlite3.connect(backup / "subscribers" / "mailer.db")
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    return db


def test_backup_while_another_process_holds_a_write_transaction(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("init").exit_code == 0
    assert mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    (workspace / "templates" / "partials").mkdir(parents=True)
    (workspace / "templates" / "partials" / "footer.html.j2").write_text("my footer")
    (workspace / "dkim").mkdir()
    (workspace / "dkim" / "private.pem").write_text("not a real key, but present")
    (workspace / "media").mkdir()
    (workspace / "media" / "3f2a.png").write_bytes(b"\x89PNG not a real image")
    token = Signer(load_secret(workspace)).make("u", 1, 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(workspace / "subscribers" / "mailer.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        dest = workspace.parent / "backup"
        result = mailer("backup", str(dest))
    finally:
        holder.communicate("")
    assert result.exit_code == 0, result.output
    files = {
        ".mailer-secret", "mailer.toml", "subscribers/mailer.db", "dkim/private.pem",
        "templates/partials/footer.html.j2", "media/3f2a.png",
    }  # fmt: skip
    for name in files:
        assert f"wrote {dest / name} (" in result.stdout, name
        assert mode(dest / name) == 0o600, name
    assert {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()} == files
    assert mode(dest) == 0o700
    assert (dest / "templates/partials/footer.html.j2").read_text() == "my footer"
    assert (dest / "media/3f2a.png").read_bytes() == b"\x89PNG not a real image"
    db = check_copy(dest)
    assert db.execute("SELECT slug FROM lists").fetchall() == [("example",)]  # only committed
    assert Signer(load_secret(dest)).check(token) is not None
    assert "example" in restored(dest, "lists", "ls")
    restored(dest, "campaigns", "ls")


def test_backup_mid_send_restores_campaigns_and_sent_unsubscribe_links(tmp_path: Path) -> None:
    workspace = tmp_path / "live"
    workspace.mkdir()
    populate(workspace, 3000)
    mailbox = Mailbox()
    controller = start(mailbox)
    try:
        child = subprocess.Popen(
            # at 1,000 a second the send lasts three seconds: the backup falls in its middle
            command(workspace, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes",
                    "--rate", "1000"),
            env=environment({**smtp_env(controller.port), **NEWSLETTER}), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        first = mailbox.wait_for(300)[0]
        dest = tmp_path / "backup"
        result = CliRunner().invoke(app, ["--workspace", str(workspace), "backup", str(dest)])
        _, errors = child.communicate(timeout=120)
    finally:
        controller.stop()
    assert child.returncode == 0, errors
    assert result.exit_code == 0, result.output
    assert len(mailbox.counts()) == 3000
    db = check_copy(dest)
    sent = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()[0]
    # results are committed in batches: some of the 300 received may not be recorded yet
    assert 0 < sent < 3000, "the backup was not taken mid-send: nothing was tested"
    assert re.search(r"^\s*1\s", restored(dest, "campaigns", "ls"), re.MULTILINE)
    restored(dest, "campaigns", "show", "1")
    link = str(first.message["List-Unsubscribe"])
    token = re.search(r"/u/([^>/]+)>", link)
    assert token is not None, link
    assert Signer(load_secret(dest)).check(token.group(1)) is not None


def test_backup_refuses_a_folder_that_is_not_empty(mailer: Invoke, workspace: Path) -> None:
    assert mailer("lists", "create", "weekly").exit_code == 0
    dest = workspace.parent / "taken"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = mailer("backup", str(dest))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {dest}: exists and is not an empty folder; choose a new one"
    )
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]

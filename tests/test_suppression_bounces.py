"""A block over a dead address: a bounce while blocked is kept, so `unblock` leaves the reader
bounced, never mailed; and blocking an erased address writes nothing of it back."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from tests.conftest import Invoke, dump, write_csv
from tests.test_bounces import open_store, postfix_bounce, seed
from tests.test_import_formats import CLEANED
from tests.test_suppression import events, send, statuses

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL

MESSAGE_ID = "<1.7.0ada@example.org>"


def test_a_bounce_while_blocked_is_kept_and_unblock_leaves_the_reader_bounced(
    mailer: Invoke, workspace: Path
) -> None:
    with open_store(workspace) as store:
        seed(store, {"ada@example.org": MESSAGE_ID, "bob@example.org": ""})
    assert mailer("subscribers", "block", "ada@example.org").exit_code == 0
    box = mailbox.mbox(workspace / "bounces.mbox")
    box.add(postfix_bounce("ada@example.org", "bulletin@example.org", message_id=MESSAGE_ID))
    box.flush()
    box.close()
    processed = mailer("bounces", "process", str(workspace / "bounces.mbox"))
    assert processed.exit_code == 0, processed.output
    assert "1 hard," in processed.stdout and "; 0 reader" in processed.stdout
    assert statuses(workspace, "ada@example.org")[0] == "blocklisted"  # the block stays

    unblocked = mailer("subscribers", "unblock", "ada@example.org")
    assert unblocked.exit_code == 0, unblocked.output
    assert unblocked.stdout.strip() == (
        "unblocked ada@example.org (blocked by the editor), but their address bounced: still"
        " bounced, no mail (`mailer subscribers add LIST ada@example.org --resubscribe` brings"
        " them back)"
    )
    assert statuses(workspace, "ada@example.org") == ("bounced", {"weekly": "confirmed"})
    kinds = [kind for kind, _ in events(workspace, "ada@example.org")]
    assert kinds[-3:] == ["blocklisted", "bounced", "unblocked"]
    assert send(mailer, workspace, "weekly") == {"bob@example.org": 1}


def cleaned(workspace: Path, *emails: str) -> Path:
    """Mailchimp's cleaned export: these addresses bounced."""
    rows = "".join(
        f'{e},,,1,,,"2019-03-14 09:14:02",,,,,,,,,"2023-07-08 03:04:05",Summer,c3d4e5,101,'
        "a1b2c3d4e5,,\r\n"
        for e in emails
    )
    return write_csv(workspace / "cleaned_members_export_1.csv", CLEANED + "\r\n" + rows)


def test_unblock_never_makes_a_dead_address_active(mailer: Invoke, workspace: Path) -> None:
    """ada bounces (an import) while blocked; bob bounced before his block; cy bounced, came
    back by --resubscribe, then was blocked: only cy is mailed after the unblock."""
    assert mailer("lists", "create", "weekly").exit_code == 0
    for email in ("ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org"):
        assert mailer("subscribers", "add", "weekly", email).exit_code == 0
    assert mailer("subscribers", "block", "ada@example.org").exit_code == 0
    imported = mailer("subscribers", "import", "weekly", str(cleaned(workspace, "ada@example.org")))
    assert imported.exit_code == 0, imported.output
    assert "0 added, 1 updated" in imported.stdout  # kept: her bounce is recorded
    path = cleaned(workspace, "bob@example.org", "cy@example.org")
    assert mailer("subscribers", "import", "weekly", str(path)).exit_code == 0
    back = mailer("subscribers", "add", "weekly", "cy@example.org", "--resubscribe")
    assert back.exit_code == 0, back.output
    for email in ("bob@example.org", "cy@example.org"):
        assert mailer("subscribers", "block", email).exit_code == 0

    emails = ("ada@example.org", "bob@example.org", "cy@example.org")
    unblocked = mailer("subscribers", "unblock", *emails)
    assert unblocked.exit_code == 0, unblocked.output
    lines = unblocked.stdout.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "unblocked ada@example.org (blocked by the editor)",
        "unblocked bob@example.org (blocked by the editor)",
        "unblocked cy@example.org (blocked by the editor): receives mail again on weekly",
    ]
    assert [statuses(workspace, email)[0] for email in emails] == ["bounced", "bounced", "active"]
    assert send(mailer, workspace, "weekly") == {"cy@example.org": 1, "dee@example.org": 1}


def test_blocking_an_erased_address_writes_nothing_of_it_back(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 0
    assert mailer("subscribers", "forget", "ada@example.org", "--yes").exit_code == 0
    blocked = mailer("subscribers", "block", "ada@example.org", "spam@example.org")
    assert blocked.exit_code == 0, blocked.output
    assert blocked.stdout.strip().splitlines()[0] == (
        "ada@example.org was erased at the reader's request and is already suppressed: its"
        " keyed hash keeps imports and additions out; the address is not stored again"
    )
    with open_store(workspace) as store:
        rows = store.query("SELECT email, status FROM subscribers ORDER BY id")
        held = dump(store)
    assert rows == [("erased-1@erased.invalid", "erased"), ("spam@example.org", "blocklisted")]
    assert "ada@example.org" not in held
    files = (workspace / "subscribers").glob("mailer.db*")  # SQLite's free pages and log too
    assert all(b"ada@example.org" not in path.read_bytes() for path in files)
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 1

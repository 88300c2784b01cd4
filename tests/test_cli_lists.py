"""Lists and subscribers through the real CLI in a temporary workspace."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import EXAMPLE_CSV, Invoke


def test_help_on_every_command_shows_an_example(mailer: Invoke) -> None:
    commands = [
        ["init"], ["lists", "create"], ["lists", "ls"], ["lists", "rm"],
        ["subscribers", "add"], ["subscribers", "rm"], ["subscribers", "ls"],
        ["subscribers", "import"], ["subscribers", "export"], ["lists", "set"], ["serve"],
        ["render"], ["send"], ["campaigns", "ls"], ["campaigns", "show"], ["campaigns", "resume"],
        ["campaigns", "retry"], ["dkim", "keygen"], ["bounces", "process"],
    ]  # fmt: skip
    for command in commands:
        result = mailer(*command, "--help")
        assert result.exit_code == 0, command
        assert f"Example: mailer {' '.join(command)}" in result.output, command


def test_usage_error_exits_2(mailer: Invoke) -> None:
    assert mailer("lists", "create").exit_code == 2
    assert mailer("lists", "nonsense").exit_code == 2


def test_create_list_ls_and_counts(mailer: Invoke, workspace: Path) -> None:
    assert mailer("lists", "create", "weekly", "--name", "Weekly report").exit_code == 0
    assert mailer("lists", "create", "confirmed", "--double-opt-in").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "a@example.org").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "b@example.org").exit_code == 0
    assert mailer("subscribers", "add", "confirmed", "b@example.org").exit_code == 0
    assert mailer("subscribers", "rm", "weekly", "b@example.org").exit_code == 0
    result = mailer("lists", "ls")
    assert result.exit_code == 0
    header, *lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert header == ["slug", "name", "opt-in", "form", "archive", "confirmed", "unconfirmed",
                      "unsubscribed", "bounced", "blocklisted"]  # fmt: skip
    rows = {line[0]: line[1:] for line in lines}
    assert rows["weekly"] == [
        "Weekly report",
        "single",
        "closed",
        "private",
        "1",
        "0",
        "1",
        "0",
        "0",
    ]
    assert rows["confirmed"] == [
        "confirmed",
        "double",
        "closed",
        "private",
        "0",
        "1",
        "0",
        "0",
        "0",
    ]
    assert (workspace / "subscribers" / "mailer.db").exists()


def test_the_public_form_is_opened_and_closed_by_the_editor(
    mailer: Invoke, workspace: Path
) -> None:
    def opened(slug: str) -> int:
        db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
        row = db.execute("SELECT public_form FROM lists WHERE slug = ?", (slug,)).fetchone()
        db.close()
        return int(row[0])

    created = mailer("lists", "create", "weekly")
    assert created.exit_code == 0 and "public form" not in created.stdout
    assert opened("weekly") == 0  # closed unless the editor opens it
    made = mailer("lists", "create", "letters", "--double-opt-in", "--public-form")
    assert made.exit_code == 0
    assert made.stdout == "created list letters (letters, double opt-in, public form)\n"
    assert opened("letters") == 1
    result = mailer("lists", "set", "weekly", "--public-form")
    assert result.exit_code == 0, result.output
    assert result.stdout == "list weekly: subscribe form open at /s/weekly\n"
    assert opened("weekly") == 1
    closed = mailer("lists", "set", "letters", "--no-public-form", "--public-archive")
    assert closed.exit_code == 0, closed.output
    assert closed.stdout.splitlines() == [
        "list letters: campaigns published at /archive/",
        "list letters: subscribe form closed",
    ]
    assert opened("letters") == 0
    listed = mailer("lists", "ls").stdout.splitlines()
    rows = {line.split("\t")[0]: line.split("\t") for line in listed}
    assert rows["weekly"][3] == "open" and rows["letters"][3] == "closed"
    assert rows["weekly"][4] == "private" and rows["letters"][4] == "public"
    nothing = mailer("lists", "set", "weekly")
    assert nothing.exit_code == 1 and "--public-form" in nothing.stderr
    assert mailer("lists", "set", "nope", "--public-form").exit_code == 1


def test_duplicate_and_bad_slug(mailer: Invoke) -> None:
    assert mailer("lists", "create", "weekly").exit_code == 0
    again = mailer("lists", "create", "weekly")
    assert again.exit_code == 1
    assert again.stderr.strip() == "error: list 'weekly' already exists"
    bad = mailer("lists", "create", "Has Spaces")
    assert bad.exit_code == 1
    assert "invalid list slug" in bad.stderr


def test_rm_refuses_without_tty_and_yes(mailer: Invoke) -> None:
    mailer("lists", "create", "weekly")
    refused = mailer("lists", "rm", "weekly")
    assert refused.exit_code == 1
    assert "without --yes" in refused.stderr
    assert "weekly" in mailer("lists", "ls").output
    assert mailer("lists", "rm", "weekly", "--yes").exit_code == 0
    assert "weekly" not in mailer("lists", "ls").output


def test_identity_is_the_normalised_address(mailer: Invoke) -> None:
    mailer("lists", "create", "weekly")
    assert "added" in mailer("subscribers", "add", "weekly", "Alice@Example.COM").output
    again = mailer("subscribers", "add", "weekly", "alice@example.com")
    assert "already on weekly" in again.output
    listed = json.loads(mailer("subscribers", "ls", "weekly", "--json").output)
    assert [m["email"] for m in listed] == ["alice@example.com"]


def test_attributes_and_name_update(mailer: Invoke) -> None:
    mailer("lists", "create", "weekly")
    mailer("subscribers", "add", "weekly", "ada@example.org", "--attr", "city=Paris")
    result = mailer(
        "subscribers", "add", "weekly", "ada@example.org", "--name", "Ada", "--attr", "role=x=y"
    )
    assert "updated" in result.output
    [member] = json.loads(mailer("subscribers", "ls", "weekly", "--json").output)
    assert member["name"] == "Ada"
    assert member["attributes"] == {"city": "Paris", "role": "x=y"}


def test_internationalised_address_is_marked_smtputf8(mailer: Invoke, workspace: Path) -> None:
    mailer("lists", "create", "weekly")
    assert mailer("subscribers", "add", "weekly", "jöhn@exämple.de").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "plain@example.org").exit_code == 0
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    flags = dict(db.execute("SELECT email, smtputf8 FROM subscribers"))
    assert flags == {"jöhn@exämple.de": 1, "plain@example.org": 0}


def test_unsubscribe_keeps_the_row_and_records_an_event(mailer: Invoke, workspace: Path) -> None:
    mailer("lists", "create", "weekly")
    mailer("subscribers", "add", "weekly", "ada@example.org")
    assert mailer("subscribers", "rm", "weekly", "ADA@example.org").exit_code == 0
    again = mailer("subscribers", "rm", "weekly", "ada@example.org")
    assert again.exit_code == 0
    assert "already unsubscribed" in again.output
    listed = mailer("subscribers", "ls", "weekly", "--status", "unsubscribed").stdout
    assert listed.splitlines()[1].startswith("ada@example.org\t\tunsubscribed\t")
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    kinds = [r[0] for r in db.execute("SELECT kind FROM events ORDER BY id")]
    assert kinds == ["subscribed", "unsubscribed"]
    readd = mailer("subscribers", "add", "weekly", "ada@example.org")
    assert readd.exit_code == 1
    assert "--resubscribe" in readd.stderr
    assert mailer("subscribers", "add", "weekly", "ada@example.org", "--resubscribe").exit_code == 0


def test_double_opt_in_members_start_unconfirmed(mailer: Invoke) -> None:
    mailer("lists", "create", "careful", "--double-opt-in")
    mailer("subscribers", "add", "careful", "ada@example.org")
    [member] = json.loads(mailer("subscribers", "ls", "careful", "--json").output)
    assert member["status"] == "unconfirmed"


def test_init_writes_a_commented_file_once(mailer: Invoke, workspace: Path) -> None:
    assert mailer("init").exit_code == 0
    text = (workspace / "mailer.toml").read_text()
    assert "[smtp]" in text and "# " in text
    second = mailer("init")
    assert second.exit_code == 1
    assert "already exists" in second.stderr
    assert mailer("init", "--force").exit_code == 0


def test_version(mailer: Invoke) -> None:
    result = mailer("--version")
    assert result.exit_code == 0
    assert result.output.startswith("mailer ")


def test_example_csv_imports_cleanly(mailer: Invoke) -> None:
    mailer("lists", "create", "example")
    result = mailer("subscribers", "import", "example", str(EXAMPLE_CSV))
    assert result.exit_code == 0, result.stderr
    assert result.output.startswith("20 added, 0 updated, 0 unchanged")

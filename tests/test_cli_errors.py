"""Bad input: one line on stderr, exit 1, no traceback, nothing half-written."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Invoke


def one_clean_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_missing_list(mailer: Invoke) -> None:
    for args in (
        ["subscribers", "add", "nope", "a@example.org"],
        ["subscribers", "ls", "nope"],
        ["subscribers", "export", "nope"],
        ["lists", "rm", "nope", "--yes"],
    ):
        result = mailer(*args)
        assert result.exit_code == 1
        assert one_clean_line(result.stderr) == "error: no list 'nope' (see `mailer lists ls`)"


def test_missing_file(mailer: Invoke, workspace: Path) -> None:
    mailer("lists", "create", "weekly")
    result = mailer("subscribers", "import", "weekly", str(workspace / "absent.csv"))
    assert result.exit_code == 1
    assert "absent.csv: cannot read: No such file or directory" in one_clean_line(result.stderr)


def test_locked_database(mailer: Invoke, workspace: Path) -> None:
    mailer("lists", "create", "weekly")
    holder = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = mailer(
            "subscribers", "add", "weekly", "a@example.org",
            env={"MAILER_DATABASE_BUSY_TIMEOUT": "0.05"},
        )  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
    assert result.exit_code == 1
    assert "locked by another process" in one_clean_line(result.stderr)
    assert json.loads(mailer("subscribers", "ls", "weekly", "--json").stdout) == []


def test_unwritable_database_location(mailer: Invoke, workspace: Path) -> None:
    # A regular file where the folder should be fails even for root, unlike chmod.
    (workspace / "blocker").write_text("")
    result = mailer("lists", "ls", env={"MAILER_DATABASE_PATH": "blocker/mailer.db"})
    assert result.exit_code == 1
    line = one_clean_line(result.stderr)
    assert line.startswith(f"error: database {workspace / 'blocker' / 'mailer.db'}: ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[smtp]\nport = "x"\n', "mailer.toml:2: smtp.port: expected a whole number, got 'x'"),
        ("[smtp\n", "mailer.toml:1: not valid TOML"),
        ('[smtp]\nhots = "a"\n', "mailer.toml:2: smtp.hots: unknown setting"),
    ],
)
def test_malformed_config(mailer: Invoke, workspace: Path, content: str, expected: str) -> None:
    (workspace / "mailer.toml").write_text(content)
    result = mailer("lists", "ls")
    assert result.exit_code == 1
    assert expected in one_clean_line(result.stderr)


@pytest.mark.parametrize("attr", ["noequals", "=value", "email=x@example.org"])
def test_invalid_attr(mailer: Invoke, attr: str) -> None:
    mailer("lists", "create", "weekly")
    result = mailer("subscribers", "add", "weekly", "a@example.org", "--attr", attr)
    assert result.exit_code == 1
    assert f"invalid --attr {attr!r}" in one_clean_line(result.stderr)
    assert json.loads(mailer("subscribers", "ls", "weekly", "--json").stdout) == []


def test_invalid_address_and_status(mailer: Invoke) -> None:
    mailer("lists", "create", "weekly")
    result = mailer("subscribers", "add", "weekly", "not-an-address")
    assert result.exit_code == 1
    assert one_clean_line(result.stderr).startswith("error: invalid address 'not-an-address': ")
    status = mailer("subscribers", "ls", "weekly", "--status", "gone")
    assert status.exit_code == 1
    assert "invalid --status 'gone'" in one_clean_line(status.stderr)


def test_export_to_unwritable_path(mailer: Invoke, workspace: Path) -> None:
    mailer("lists", "create", "weekly")
    (workspace / "file").write_text("")
    result = mailer(
        "subscribers", "export", "weekly", "--output", str(workspace / "file" / "x.csv")
    )
    assert result.exit_code == 1
    assert "x.csv: cannot write: Not a directory" in one_clean_line(result.stderr)


TOO_BIG = "99999999999999999999999"


@pytest.mark.parametrize("command", ["show", "resume", "retry"])
@pytest.mark.parametrize("campaign", [TOO_BIG, str(2**63), str(2**63 - 1), "0"])
def test_a_campaign_id_no_campaign_can_have_is_no_campaign(
    mailer: Invoke, command: str, campaign: str
) -> None:
    assert mailer("lists", "create", "weekly").exit_code == 0  # a workspace, with no campaign
    result = mailer("campaigns", command, campaign)
    assert result.exit_code == 1
    assert one_clean_line(result.stderr) == (
        f"error: no campaign '{campaign}' (see `mailer campaigns ls`)"
    )


@pytest.mark.parametrize(
    "command", [["campaigns", "resume", "1"], ["send", "report.md", "--list", "weekly"]]
)
@pytest.mark.parametrize(
    "option", [["--rate", "nan"], ["--rate", "inf"], ["--concurrency", "1001"]]
)
def test_run_options_out_of_range_are_usage_errors(
    mailer: Invoke, command: list[str], option: list[str]
) -> None:
    result = mailer(*command, *option)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Invalid value for" in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--domain", "x y"),
        ("--domain", "-x.example.org"),
        ("--domain", "a..example.org"),
        ("--domain", "example.org\n"),
        ("--domain", "ex_ample.org"),
        ("--selector", "a b"),
        ("--selector", "s;k=rsa"),
        ("--selector", "mailer."),
    ],
)
def test_dkim_keygen_with_a_bad_name_writes_no_key(
    mailer: Invoke, workspace: Path, option: str, value: str
) -> None:
    args = ["--domain", "example.org"] if option == "--selector" else []
    result = mailer("dkim", "keygen", *args, option, value)
    assert result.exit_code == 1
    line = one_clean_line(result.stderr)
    what = option.removeprefix("--")
    assert line.startswith(f"error: invalid DKIM {what} {value!r}: must be a DNS name")
    assert not (workspace / "dkim").exists()


def test_a_number_too_large_for_sqlite_is_a_store_error(workspace: Path) -> None:
    from mailer.db.sqlite import SqliteDatabase as Database
    from mailer.errors import StoreError

    with Database(workspace / "db.sqlite") as database:
        with pytest.raises(StoreError, match="a number too large for SQLite"):
            database.query("SELECT ?", (2**63,))
        with pytest.raises(StoreError, match="a number too large for SQLite"):
            database.execute("SELECT ?", (2**63,))
        with pytest.raises(StoreError), database.transaction() as db:
            db.execute("SELECT ?", (2**63,))


def test_init_in_a_workspace_that_cannot_be_made_is_one_line(workspace: Path) -> None:
    from typer.testing import CliRunner

    from mailer.cli import app

    (workspace / "file").write_text("")
    result = CliRunner().invoke(app, ["--workspace", str(workspace / "file"), "init"])
    assert result.exit_code == 1
    assert one_clean_line(result.stderr) == (
        f"error: {workspace / 'file' / 'mailer.toml'}: cannot write: File exists"
    )


def test_an_argument_that_is_not_utf8_is_one_line(mailer: Invoke, workspace: Path) -> None:
    """A file name from another system, as the shell hands it on (Python keeps each byte that
    is not UTF-8 as a lone surrogate): one line, before anything is read or stored. Before, an
    import of such a file, a report of that name or a --name ended in a traceback."""
    mailer("lists", "create", "weekly")
    latin = "abonn\udce9s.csv"  # b"abonn\xe9s.csv"
    (workspace / latin).write_text("email\nada@example.org\n")
    for args in (
        ["subscribers", "import", "weekly", str(workspace / latin)],
        ["subscribers", "add", "weekly", "ada@example.org", "--name", "Ren\udce9"],
        ["lists", "create", "letters", "--name", "Caf\udce9"],
    ):
        result = mailer(*args)
        assert result.exit_code == 1, result.output
        line = one_clean_line(result.stderr)
        assert line.startswith("error: ") and line.endswith(
            ": not UTF-8 (a name from another system?); rename it, or give it in UTF-8"
        )
        assert "\ufffd" in line
    assert "ada@example.org" not in mailer("subscribers", "ls", "weekly").stdout
    assert "letters" not in mailer("lists", "ls").stdout


def test_text_the_terminal_cannot_show_is_written_escaped(workspace: Path) -> None:
    """Output to a terminal whose encoding lacks a character (ASCII here) is escaped, not a
    traceback; data going to a pipe is never changed so: one line says what to set."""
    command = [sys.executable, "-m", "mailer", "-w", str(workspace)]
    made = subprocess.run([*command, "lists", "create", "cafe", "--name", "Café Zoë"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    ascii_only = {**os.environ, "PYTHONIOENCODING": "ascii", "COLUMNS": "200"}
    main, terminal = os.openpty()
    with os.fdopen(main, "rb") as screen:
        shown = subprocess.run([*command, "lists", "ls"], env=ascii_only, stdout=terminal,
                               stderr=subprocess.PIPE, text=True, timeout=60)  # fmt: skip
        os.close(terminal)
        assert shown.returncode == 0, shown.stderr
        assert b"Caf\\xe9 Zo\\xeb" in screen.read1(65536)
    piped = subprocess.run([*command, "lists", "ls", "--json"], env=ascii_only,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert piped.returncode == 1
    assert one_clean_line(piped.stderr) == (
        "error: the output's encoding (ascii) cannot hold '\\xe9': set a UTF-8 locale"
        " (LANG=C.UTF-8) or PYTHONIOENCODING=utf-8"
    )
    assert "\\xe9" not in piped.stdout

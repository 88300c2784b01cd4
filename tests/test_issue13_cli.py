"""Issue 13 gaps in the command line: counts in words, read-only modes and backup where there
is no workspace, help text as written, a reader that stops reading, an empty table said."""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from mailer.cli import app
from mailer.cli.output import plural, rows
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke

NO_WORKSPACE = "error: no workspace here: run `mailer init`, or use -w PATH"


def run(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return subprocess.run([sys.executable, "-m", "mailer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    """A folder with no workspace in it or above it."""
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


# 4. Counts in words


def test_bounces_dry_run_says_1_message(mailer: Invoke, workspace: Path) -> None:
    assert mailer("init").exit_code == 0
    box = mailbox.Maildir(workspace / "Maildir")
    box.add(b"From: someone@example.net\r\nSubject: hello\r\n\r\njust a note\r\n")
    box.close()
    dry = mailer("bounces", "process", str(workspace / "Maildir"), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("dry run, nothing changed: 1 message read: 0 hard, 0 soft,")
    assert dry.stdout.rstrip().endswith("; 0 readers now bounced")


def test_plural() -> None:
    assert [plural(n, "reader") for n in (0, 1, 2)] == ["0 readers", "1 reader", "2 readers"]
    assert plural(1, "attempt") == "1 attempt" and plural(3, "entry", "entries") == "3 entries"


# 5 and 6. No workspace: the one line, and nothing created


def test_bounces_dry_run_with_no_workspace_creates_nothing(empty: Path, tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir")
    box.add(b"From: someone@example.net\r\nSubject: hello\r\n\r\njust a note\r\n")
    box.close()
    result = run(empty, "bounces", "process", str(tmp_path / "Maildir"), "--dry-run")
    assert result.returncode == 1
    assert result.stderr.strip() == NO_WORKSPACE
    assert list(empty.iterdir()) == []


def test_bounces_dry_run_with_w_and_no_workspace(mailer: Invoke, workspace: Path) -> None:
    box = mailbox.Maildir(workspace.parent / f"{workspace.name}-Maildir")
    box.close()
    result = mailer("bounces", "process", str(workspace.parent / f"{workspace.name}-Maildir"),
                    "--dry-run")  # fmt: skip
    assert result.exit_code == 1
    assert f"no workspace at {workspace}" in result.stderr
    assert list(workspace.iterdir()) == []


def test_backup_with_no_workspace_says_so_and_makes_no_folder(empty: Path) -> None:
    result = run(empty, "backup", "../bk")
    assert result.returncode == 1
    assert result.stderr.strip() == NO_WORKSPACE
    assert not (empty.parent / "bk").exists()
    assert list(empty.iterdir()) == []


# 7 and 8. Help as written: every [section] of the source text shown, no <list[str]>


SECTION = re.compile(r"\[[a-z_]+\]")


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


def source_text(command: Any) -> str:
    texts = [command.help, command.epilog, *(getattr(p, "help", None) for p in command.params)]
    return "\n".join(t for t in texts if t)


PAGES = list(commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in PAGES}
    assert {"", "send", "dkim keygen", "bounces process", "subscribers block"} <= names
    assert len(names) > 25


@pytest.mark.parametrize("path", [p for p, _ in PAGES], ids=lambda p: " ".join(p) or "mailer")
def test_help_shows_every_section_and_no_list_label(mailer: Invoke, path: tuple[str, ...]) -> None:
    command = dict(PAGES)[path]
    result = mailer(*path, "-h", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    wanted = SECTION.findall(source_text(command))
    missing = [s for s in set(wanted) if result.stdout.count(s) < wanted.count(s)]
    assert missing == [], result.stdout
    assert "list[" not in result.stdout, result.stdout


def test_dkim_keygen_help_names_the_setting(mailer: Invoke) -> None:
    shown = mailer("dkim", "keygen", "-h", env={"COLUMNS": "200"}).stdout
    assert "Signing domain (default: [dkim] domain)." in shown
    assert "Write a DKIM private key to [dkim] key_file" in shown


def test_a_list_argument_is_labelled_by_one_value(mailer: Invoke) -> None:
    shown = mailer("subscribers", "block", "-h", env={"COLUMNS": "200"}).stdout
    assert re.search(r"EMAIL\.\.\.\s+<str>\s+One or more addresses", shown), shown
    assert "{EMAIL}..." in shown and "EMAIL...}" not in shown


# 9. A reader that stops reading


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose list `big` has 5,000 readers: more than a pipe holds."""
    workspace = tmp_path_factory.mktemp("big")
    people = workspace / "people.csv"
    people.write_text("email,name\n" + "".join(f"r{i}@vale.example,R {i}\n" for i in range(5000)))
    imported = run(workspace, "subscribers", "import", "big", str(people), "--create-list",
                   "--status", "confirmed", timeout=120)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    return workspace


@pytest.mark.parametrize("args", [(), ("--json",), ("--status", "confirmed")])
def test_a_reader_that_stops_early_gets_no_traceback(big: Path, args: tuple[str, ...]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    command = [sys.executable, "-m", "mailer", "subscribers", "ls", "big", *args]
    with subprocess.Popen(command, cwd=big, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as child:  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        first = child.stdout.readline()  # as `| head -1`: one line, then the pipe is closed
        child.stdout.close()
        stderr = child.stderr.read().decode()
        code = child.wait(timeout=60)
    assert first.strip()
    assert stderr == ""
    assert code in (0, 141)


# 10. An empty table says so on stderr, piped or not


def test_rows_says_so_when_there_are_none(capsys: pytest.CaptureFixture[str]) -> None:
    rows(("address", "name"), iter(()), empty="no readers on weekly")
    captured = capsys.readouterr()
    assert captured.out == "address\tname\n"
    assert captured.err == "no readers on weekly\n"
    rows(("address", "name"), [("a@vale.example", "A")], empty="no readers on weekly")
    captured = capsys.readouterr()
    assert captured.out == "address\tname\na@vale.example\tA\n" and captured.err == ""


@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["send", "workers"])
def test_a_send_whose_reader_stops_early_ends_141_not_1(
    tmp_path: Path, workers: tuple[str, ...]
) -> None:
    """`mailer send ... --yes | head -1`: the send goes out whole, and its exit says that its
    reader went away (141, as the shell reports SIGPIPE), not that it failed; with workers,
    too, whose start it must not cut short."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    base = [sys.executable, "-m", "mailer", "--workspace", str(tmp_path)]
    made = subprocess.run([*base, "subscribers", "import", "example", str(EXAMPLE_CSV),
                           "--create-list"], env=env, capture_output=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    command = [*base, "send", str(EXAMPLE_REPORT), "--list", "example", "--yes", *workers]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as child:  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        first = child.stdout.readline()  # the subject line, then the pipe is closed
        child.stdout.close()
        stderr = child.stderr.read().decode()
        code = child.wait(timeout=120)
    assert first.startswith(b"subject:")
    assert code == 141, stderr
    assert "Traceback" not in stderr
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 20  # every reader's message

"""Which folder is the workspace: found upward from the current folder as git finds a
repository, and commands that only read never create a database where there is none."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mailer.cli import app
from tests.conftest import EXAMPLE_CSV

NO_WORKSPACE = "error: no workspace here: run `mailer init`, or use -w PATH"
READ_ONLY = [
    ["lists", "ls"],
    ["subscribers", "ls", "example"],
    ["subscribers", "export", "example"],
]


def run(*args: str) -> Result:
    """The real CLI in the current folder, without --workspace."""
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def here(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workspace)
    return workspace


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_reading_where_there_is_no_workspace_creates_nothing(here: Path, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == NO_WORKSPACE
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_reading_a_workspace_given_with_w_that_has_none_creates_nothing(
    here: Path, args: list[str]
) -> None:
    empty = here / "empty"
    result = run("-w", str(empty), *args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (
        f"error: database {empty / 'subscribers' / 'mailer.db'}: does not exist: no workspace"
        f" at {empty} (run `mailer -w PATH init` to make one)"
    ), lines
    assert not empty.exists()


def test_a_command_in_a_subfolder_finds_the_workspace_above(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("init").exit_code == 0
    assert run("lists", "create", "weekly").exit_code == 0
    deep = here / "reports" / "2026"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    listed = run("lists", "ls")
    assert listed.exit_code == 0, listed.output
    assert "weekly" in listed.stdout
    assert run("lists", "create", "monthly").exit_code == 0  # writes go to the workspace too
    monkeypatch.chdir(here)
    assert "monthly" in run("lists", "ls").stdout
    assert list(deep.iterdir()) == []


def test_a_database_alone_marks_a_workspace(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    imported = run("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    assert not (here / "mailer.toml").exists()
    below = here / "notes"
    below.mkdir()
    monkeypatch.chdir(below)
    listed = run("subscribers", "ls", "example", "--json")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.count("@") == 20
    assert list(below.iterdir()) == []


def test_quick_start_in_a_fresh_folder_reads_nothing_then_writes_the_database_there(
    here: Path,
) -> None:
    assert run("lists", "ls").exit_code == 1
    assert not (here / "subscribers").exists()
    imported = run("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    assert (here / "subscribers" / "mailer.db").is_file()
    assert "example" in run("lists", "ls").stdout

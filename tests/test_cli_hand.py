"""A CLI that fits the hand: -h as well as --help everywhere, shell completion, every option of
the campaign commands described."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import typer

from mailer.cli import app
from tests.conftest import Invoke


def _paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if hasattr(command, "commands"):  # a group (typer vendors its own click)
        for name, sub in command.commands.items():
            found += _paths(sub, (*path, name))
    return found


EVERY = _paths(typer.main.get_command(app))

COMMANDS = [[], ["lists"], ["lists", "create"], ["subscribers", "import"], ["send"],
            ["campaigns", "resume"], ["campaigns", "retry"], ["backup"], ["serve"]]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mailer")
def test_dash_h_is_help(mailer: Invoke, command: list[str]) -> None:
    short, long = mailer(*command, "-h"), mailer(*command, "--help")
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.stdout == long.stdout and "Usage:" in short.stdout


def test_shell_completion_is_on() -> None:
    # Typer finds the shell among the process's parents, so the command runs under bash
    # (`&& true` keeps bash from replacing itself with it).
    command = ["bash", "-c", '"$0" -m mailer --show-completion && true', sys.executable]
    script = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert script.returncode == 0, script.stderr
    assert "_mailer_completion" in script.stdout and "complete " in script.stdout


@pytest.mark.parametrize("command", ["resume", "retry"])
def test_every_option_of_the_campaign_commands_is_described(mailer: Invoke, command: str) -> None:
    text = mailer("campaigns", command, "--help").stdout
    shown = " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())  # the table's borders out
    assert shown.count("Default: the campaign's.") == 2  # --concurrency and --rate
    assert "Deliver into this Maildir instead." in shown
    if command == "resume":
        assert "Send at most N now" in shown  # the rest of the line wraps beside the range


@pytest.mark.parametrize("command", EVERY, ids=lambda c: " ".join(c) or "mailer")
def test_every_help_shows_flags_as_flags_and_describes_each_option(
    mailer: Invoke, command: tuple[str, ...]
) -> None:
    result = mailer(*command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    rows = [line for line in result.stdout.splitlines() if re.match(r"[│|]\s+(\*\s+)?--", line)]
    assert rows, result.stdout
    for row in rows:  # a described option has words after its names and type
        cells = [c for c in re.split(r"\s{2,}", row.strip("│| ")) if c]
        assert len(cells) >= 2 and re.search(r"[a-z]{3}", cells[-1]), row


def test_a_flag_given_a_value_is_refused_in_one_line(mailer: Invoke) -> None:
    result = mailer("lists", "create", "weekly", "--double-opt-in", "true")
    assert result.exit_code == 2
    assert "unexpected extra argument(s) (true)" in result.output
    assert mailer("lists", "ls").stdout.count("weekly") == 0

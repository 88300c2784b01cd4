"""A CLI that fits the hand: -h as well as --help everywhere, shell completion, every option of
the campaign commands described."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import Invoke

COMMANDS = [[], ["lists"], ["lists", "create"], ["subscribers", "import"], ["send"],
            ["campaigns", "resume"], ["campaigns", "retry"], ["backup"], ["serve"]]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mailer")
def test_dash_h_is_help(mailer: Invoke, command: list[str]) -> None:
    short, long = mailer(*command, "-h"), mailer(*command, "--help")
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.stdout == long.stdout and "Usage:" in short.stdout


def test_shell_completion_is_on() -> None:
    command = [sys.executable, "-m", "mailer", "--show-completion", "bash"]
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

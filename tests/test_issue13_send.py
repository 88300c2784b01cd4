"""Issue 13 gaps in sending: the real mailer.toml named, a cancelled campaign that sent nothing,
a server that takes mail only over TLS or after a login."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.models import Reply
from mailer.send.retry import session_refusal
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, PUBLICATION, Invoke
from tests.smtp_servers import LoopbackController, Recorder, closed_port, server_tls, serving

Server = tuple[LoopbackController, Recorder]


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(port),
            "MAILER_SMTP_SECURITY": "none", "MAILER_SEND_MAX_ATTEMPTS": "1", **extra}  # fmt: skip


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture
def example(mailer: Invoke) -> str:
    imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    return "example"


# 1. A placeholder setting is named in the mailer.toml the command read, wherever that is.


def line_of(path: Path, start: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.startswith(start))


def test_placeholders_name_the_real_mailer_toml(mailer: Invoke, workspace: Path) -> None:
    assert mailer("init").exit_code == 0
    assert mailer("lists", "create", "weekly").exit_code == 0
    toml = workspace / "mailer.toml"
    sender = f"{toml}:{line_of(toml, 'sender =')}"
    env = {**smtp_env(closed_port()), "PATH": os.environ["PATH"]}  # no MAILER_NEWSLETTER_*
    send = ["send", str(EXAMPLE_REPORT), "--list", "weekly", "--test", "me@vale.example"]
    # -w PATH, from another folder (the tests' own)
    refused = mailer(*send, env=smtp_env(closed_port()))
    assert refused.exit_code == 1
    assert f"newsletter.sender is still `mailer init`'s placeholder ({sender})" in refused.stderr
    # from a subfolder of the workspace, the workspace found above it
    sub = workspace / "reports" / "2026"
    sub.mkdir(parents=True)
    run = subprocess.run([sys.executable, "-m", "mailer", *send], cwd=sub, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1, run.stderr
    line = one_line(run.stderr)
    assert f"newsletter.sender is still `mailer init`'s placeholder ({sender})" in line
    assert "(mailer.toml:" not in line


# 2. A scheduled campaign cancelled before it sent anything does not count as sent.


def test_a_cancelled_schedule_does_not_block_the_report(
    mailer: Invoke, example: str, smtp_server: Server
) -> None:
    controller, recorder = smtp_server
    env = {**smtp_env(controller.port), **PUBLICATION}
    send = ["send", str(EXAMPLE_REPORT), "--list", example, "--yes"]
    at = f"{datetime.now(UTC).year + 1}-01-01 07:00"  # within a year, as --at allows
    scheduled = mailer(*send, "--at", at, "--tz", "UTC", env=env)
    assert scheduled.exit_code == 0, scheduled.output
    twice = mailer(*send, env=env)
    assert twice.exit_code == 1
    line = one_line(twice.stderr)
    assert "already scheduled for example as campaign 1" in line and at in line
    assert "already sent" not in line and "--again" in line
    assert mailer("campaigns", "cancel", "1").exit_code == 0
    now = mailer(*send, env=env)
    assert now.exit_code == 0, now.output
    assert "campaign 2" in now.stdout and len(recorder.received) == 20
    again = mailer(*send, env=env)  # campaign 2 did send: that one counts
    assert again.exit_code == 1
    assert "already sent to example as campaign 2" in one_line(again.stderr)


# 3. A server that takes no mail from this session: one line, the setting, nothing recorded.


@pytest.fixture
def starttls_only(tmp_path: Path) -> Iterator[Server]:
    yield from serving(tls_context=server_tls(tmp_path), require_starttls=True)


def test_plain_smtp_to_a_starttls_only_server_stops_at_once(
    mailer: Invoke, example: str, starttls_only: Server
) -> None:
    controller, recorder = starttls_only
    env = {**smtp_env(controller.port), **PUBLICATION}
    for args in (["--yes"], ["--test", "me@vale.example"]):
        refused = mailer("send", str(EXAMPLE_REPORT), "--list", example, *args, env=env)
        assert refused.exit_code == 1, refused.output
        line = one_line(refused.stderr)
        assert line.startswith(f"error: SMTP server 127.0.0.1:{controller.port}: ")
        assert "530 Must issue a STARTTLS command first" in line
        assert line.endswith("set [smtp] security = starttls")
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr
    assert recorder.received == []
    secure = {**env, "MAILER_SMTP_SECURITY": "starttls", "MAILER_SMTP_VERIFY_TLS": "false"}
    sent = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", env=secure)
    assert sent.exit_code == 0, sent.output
    assert len(recorder.received) == 20


@pytest.fixture
def login_only() -> Iterator[Server]:
    """Takes mail only after a login, and offers none over plain text: nothing to tell before
    the first MAIL FROM."""
    yield from serving(auth_required=True, auth_require_tls=True)


def test_a_server_that_wants_a_login_stops_the_run_with_nothing_sent(
    mailer: Invoke, example: str, login_only: Server
) -> None:
    controller, recorder = login_only
    env = {**smtp_env(controller.port), **PUBLICATION}
    result = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", env=env)
    assert result.exit_code == 1, result.output
    assert "530 5.7.0 Authentication required" in result.output
    assert "set [smtp] username, and its password in MAILER_SMTP_PASSWORD" in result.output
    assert "Traceback" not in result.output and recorder.received == []
    shown = mailer("campaigns", "show", "1", "--json")
    assert '"sent": 0' in shown.stdout and '"deferred": 0' in shown.stdout


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(530, "5.7.0 Must issue a STARTTLS command first", "mail"), "starttls"),
        (Reply(530, "5.7.0 Authentication required", "mail"), "login"),
        (Reply(530, "5.7.57 Client was not authenticated to send anonymous mail", "rcpt"),
         "login"),
        (Reply(550, "5.7.0 Authentication required", "mail"), "login"),
        (Reply(550, "5.1.1 no such user here", "rcpt"), None),
        (Reply(451, "4.7.1 greylisted, come back later", "rcpt"), None),
        (Reply(553, "5.7.1 sender address rejected", "mail"), None),
        (Reply(530, "5.7.0 Authentication required", "data"), None),
    ],
)  # fmt: skip
def test_which_refusals_are_about_the_session(reply: Reply, expected: str | None) -> None:
    assert session_refusal(reply) == expected

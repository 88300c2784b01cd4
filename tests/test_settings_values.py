"""Every setting is checked for its type and range as settings load: a bad value is one error
line naming mailer.toml:LINE (or the MAILER_ variable) and the key."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from mailer import config
from mailer.config.checks import is_secret, rules
from mailer.errors import ConfigError
from tests.conftest import Invoke

TOO_MANY_PROCESSES = min(os.cpu_count() or 1, 16) + 1

# (section.key, TOML literal) that must be refused; the value sits on line 3 of the file.
BAD = [
    ("send.max_attachment_mb", "-1"),
    ("send.lease_seconds", "0"),
    ("images.mode", '"embedded"'),
    ("newsletter.name", '"Two\\nLines"'),
    ("newsletter.sender", '"a@example.org, b@example.org"'),
    ("newsletter.sender", '"Ada <a@example.org>, Bob <b@example.org>"'),
    ("newsletter.sender", '"Smith, J <a@example.org>"'),
    ("newsletter.sender", '"not an address"'),
    ("newsletter.sender", '""'),
    ("newsletter.sender", '"Ada <a@example.org>\\r\\nBcc: x@evil.example"'),
    ("newsletter.sender", "42"),
    ("newsletter.reply_to", '"a@example.org, b@example.org"'),
    ("newsletter.reply_to", '"letters@"'),
    ("newsletter.reply_to", '"x@example.org\\nBcc: y@example.org"'),
    ("newsletter.postal_address", '"1 Street\\u0000"'),
    ("newsletter.base_url", '"javascript:alert(1)"'),
    ("newsletter.base_url", '"https://x>, <mailto:evil@x>"'),
    ("newsletter.base_url", '"https://news.example.org/a b"'),
    ("newsletter.base_url", "\"https://news.example.org/'x'\""),
    ("newsletter.base_url", '"https://news.example.org/\\"x\\""'),
    ("newsletter.base_url", '"ftp://news.example.org"'),
    ("newsletter.base_url", '"https://"'),
    ("newsletter.base_url", '"news.example.org"'),
    ("newsletter.base_url", '"https://user:pw@news.example.org"'),
    ("newsletter.base_url", '"https://news.example.org/?a=b"'),
    ("newsletter.base_url", '"https://news.example.org:70000"'),
    ("newsletter.base_url", '"https://news.example.org\\n"'),
    ("database.path", '""'),
    ("database.busy_timeout", "-1"),
    ("database.busy_timeout", "nan"),
    ("database.busy_timeout", '"soon"'),
    ("addresses.check_dns", '"maybe"'),
    ("addresses.check_dns", "1"),
    ("smtp.host", '"relay example org"'),
    ("smtp.host", '"relay.example.org\\r\\n"'),
    ("smtp.port", "0"),
    ("smtp.port", "65536"),
    ("smtp.port", "99999999999999999999999"),
    ("smtp.port", "587.5"),
    ("smtp.security", '"ssl"'),
    ("smtp.username", '"ada\\nRCPT TO:<x@example.org>"'),
    ("smtp.timeout", "0"),
    ("smtp.timeout", "-5"),
    ("smtp.timeout", "inf"),
    ("smtp.data_timeout", "0"),
    ("smtp.data_timeout", "86401"),
    ("smtp.concurrency", "0"),
    ("smtp.concurrency", "-1"),
    ("smtp.concurrency", "1001"),
    ("smtp.concurrency", "true"),
    ("smtp.rate", "nan"),
    ("smtp.rate", "inf"),
    ("smtp.rate", "-inf"),
    ("smtp.rate", "-0.5"),
    ("smtp.rate", "1e400"),
    ("smtp.max_per_connection", "0"),
    ("smtp.envelope_sender", '"Bounces <bounces@example.org>"'),
    ("smtp.envelope_sender", '"bounces"'),
    ("smtp.verify_tls", '"nope"'),
    ("send.max_attempts", "0"),
    ("send.max_attempts", "101"),
    ("send.retry_delay", "-1"),
    ("send.retry_delay", "nan"),
    ("send.max_consecutive_failures", "0"),
    ("dkim.domain", '"x y"'),
    ("dkim.domain", '"-bad.example.org"'),
    ("dkim.domain", '"bad_.example.org"'),
    ("dkim.domain", '"example..org"'),
    ("dkim.selector", '""'),
    ("dkim.selector", '"mail er"'),
    ("dkim.selector", '"s;k=rsa"'),
    ("dkim.key_file", '""'),
    ("dkim.processes", "-1"),
    ("dkim.processes", str(TOO_MANY_PROCESSES)),
    ("dkim.processes", "99"),
    ("bounces.verp", '"on-ish"'),
    ("bounces.domain", '"bounces example org"'),
    ("bounces.soft_limit", "-1"),
    ("bounces.soft_window_days", "0"),
    ("bounces.soft_window_days", "999999999"),
    ("outbox.path", '""'),
    ("web.confirm_days", "0"),
    ("web.confirm_days", "-3"),
    ("newsletter.timezone", '"Mars/Olympus"'),
    ("newsletter.timezone", '"../../etc/passwd"'),
    ("schedule.late_after", '"soon"'),
    ("schedule.late_after", '"6 hours"'),
    ("schedule.poll_seconds", "0"),
]

GOOD = [
    ("newsletter.sender", '"Zoë Brontë <zoe@example.org>"'),
    ("newsletter.sender", '"\\"Smith, J\\" <j@example.org>"'),
    ("newsletter.sender", '"bulletin@exämple.de"'),
    ("newsletter.reply_to", '""'),
    ("newsletter.reply_to", '"Letters Desk <letters@example.org>"'),
    ("newsletter.postal_address", '"1 Street\\n1000 City"'),
    ("newsletter.base_url", '"https://news.example.org/bulletin/"'),
    ("newsletter.base_url", '"http://[::1]:8000"'),
    ("smtp.host", '"::1"'),
    ("smtp.host", '"relay-1.example.org"'),
    ("smtp.port", "65535"),
    ("smtp.timeout", "0.5"),
    ("smtp.concurrency", "1000"),
    ("smtp.rate", "0"),
    ("smtp.envelope_sender", '"bounces@example.org"'),
    ("send.retry_delay", "0"),
    ("dkim.selector", '"2026.mailer"'),
    ("dkim.processes", "0"),
    ("dkim.processes", str(TOO_MANY_PROCESSES - 1)),
    ("bounces.soft_limit", "0"),
    ("database.busy_timeout", "0"),
    ("web.confirm_days", "1"),
    ("newsletter.timezone", '"Europe/Paris"'),
    ("newsletter.timezone", '""'),
    ("schedule.late_after", '"30m"'),
    ("schedule.late_after", '"2d"'),
    ("schedule.poll_seconds", "0.05"),
]


def write(workspace: Path, key: str, literal: str) -> Path:
    section, name = key.split(".")
    path = workspace / "mailer.toml"
    path.write_text(f"# settings\n[{section}]\n{name} = {literal}\n", encoding="utf-8")
    return path


def test_every_setting_has_a_check() -> None:
    defaults = config.Settings(workspace=Path("."))
    keys = {
        f"{section}.{item.name}"
        for section in config.SECTIONS
        for item in fields(getattr(defaults, section))
    }
    assert set(rules()) == keys
    # Every key has a bad value below; the secrets have theirs in test_settings_secrets.py.
    assert {key for key, _ in BAD} == {key for key in keys if not is_secret(key)}


def test_every_default_passes_its_check() -> None:
    defaults = config.Settings(workspace=Path("."))
    for key, check in rules().items():
        section, name = key.split(".")
        assert check(getattr(getattr(defaults, section), name)) is None, key


@pytest.mark.parametrize(("key", "literal"), BAD)
def test_a_bad_value_in_the_file_is_one_line_with_file_line_and_key(
    workspace: Path, key: str, literal: str
) -> None:
    path = write(workspace, key, literal)
    with pytest.raises(ConfigError) as caught:
        config.load(workspace, {})
    message = str(caught.value)
    assert (caught.value.key, caught.value.line) == (key, 3)
    assert message.startswith(f"{path}:3: {key}: ")
    assert "\n" not in message and "\r" not in message


@pytest.mark.parametrize(("key", "literal"), GOOD)
def test_good_values_load(workspace: Path, key: str, literal: str) -> None:
    write(workspace, key, literal)
    config.load(workspace, {})


ENV_BAD = {
    "MAILER_SMTP_RATE": "nan",
    "MAILER_SMTP_PORT": "70000",
    "MAILER_SMTP_CONCURRENCY": "5000",
    "MAILER_SMTP_TIMEOUT": "0",
    "MAILER_DKIM_PROCESSES": "99",
    "MAILER_DKIM_SELECTOR": "a b",
    "MAILER_NEWSLETTER_BASE_URL": "javascript:alert(1)",
    "MAILER_NEWSLETTER_SENDER": "a@example.org, b@example.org",
    "MAILER_NEWSLETTER_REPLY_TO": "x@example.org\r\nBcc: y@example.org",
    "MAILER_SMTP_ENVELOPE_SENDER": "Bounces <bounces@example.org>",
    "MAILER_WEB_CONFIRM_DAYS": "0",
    "MAILER_BOUNCES_SOFT_WINDOW_DAYS": "0",
}


@pytest.mark.parametrize(("variable", "value"), sorted(ENV_BAD.items()))
def test_a_bad_environment_value_names_the_variable_and_key(
    workspace: Path, variable: str, value: str
) -> None:
    key = variable.removeprefix("MAILER_").lower().replace("_", ".", 1)
    with pytest.raises(ConfigError) as caught:
        config.load(workspace, {variable: value})
    assert str(caught.value).startswith(f"{variable}: {key}: ")
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_the_error_says_what_fits(workspace: Path) -> None:
    write(workspace, "dkim.processes", "99")
    processes = r"must be at most \d+ \(0 is automatic; the most is the CPU cores, 16\), got 99$"
    with pytest.raises(ConfigError, match=r"dkim\.processes: " + processes):
        config.load(workspace, {})
    write(workspace, "smtp.rate", "nan")
    with pytest.raises(ConfigError, match=r"smtp\.rate: must be finite, got nan$"):
        config.load(workspace, {})
    write(workspace, "smtp.concurrency", "1001")
    with pytest.raises(ConfigError, match=r"smtp\.concurrency: must be at most 1000, got 1001$"):
        config.load(workspace, {})


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ('"javascript:alert(1)"', "newsletter.base_url: must be an http:// or https:// address"),
        ('"https://x>, <mailto:evil@x>"', "newsletter.base_url: must be an http:// or https://"),
    ],
)
def test_a_bad_setting_through_the_cli_is_one_line_and_exit_1(
    mailer: Invoke, workspace: Path, literal: str, expected: str
) -> None:
    path = write(workspace, "newsletter.base_url", literal)
    result = mailer("lists", "ls")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"error: {path}:3: {expected}")


def test_a_bad_environment_value_through_the_cli(mailer: Invoke) -> None:
    result = mailer("lists", "ls", env={"MAILER_SMTP_CONCURRENCY": "0"})
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: MAILER_SMTP_CONCURRENCY: smtp.concurrency: must be at least 1, got '0'"
    )


def test_a_long_bad_value_is_shortened(workspace: Path) -> None:
    write(workspace, "smtp.host", '"' + "a b" * 500 + '"')
    with pytest.raises(ConfigError) as caught:
        config.load(workspace, {})
    assert len(str(caught.value)) < len(str(workspace)) + 200

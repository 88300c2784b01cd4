"""A secret's value (a key whose name says password, secret or token) is never in an error,
whatever is wrong with it and wherever it comes from: mailer.toml or a MAILER_* variable."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from mailer import config
from mailer.config.checks import is_secret
from mailer.errors import ConfigError
from tests.conftest import Invoke

SECRETS = sorted(
    f"{section}.{item.name}"
    for section in config.SECTIONS
    for item in fields(getattr(config.Settings(workspace=Path(".")), section))
    if is_secret(f"{section}.{item.name}")
)

# (TOML literal, pieces of it an error must not show)
WRONG = [
    ("98765432", ["98765432"]),
    ("-98765432", ["98765432"]),
    ("0x5eC2e7", ["5eC2e7", "6210279"]),
    ("31415.9265", ["31415", "9265"]),
    ("6.02e23", ["6.02", "e23", "e+23"]),
    ("nan", ["nan"]),
    ("true", ["True", "true"]),
    ("false", ["False", "false"]),
    ('["hunter2", "swordfish"]', ["hunter2", "swordfish"]),
    ('{ pass = "hunter2" }', ["hunter2", "pass"]),
    ("1979-05-27T07:32:00Z", ["1979", "07:32"]),
    ("1979-05-27", ["1979"]),
    ('"hunter2\\nsecond line"', ["hunter2", "second line"]),
    ('"hunter2\\u0000"', ["hunter2"]),
    ('"hunter2\\r"', ["hunter2"]),
]


def test_the_secrets_are_the_passwords_and_the_database_url() -> None:
    assert SECRETS == ["bounces.imap_password", "database.url", "smtp.password"]
    assert is_secret("web.api_token") and is_secret("x.client_secret")
    assert not is_secret("smtp.username")


@pytest.mark.parametrize("key", SECRETS)
@pytest.mark.parametrize(("literal", "hidden"), WRONG)
def test_a_wrong_secret_in_the_file_is_never_shown(
    workspace: Path, key: str, literal: str, hidden: list[str]
) -> None:
    section, name = key.split(".")
    path = workspace / "mailer.toml"
    path.write_text(f"[{section}]\n{name} = {literal}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(workspace, {})
    message = str(caught.value)
    assert message.startswith(f"{path}:2: {key}: ")
    assert "(the value of a secret is not shown)" in message
    shown = message.removeprefix(f"{path}:2: {key}: ")
    assert [piece for piece in hidden if piece in shown] == []


@pytest.mark.parametrize("key", SECRETS)
@pytest.mark.parametrize("value", ["hunter2\nsecond", "hunter2\x00", "\x1bhunter2", "hunter2\x7f"])
def test_a_wrong_secret_from_the_environment_is_never_shown(
    workspace: Path, key: str, value: str
) -> None:
    variable = "MAILER_" + key.replace(".", "_").upper()
    with pytest.raises(ConfigError) as caught:
        config.load(workspace, {variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}: {key}: must not contain control characters")
    assert "hunter2" not in message and "second" not in message


def test_a_good_secret_loads(workspace: Path) -> None:
    (workspace / "mailer.toml").write_text('[smtp]\npassword = "p@ss w0rd, with \\"quotes\\""\n')
    settings = config.load(workspace, {"MAILER_BOUNCES_IMAP_PASSWORD": "£uro 98765432"})
    assert settings.smtp.password == 'p@ss w0rd, with "quotes"'
    assert settings.bounces.imap_password == "£uro 98765432"


def test_the_cli_does_not_print_a_numeric_password(mailer: Invoke, workspace: Path) -> None:
    (workspace / "mailer.toml").write_text(
        '[smtp]\nhost = "relay.example.org"\npassword = 98765432\n'
    )
    result = mailer("lists", "ls")
    assert result.exit_code == 1
    assert "98765432" not in result.output + result.stderr
    assert result.stderr.strip() == (
        f"error: {workspace / 'mailer.toml'}:3: smtp.password: expected text, got a whole number"
        " (the value of a secret is not shown)"
    )

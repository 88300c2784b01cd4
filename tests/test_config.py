"""Settings: defaults, mailer.toml, MAILER_* overrides, and one-line errors for bad files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailer import config
from mailer.errors import ConfigError


def test_defaults_need_no_file(tmp_path: Path) -> None:
    settings = config.load(tmp_path, {})
    assert settings.smtp.host == ""
    assert settings.smtp.concurrency == 8
    assert settings.database_path == tmp_path / "subscribers" / "mailer.db"


def test_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").write_text('[smtp]\nhost = "relay.example.org"\nport = 465\n')
    settings = config.load(tmp_path, {"MAILER_SMTP_PORT": "2525", "MAILER_SMTP_VERIFY_TLS": "no"})
    assert settings.smtp.host == "relay.example.org"
    assert settings.smtp.port == 2525
    assert settings.smtp.verify_tls is False


def test_default_file_lists_every_key_and_parses(tmp_path: Path) -> None:
    text = config.render_default_file()
    data = tomllib.loads(text)
    defaults = config.Settings(workspace=tmp_path)
    for section in config.SECTIONS:
        group = getattr(defaults, section)
        assert data[section] == {k: getattr(group, k) for k in group.__dataclass_fields__}
    assert text.count("\n# ") >= sum(len(v) for v in data.values())
    (tmp_path / "mailer.toml").write_text(text)
    assert config.load(tmp_path, {}) == defaults


@pytest.mark.parametrize(
    ("content", "line", "key"),
    [
        ('[smtp]\nhost = "x"\nport = "many"\n', 3, "smtp.port"),
        ("[smtp]\nhost = \n", 2, ""),
        ('[newsletter]\nname = "x"\n\n[smtp]\nhots = "typo"\n', 5, "smtp.hots"),
        ('[smpt]\nhost = "x"\n', 1, "smpt"),
        ('[smtp]\nsecurity = "ssl"\n', 2, "smtp.security"),
        ("[smtp]\nconcurrency = -1\n", 2, "smtp.concurrency"),
    ],
)
def test_bad_file_names_file_line_and_key(
    tmp_path: Path, content: str, line: int, key: str
) -> None:
    (tmp_path / "mailer.toml").write_text(content)
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path, {})
    assert caught.value.line == line
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{tmp_path / 'mailer.toml'}:{line}: ")


def test_bad_environment_value_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"MAILER_SMTP_CONCURRENCY: smtp\.concurrency: expected"):
        config.load(tmp_path, {"MAILER_SMTP_CONCURRENCY": "eight"})


def test_password_is_not_in_repr(tmp_path: Path) -> None:
    settings = config.load(tmp_path, {"MAILER_SMTP_PASSWORD": "s3cret-value"})
    assert settings.smtp.password == "s3cret-value"
    assert "s3cret-value" not in repr(settings)


def test_the_config_package_keeps_its_names(tmp_path: Path) -> None:
    import importlib

    assert sorted(config.__all__) == sorted(
        ["CONFIG_NAME", "DOCS", "ENV_PREFIX", "SECTIONS", "AddressSettings", "BounceSettings",
         "DatabaseSettings", "DkimSettings", "NewsletterSettings", "OutboxSettings",
         "SendSettings", "Settings", "SmtpSettings", "WebSettings",
         "environment_without_settings", "load", "render_default_file"]
    )  # fmt: skip
    for name in config.__all__:
        assert getattr(importlib.import_module("mailer.config"), name) is getattr(config, name)
    assert config.load(tmp_path, {}).smtp == config.SmtpSettings()
    assert config.CONFIG_NAME == "mailer.toml" and config.ENV_PREFIX == "MAILER_"

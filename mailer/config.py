"""Settings: embedded defaults, then mailer.toml, then MAILER_* environment variables; frozen."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from mailer.errors import ConfigError

CONFIG_NAME = "mailer.toml"
ENV_PREFIX = "MAILER_"


@dataclass(frozen=True)
class NewsletterSettings:
    """[newsletter]: who sends, and where readers reach the web side."""

    name: str = "The Example Bulletin"
    sender: str = "The Example Bulletin <bulletin@example.org>"
    reply_to: str = ""
    postal_address: str = "Example Bulletin, 1 Example Street, 1000 Example City"
    base_url: str = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DatabaseSettings:
    """[database]: where the SQLite file lives, relative to the workspace."""

    path: str = "subscribers/mailer.db"
    busy_timeout: float = 5.0


@dataclass(frozen=True)
class AddressSettings:
    """[addresses]: validation of addresses."""

    check_dns: bool = False


@dataclass(frozen=True)
class SmtpSettings:
    """[smtp]: the relay; with no host, mail goes to the outbox Maildir instead."""

    host: str = ""
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    concurrency: int = 8
    rate: float = 0.0
    max_per_connection: int = 1000
    envelope_sender: str = ""
    verify_tls: bool = True


@dataclass(frozen=True)
class SendSettings:
    """[send]: retries and the circuit breaker of the send pipeline."""

    max_attempts: int = 4
    retry_delay: float = 30.0
    max_consecutive_failures: int = 50


@dataclass(frozen=True)
class DkimSettings:
    """[dkim]: sign every message; empty domain means no signing."""

    domain: str = ""
    selector: str = "mailer"
    key_file: str = "dkim/private.pem"
    processes: int = 0


@dataclass(frozen=True)
class BounceSettings:
    """[bounces]: VERP return paths and how bounces change a subscriber's status."""

    verp: bool = False
    domain: str = ""
    soft_limit: int = 3
    soft_window_days: int = 30
    imap_password: str = field(default="", repr=False)


@dataclass(frozen=True)
class OutboxSettings:
    """[outbox]: the local Maildir used when no SMTP host is configured."""

    path: str = "outbox"


@dataclass(frozen=True)
class WebSettings:
    """[web]: the readers' side served by `mailer serve`."""

    confirm_days: int = 7


DOCS: dict[str, dict[str, str]] = {
    "newsletter": {
        "name": "Name shown to readers in the footer and the List-Id.",
        "sender": "From header: display name and address.",
        "reply_to": "Optional Reply-To address; empty means none.",
        "postal_address": "Postal address printed in every footer (the law asks for one).",
        "base_url": "Public address of `mailer serve`, used for unsubscribe and archive links.",
    },
    "database": {
        "path": "SQLite database, relative to the workspace.",
        "busy_timeout": "Seconds to wait for a database locked by another mailer process.",
    },
    "addresses": {"check_dns": "Check that address domains accept mail (DNS MX lookups)."},
    "smtp": {
        "host": "SMTP relay host; empty sends to the outbox Maildir instead.",
        "port": "587 for starttls, 465 for tls, 25 for none.",
        "security": "starttls, tls or none.",
        "username": "Login name; empty means no authentication.",
        "password": "Better set MAILER_SMTP_PASSWORD in the environment than write it here.",
        "timeout": "Seconds to wait for the server on each command.",
        "concurrency": "Persistent connections used in parallel.",
        "rate": "Messages per second across all connections; 0 means unlimited.",
        "max_per_connection": "Reconnect after this many messages on one connection.",
        "envelope_sender": "Return path (MAIL FROM); empty means the From address.",
        "verify_tls": "Verify the server's TLS certificate. Turn off only for a test relay.",
    },
    "send": {
        "max_attempts": "Tries per reader for temporary (4xx) failures before leaving it deferred.",
        "retry_delay": "Seconds before the first retry of a deferred message; doubled each time.",
        "max_consecutive_failures": "Pause the campaign after this many failures in a row.",
    },
    "dkim": {
        "domain": "Signing domain (d=); empty turns DKIM signing off.",
        "selector": "Selector (s=): the key is published at SELECTOR._domainkey.DOMAIN.",
        "key_file": "PEM private key (RSA 2048 or Ed25519), relative to the workspace.",
        "processes": "Processes that build and sign messages; 0: one per CPU core but one (1-4).",
    },
    "bounces": {
        "verp": "Envelope sender bounces+TOKEN@DOMAIN, so each bounce names its reader.",
        "domain": "Domain of the VERP address; empty means the From domain.",
        "soft_limit": "Soft bounces within the window before a reader counts as bounced.",
        "soft_window_days": "Days over which soft bounces are counted.",
        "imap_password": "Better set MAILER_BOUNCES_IMAP_PASSWORD than write it here.",
    },
    "outbox": {"path": "Maildir that receives messages when no SMTP host is set."},
    "web": {"confirm_days": "Days a confirmation link stays good."},
}


@dataclass(frozen=True)
class Settings:
    """Every setting of a workspace, resolved."""

    workspace: Path
    newsletter: NewsletterSettings = NewsletterSettings()
    database: DatabaseSettings = DatabaseSettings()
    addresses: AddressSettings = AddressSettings()
    smtp: SmtpSettings = SmtpSettings()
    send: SendSettings = SendSettings()
    dkim: DkimSettings = DkimSettings()
    bounces: BounceSettings = BounceSettings()
    outbox: OutboxSettings = OutboxSettings()
    web: WebSettings = WebSettings()

    @property
    def database_path(self) -> Path:
        return self.workspace / self.database.path

    @property
    def outbox_path(self) -> Path:
        return self.workspace / self.outbox.path

    @property
    def templates_dir(self) -> Path:
        return self.workspace / "templates"


SECTIONS = (
    "newsletter", "database", "addresses", "smtp", "send", "dkim", "bounces", "outbox", "web",
)  # fmt: skip


def environment_without_settings() -> dict[str, str]:
    """This process's environment less the MAILER_* settings (passwords among them), for a
    child process that receives its Settings another way."""
    return {name: value for name, value in os.environ.items() if not name.startswith("MAILER_")}


def load(workspace: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings for ``workspace``: defaults < mailer.toml < MAILER_* variables."""
    environ = os.environ if environ is None else environ
    settings = Settings(workspace=workspace)
    path = workspace / CONFIG_NAME
    if path.exists():
        settings = _apply_file(settings, path)
    return _apply_environment(settings, environ)


def _apply_file(settings: Settings, path: Path) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(str(path), "", error.strerror or str(error)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = _decode_error_line(str(error))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise ConfigError(str(path), "", f"not valid TOML: {reason}", line) from None
    for section, values in data.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise ConfigError(str(path), section, "unknown section", _line_of(text, None, section))
        for key, value in values.items():
            line = _line_of(text, section, key)
            settings = _set(settings, section, key, value, str(path), line)
    return settings


def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    for section in SECTIONS:
        for item in fields(getattr(settings, section)):
            name = f"{ENV_PREFIX}{section}_{item.name}".upper()
            if name in environ:
                settings = _set(settings, section, item.name, environ[name], name, None)
    return settings


def _set(
    settings: Settings, section: str, key: str, value: object, source: str, line: int | None
) -> Settings:
    current = getattr(settings, section)
    kinds = {item.name: item.type for item in fields(current)}
    if key not in kinds:
        raise ConfigError(source, f"{section}.{key}", "unknown setting", line)
    converted = _convert(value, str(kinds[key]), f"{section}.{key}", source, line)
    if section == "smtp" and key == "security" and converted not in ("starttls", "tls", "none"):
        raise ConfigError(source, "smtp.security", "must be starttls, tls or none", line)
    return replace(settings, **{section: replace(current, **{key: converted})})


def _convert(value: object, kind: str, key: str, source: str, line: int | None) -> object:
    from_text = isinstance(value, str) and kind != "str"
    try:
        if kind == "bool":
            if from_text:
                lowered = str(value).strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                return lowered in ("1", "true", "yes", "on")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError
            number = int(value)
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError
            number = float(value)  # type: ignore[assignment]
        else:
            if not isinstance(value, str):
                raise ValueError
            return value
    except ValueError:
        raise ConfigError(
            source, key, f"expected {_KIND_NAMES[kind]}, got {value!r}", line
        ) from None
    if number < 0:
        raise ConfigError(source, key, f"must not be negative, got {value!r}", line)
    return number


_KIND_NAMES = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "text"}


def _decode_error_line(message: str) -> int | None:
    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """Find the line that sets ``key`` (in ``[section]``), for error messages."""
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
            if section is None and current == key:
                return number
        elif current == section and re.match(rf'["\']?{re.escape(key)}["\']?\s*=', line):
            return number
    return None


def render_default_file() -> str:
    """Return a commented mailer.toml that lists every key with its default."""
    defaults = Settings(workspace=Path("."))
    out = [
        "# mailer settings. Every key is shown with its default; delete what you do not change.",
        "# MAILER_<SECTION>_<KEY> environment variables (MAILER_SMTP_HOST, ...) win over it.",
    ]
    for section in SECTIONS:
        group = getattr(defaults, section)
        out += ["", f"[{section}]"]
        for item in fields(group):
            out.append(f"# {DOCS[section][item.name]}")
            out.append(f"{item.name} = {_toml_value(getattr(group, item.name))}")
    return "\n".join(out) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'

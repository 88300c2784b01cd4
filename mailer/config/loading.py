"""Settings resolved: defaults, then mailer.toml, then MAILER_* variables, each value checked."""

from __future__ import annotations

import datetime
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path

from mailer.config.checks import Check, is_secret, rules
from mailer.config.settings import SECTIONS, DatabaseSettings, Settings
from mailer.errors import ConfigError

CONFIG_NAME = "mailer.toml"
ENV_PREFIX = "MAILER_"
DEFAULT_DATABASE = Path(DatabaseSettings().path)  # a workspace's mark, as mailer.toml is
SHOWN = 80  # characters of a bad value shown in an error


def find_workspace(start: Path) -> Path | None:
    """The workspace ``start`` is in, found as git finds a repository: ``start`` or the nearest
    folder above it that holds mailer.toml or the default database; None if there is none."""
    here = start.absolute()
    for folder in (here, *here.parents):
        # lexists: a broken link, or a FIFO, named mailer.toml still marks the workspace, whose
        # settings then refuse it, rather than one above being taken, or none.
        if os.path.lexists(folder / CONFIG_NAME) or (folder / DEFAULT_DATABASE).is_file():
            return folder
    return None


def environment_without_settings() -> dict[str, str]:
    """This process's environment less the MAILER_* settings (passwords among them), for a
    child process that receives its Settings another way."""
    return {name: value for name, value in os.environ.items() if not name.startswith("MAILER_")}


def load(workspace: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings for ``workspace``: defaults < mailer.toml < MAILER_* variables."""
    environ = os.environ if environ is None else environ
    settings = Settings(workspace=workspace)
    checked = rules()
    path = workspace / CONFIG_NAME
    text = read_config(path)
    if text is not None:
        settings = _apply_file(settings, path, text, checked)
    return _apply_environment(settings, environ, checked)


def read_config(path: Path) -> str | None:
    """The text of the settings file ``path``; None when nothing, not even a link, is there.
    Anything else that cannot be read is a ConfigError: a broken or looping link, a folder, a
    FIFO or a device (opened without waiting for a writer, and refused), text not UTF-8. A file
    that is there but unread would leave every setting at its default: SMTP to the outbox."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if isinstance(error, FileNotFoundError) and not path.is_symlink():
            return None
        hint = " (a broken link?)" if path.is_symlink() else ""
        raise ConfigError(str(path), "", f"cannot read: {error.strerror or error}{hint}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ConfigError(str(path), "", "cannot read: not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        try:
            return handle.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(str(path), "", "not UTF-8 text") from None
        except OSError as error:
            raise ConfigError(str(path), "", f"cannot read: {error.strerror or error}") from None


def _apply_file(settings: Settings, path: Path, text: str, checked: dict[str, Check]) -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = _decode_error_line(str(error))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise ConfigError(str(path), "", f"not valid TOML: {reason}", line) from None
    for section, values in data.items():
        if section not in SECTIONS or not isinstance(values, dict):
            line = _line_of(text, None, section)
            raise ConfigError(str(path), _name(section), "unknown section", line)
        for key, value in values.items():
            line = _line_of(text, section, key)
            settings = _set(settings, section, key, value, str(path), line, checked)
    return settings


def _apply_environment(
    settings: Settings, environ: Mapping[str, str], checked: dict[str, Check]
) -> Settings:
    for section in SECTIONS:
        for item in fields(getattr(settings, section)):
            name = f"{ENV_PREFIX}{section}_{item.name}".upper()
            if name in environ:
                settings = _set(settings, section, item.name, environ[name], name, None, checked)
    return settings


def _set(
    settings: Settings,
    section: str,
    key: str,
    value: object,
    source: str,
    line: int | None,
    checked: dict[str, Check],
) -> Settings:
    current = getattr(settings, section)
    kinds = {item.name: item.type for item in fields(current)}
    name = f"{section}.{key}"
    if key not in kinds:
        raise ConfigError(source, _name(name), "unknown setting", line)
    kind = str(kinds[key])
    try:
        converted = _convert(value, kind)
    except (ValueError, OverflowError):
        got = _shown(name, value)
        raise ConfigError(source, name, f"expected {KIND_NAMES[kind]}, got {got}", line) from None
    problem = checked[name](converted)
    if problem is not None:
        raise ConfigError(source, name, f"{problem}, got {_shown(name, value)}", line)
    return replace(settings, **{section: replace(current, **{key: converted})})


def _convert(value: object, kind: str) -> object:
    """``value`` (from TOML, or text from the environment) as a ``kind``; ValueError if not."""
    from_text = isinstance(value, str) and kind != "str"
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
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        return float(value)
    if not isinstance(value, str):
        raise ValueError
    return value


KIND_NAMES = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "text"}


def _shown(key: str, value: object) -> str:
    """How an error shows a bad value: a secret's only by its kind, others shortened."""
    if is_secret(key):
        return f"{_kind_of(value)} (the value of a secret is not shown)"
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 5] + "...'"


def _kind_of(value: object) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"), (int, "a whole number"), (float, "a number"), (str, "text"),
        (list, "an array"), (dict, "a table"),
        ((datetime.date, datetime.time), "a date or time"),
    ]  # fmt: skip
    return next((name for kind, name in kinds if isinstance(value, kind)), "a value")


def _name(text: str) -> str:
    """A section or key name as an error shows it: on one line."""
    return text if text.isprintable() else repr(text)


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


def where_set(
    workspace: Path, section: str, key: str, environ: Mapping[str, str] | None = None
) -> str:
    """Where a setting's value comes from, for a message that says where to change it: the
    MAILER_* variable, PATH:LINE, or "not set in PATH" for its default. PATH is the workspace's
    mailer.toml as the command found it (from a subfolder, or -w, it is not ./mailer.toml)."""
    environ = os.environ if environ is None else environ
    name = f"{ENV_PREFIX}{section}_{key}".upper()
    if name in environ:
        return name
    path = workspace / CONFIG_NAME
    try:
        text = read_config(path)
    except ConfigError:
        text = None
    line = _line_of(text, section, key) if text is not None else None
    return f"{path}:{line}" if line else f"not set in {path}"

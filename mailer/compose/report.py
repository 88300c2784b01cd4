"""A Markdown report with YAML front matter, read into a frozen Report."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from mailer.errors import FileInputError

LANG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
HEADING = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)
MAX_REPORT = 10 * 1024 * 1024  # bytes of a report file
MAX_FRONT_MATTER = 64 * 1024  # characters of its front matter
MAX_DEPTH = 32  # levels of lists and mappings in the front matter
STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


@dataclass(frozen=True)
class Listed:
    """A file the front matter names (an attachment), with the line that names it."""

    name: str
    line: int | None


@dataclass(frozen=True)
class Report:
    """A report as written: metadata from the front matter, the body still Markdown + Jinja."""

    path: Path
    subject: str
    preheader: str
    author: str
    date: str
    lang: str
    meta: dict[str, Any] = field(hash=False)
    body_source: str = ""
    body_line_offset: int = 0  # body line N is line body_line_offset + N of the file
    attachments: tuple[Listed, ...] = ()  # paths relative to the report

    @property
    def padded_body(self) -> str:
        """Return the body behind blank lines so that its line numbers are the file's."""
        return "\n" * self.body_line_offset + self.body_source


def load_report(path: Path) -> Report:
    """Read ``path``: front matter (optional) and body; raise FileInputError with a line."""
    return parse_report(read_source(path), path)


def read_source(path: Path) -> str:
    """A report file's text, as the campaign stores it (at most MAX_REPORT bytes). A NUL is
    refused as a sign of a file that is not text (and no database of PostgreSQL's takes it)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_REPORT + 1)
        if len(data) > MAX_REPORT:
            raise FileInputError(path, f"larger than {MAX_REPORT // 1024 // 1024} MiB")
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FileInputError(path, f"not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise FileInputError(path, f"cannot read: {error.strerror or error}") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise FileInputError(path, "a NUL character: is it a text file?", line)
    return text


def parse_report(text: str, path: Path) -> Report:
    """Split ``text`` into front matter and body, and resolve the metadata."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    meta, body, offset = _split(text, path)
    subject = _text(meta, "subject", path, text) or _first_heading(body)
    if not subject:
        raise FileInputError(path, "no subject: add 'subject:' to the front matter or a # heading")
    lang = _text(meta, "lang", path, text) or "en"
    if not LANG.fullmatch(lang):
        why = f"lang {lang!r} is not a language tag such as en or de-CH"
        raise FileInputError(path, why, front_matter_line(text, "lang"))
    return Report(
        path=path,
        subject=subject,
        preheader=_text(meta, "preheader", path, text),
        author=_text(meta, "author", path, text),
        date=_text(meta, "date", path, text),
        lang=lang,
        meta=meta,
        body_source=body,
        body_line_offset=offset,
        attachments=_files(meta, "attachments", path, text),
    )


def _split(text: str, path: Path) -> tuple[dict[str, Any], str, int]:
    handler = YAMLHandler()
    opening = handler.FM_BOUNDARY.match(text)
    if opening is None:
        return {}, text, 0
    closing = handler.FM_BOUNDARY.search(text, opening.end())
    if closing is None:
        raise FileInputError(path, "front matter opened with --- is never closed", 1)
    yaml_text = text[opening.end() : closing.start()]
    yaml_offset = text[: opening.end()].count("\n")
    if len(yaml_text) > MAX_FRONT_MATTER:
        raise FileInputError(path, f"front matter is longer than {MAX_FRONT_MATTER // 1024} KiB", 1)
    try:
        _scan(yaml_text, path, yaml_offset)
        loaded = handler.load(yaml_text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = yaml_offset + mark.line + 1 if mark is not None else yaml_offset + 1
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise FileInputError(path, f"front matter is not valid YAML: {problem}", line) from None
    except ValueError as error:  # a date YAML reads as one but the calendar has not: 2026-02-30
        line = yaml_offset + 1 + _failing_line(yaml_text)
        raise FileInputError(
            path, f"front matter holds an impossible date: {error}", line
        ) from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise FileInputError(path, "front matter must be key: value pairs", yaml_offset + 1)
    meta = {str(key): _plain(value) for key, value in loaded.items()}
    return meta, text[closing.end() :], text[: closing.end()].count("\n")


def _failing_line(yaml_text: str) -> int:
    """The index of the first line that YAML cannot turn into a value on its own."""
    for index, line in enumerate(yaml_text.splitlines()):
        try:
            yaml.safe_load(line)
        except (ValueError, yaml.YAMLError):
            return index
    return 0


def _scan(yaml_text: str, path: Path, offset: int) -> None:
    """Refuse aliases (``*name``: one line could stand for billions of values) and nesting
    deeper than MAX_DEPTH, before anything is built."""
    depth = 0
    for event in yaml.parse(yaml_text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        line = offset + (event.start_mark.line if event.start_mark else 0) + 1
        if isinstance(event, yaml.AliasEvent):
            raise FileInputError(path, "front matter may not use YAML aliases (*name)", line)
        depth += isinstance(event, STARTS) - isinstance(event, ENDS)
        if depth > MAX_DEPTH:
            raise FileInputError(path, f"front matter is nested over {MAX_DEPTH} levels", line)


def _plain(value: Any) -> Any:
    """Turn YAML dates into ISO strings so templates and headers see text."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _text(meta: dict[str, Any], key: str, path: Path, text: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        line = front_matter_line(text, key)
        raise FileInputError(path, f"front matter '{key}' must be text", line)
    return one_line(str(value))


def one_line(text: str) -> str:
    """``text`` as a subject, a preheader or an author: each run of whitespace one space, every
    other control character (ESC, \\x01, C1) dropped, as no title, header or feed shows it."""
    if not text.isprintable():
        text = "".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc")
    return " ".join(text.split())


def _files(meta: dict[str, Any], key: str, path: Path, text: str) -> tuple[Listed, ...]:
    """The file names of a front matter list (or of one name), each with its line."""
    value = meta.get(key)
    if value is None:
        return ()
    lines = text.splitlines()
    start = front_matter_line(text, key) or 1
    names = value if isinstance(value, list) else [value]
    if not all(isinstance(name, str | int | float) for name in names):  # []: none at all
        raise FileInputError(path, f"front matter '{key}' must be a list of file names", start)
    listed, after = [], start
    taken: Counter[tuple[int, str]] = Counter()  # a name listed twice is on two lines
    for name in map(str, names):
        if not name.strip():
            raise FileInputError(path, f"front matter '{key}' has an empty file name", start)
        found = next((n for n in range(after, len(lines) + 1)
                      if lines[n - 1].count(name) > taken[n, name]), None)  # fmt: skip
        if found:
            taken[found, name] += 1
        after = found or after
        listed.append(Listed(name, found or start))
    return tuple(listed)


def front_matter_line(source: str, key: str) -> int | None:
    """The line of the front matter of ``source`` that gives ``key``."""
    lines = source.removeprefix("\ufeff").splitlines()
    if not lines or not re.fullmatch(r"-{3,}\s*", lines[0]):
        return None
    for number, line in enumerate(lines[1:], 2):
        if re.fullmatch(r"-{3,}\s*", line):
            return None
        if re.match(rf"[\"']?{re.escape(key)}[\"']?\s*:", line):
            return number
    return None


def _first_heading(body: str) -> str:
    """Return the first level-one ATX heading outside fenced code, or ''."""
    fenced = False
    for line in body.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        found = None if fenced else HEADING.match(line)
        if found:
            return one_line(found.group(1))
    return ""

"""One row of an import as a reader arriving, read from the columns of its layout."""

from __future__ import annotations

import ast
import csv
import functools
import ipaddress
import json
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from mailer.audience.addresses import Address
from mailer.audience.cleaning import clean
from mailer.audience.import_formats import LEAVING, STATUS_WORDS, Layout, farther, stronger
from mailer.audience.status.bulk import Standing
from mailer.models import MAX_LANG, Candidate, Consent
from mailer.times import stamp

# Go's time.Time.String(), as listmonk writes its times: "2024-03-14 09:12:31.5 +0000 UTC".
GO_TIME = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)? ([+-]\d\d)(\d\d)(?: \S+)?")
LANG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
SKEW = timedelta(days=1)  # how far past this machine's clock an imported time may be


def language_tag(written: str) -> str | None:
    """A reader's language as stored, a BCP 47 tag (fr, pt-BR): a locale column's spelling
    (fr_FR, de_DE.UTF-8) becomes one; None when it is not a language tag."""
    tag = written.strip().split(".", 1)[0].split("@", 1)[0].replace("_", "-")
    return tag if len(tag) <= MAX_LANG and LANG.fullmatch(tag) else None


class RowError(Exception):
    """A row whose value in one column cannot be taken: why, the value, and its column."""

    def __init__(self, reason: str, value: str = "", column: int = -1) -> None:
        self.reason, self.value, self.column = reason, value, column
        super().__init__(reason)


def time_stamp(text: str) -> str:
    """A time as the database stores it (UTC ISO 8601 to the second); ValueError if it is
    none. ISO 8601 in any of its usual spellings, or Go's; a time without an offset is UTC."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:  # the common case (Mailchimp's), and fast
            return moment.isoformat(timespec="seconds") + "+00:00"
    except ValueError:
        go = GO_TIME.fullmatch(text)
        if go is None:
            raise
        day, clock, fraction, hours, minutes = go.groups()
        fraction = fraction[:7].ljust(7, "0") if fraction else ""  # Go trims, ISO wants 6 digits
        moment = datetime.fromisoformat(f"{day}T{clock}{fraction}{hours}:{minutes}")
    try:
        return stamp(moment)
    except OverflowError:  # 9999-12-31T23:59-01:00 is past the last day UTC can hold
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from None


@functools.lru_cache(maxsize=4096)  # a list has few distinct sets of tags
def tags_of(text: str, separator: str) -> tuple[str, ...]:
    """The tags in one cell: separated by ``separator`` (or by any of its characters), each
    possibly quoted (Mailchimp writes ``"vip","press"``); cleaned, without blanks or repeats."""
    if not text:
        return ()
    for other in separator[1:]:
        text = text.replace(other, separator[0])
    separator = separator[0]
    if '"' in text:
        parts = next(csv.reader([text], delimiter=separator, skipinitialspace=True), [])
    else:
        parts = text.split(separator)
    return tuple(dict.fromkeys(tag for part in parts if (tag := clean(part).strip())))


def object_of(text: str) -> dict[Any, Any] | None:
    """A JSON object (listmonk's attributes), or a Python dict's repr (Buttondown's metadata);
    None for anything else."""
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


class Arrival(NamedTuple):
    """One row, read: the reader it describes and the status it gives them (None: they join
    as the editor's additions do). Plain values, cheap to send between processes."""

    line: int
    written: str  # the address as the file has it
    email: str
    smtputf8: bool
    name: str | None
    attributes: dict[str, str]
    source: str
    joined_at: str
    confirmed_at: str
    ip: str
    tags: tuple[str, ...]
    lang: str
    status: str | None
    status_at: str
    problems: tuple[tuple[str, str], ...] = ()  # (why, value): values left out of a departure

    def candidate(self) -> Candidate:
        consent = Consent(self.source, self.joined_at, self.confirmed_at, self.ip)
        return Candidate(self.email, self.smtputf8, self.name, self.attributes, self.line,
                         consent, self.tags, self.lang)  # fmt: skip

    def standing(self) -> Standing | None:
        return None if self.status is None else Standing(self.status, self.status_at)


class RowReader:
    """Reads the rows of one file, by its layout, as Arrivals. A million rows may go through
    here: what a layout does not have costs nothing."""

    def __init__(self, layout: Layout, source: str) -> None:
        self.layout, self.source = layout, source
        get = layout.fields.get
        self.name = get("name")
        self.first_name, self.last_name = get("first_name"), get("last_name")
        self.status, self.status_at, self.ip = get("status"), get("status_at"), get("ip")
        self.joined_at, self.confirmed_at = get("joined_at"), get("confirmed_at")
        self.sources, self.tags, self.lang = get("source"), get("tags"), get("lang")
        self.attributes = tuple((name, column) for column, name in layout.attributes)
        self.also = layout.also_status
        self.fixed = None if self.status or self.also else self._forced(layout.status)
        self.leaving = layout.leaving
        self.latest = stamp(datetime.now(UTC) + SKEW)  # a later time has not happened yet

    def read(self, cells: Sequence[str], address: Address, line: int) -> Arrival:
        """The reader a row describes; RowError for a value that cannot be taken, unless the
        row says its reader left: a bad time, IP or language beside it must not keep them on
        the list, so the departure stands without the bad values, listed as its problems."""
        try:
            return self._read(cells, address, line)
        except RowError as error:
            return self._salvage(cells, address, line, error)

    def _salvage(
        self, cells: Sequence[str], address: Address, line: int, error: RowError
    ) -> Arrival:
        gone = self._left(cells, None)  # read before a bad time in such a column is blanked
        kept, problems = list(cells), []
        while 0 <= error.column < len(kept) and kept[error.column]:
            problems.append(error)
            kept[error.column] = ""
            try:
                arrival = self._read(kept, address, line)
                break
            except RowError as again:
                error = again
        else:
            raise (problems or [error])[0]
        status = stronger(arrival.status, gone)
        if status not in LEAVING:
            raise problems[0]
        shown = tuple((problem.reason, problem.value) for problem in problems)
        return arrival._replace(status=status, problems=shown)

    def _left(self, cells: Sequence[str], status: str | None) -> str | None:
        """The row's status, or the departure a LEFT_COLUMNS column gives, if deeper."""
        for column, gone in self.leaving:
            if cells[column].strip():
                status = stronger(status, gone)
        return status

    def _read(self, cells: Sequence[str], address: Address, line: int) -> Arrival:
        first = self._first
        name = clean(first(cells, self.name)[1]).strip() if self.name else None
        if not name and (self.first_name or self.last_name):
            parts = (first(cells, self.first_name)[1], first(cells, self.last_name)[1])
            name = " ".join(part for p in parts if (part := clean(p).strip()))
        joined_at = self._time(cells, self.joined_at)
        confirmed_at = self._time(cells, self.confirmed_at)
        ip = self._ip(cells) if self.ip else ""
        source = clean(first(cells, self.sources)[1]).strip() if self.sources else ""
        at, written = first(cells, self.lang) if self.lang else (-1, "")
        written = clean(written).strip()
        lang = language_tag(written) if written else ""
        if lang is None:
            raise RowError("invalid language tag (BCP 47, such as en or pt-BR)", written, at)
        tags = tags_of(first(cells, self.tags)[1], self.layout.tag_separator) if self.tags else ()
        # clean() inlined: most cells are printable, and there are many of them
        attributes = {name: value for name, column in self.attributes
                      if (raw := cells[column])
                      and (value := raw if raw.isprintable() else clean(raw))}  # fmt: skip
        if self.layout.json_columns:
            attributes = {**self._objects(cells), **attributes}
        if self.status is None and not self.also:
            status = self.fixed
        else:
            own = self._status(cells) if self.status else self.layout.status
            status = self._forced(self._also(cells, own) if self.also else own)
        if self.leaving:
            status = self._left(cells, status)
        status_at = self._time(cells, self.status_at) if status is not None else ""
        return Arrival(line, cells[self.layout.email], address.email, address.smtputf8, name,
                       attributes, source or self.source, joined_at or confirmed_at,
                       confirmed_at, ip, tags, lang, status, status_at)  # fmt: skip

    def _first(self, cells: Sequence[str], columns: tuple[int, ...] | None) -> tuple[int, str]:
        """The first of ``columns`` with a value, and that value ('' when none has one)."""
        for column in columns or ():
            if cells[column].strip():
                return column, cells[column]
        return -1, ""

    def _time(self, cells: Sequence[str], columns: tuple[int, ...] | None) -> str:
        column, text = self._first(cells, columns)
        if not text:
            return ""
        try:
            moment = time_stamp(text)
            if moment <= self.latest:  # both UTC ISO 8601 to the second: in order as text
                return moment
            why = f"in the future: after {self.latest}, a day from now"
        except ValueError:
            why = "expected ISO 8601, such as 2024-03-14 09:12:31 or 2024-03-14T09:12:31Z"
        name = self.layout.names[column]
        raise RowError(f"invalid time in {name} ({why})", text, column)

    def _ip(self, cells: Sequence[str]) -> str:
        column, text = self._first(cells, self.ip)
        if not (text := text.strip()):
            return ""
        try:
            socket.inet_pton(socket.AF_INET, text)  # the common case, and fast
            return text
        except OSError:
            pass
        try:
            return str(ipaddress.ip_address(text))  # IPv6, in its short form
        except ValueError:
            name = self.layout.names[column]
            raise RowError(f"invalid IP address in {name}", text, column) from None

    def _forced(self, own: str | None) -> str | None:
        """The row's status as --status leaves it: no option brings back a reader the file
        says left, nor moves them nearer to mail (a bounced row stays bounced under
        --status unsubscribed: of the two, the one further from mail stands)."""
        forced = self.layout.forced
        if forced is None:
            return own
        return stronger(own, forced) if own in LEAVING else forced

    def _status(self, cells: Sequence[str]) -> str | None:
        column, text = self._first(cells, self.status)
        if not text:
            return self.layout.status
        return self._word(text, column, self.layout.words, self.layout.guessed)

    def _word(
        self, text: str, column: int, words: Mapping[str, str | None], guessed: bool
    ) -> str | None:
        word = clean(text).strip().lower()
        if word not in words:
            known = ", ".join(w for w in words if w)
            name = self.layout.names[column]
            hint = f'; not a status? --map "{name}=attribute:{name}"' if guessed else ""
            raise RowError(f"unknown status in {name} ({known}{hint})", text, column)
        return words[word]

    def _also(self, cells: Sequence[str], status: str | None) -> str | None:
        """``status`` with what a generic status column in a tool's export says (Mailchimp's
        Status): of the two, the one further from mail."""
        for column in self.also:
            if text := cells[column].strip():
                status = farther(status, self._word(text, column, STATUS_WORDS, True))
        return status

    def _objects(self, cells: Sequence[str]) -> dict[str, str]:
        """The attributes in JSON columns (listmonk's attributes, Buttondown's metadata): each
        key of the object, its value as text; a column that holds no object, as it is."""
        attributes: dict[str, str] = {}
        for column in self.layout.json_columns:
            found = object_of(cells[column])
            if found is None:
                if value := clean(cells[column]):
                    attributes[self.layout.names[column]] = value
                continue
            for key, value in found.items():
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                if value is not None and (name := clean(str(key)).strip()) and clean(text):
                    attributes[name] = clean(text)
        return attributes

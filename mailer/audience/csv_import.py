"""Import readers from CSV in committed chunks: good rows land, each bad one is reported."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailer.audience import subscriptions
from mailer.audience.addresses import normalise
from mailer.db.database import IN_JSON, Database, as_json
from mailer.errors import AddressError, FileInputError
from mailer.models import Candidate, MailingList

EMAIL_HEADERS = {"email", "e-mail", "email address", "e-mail address", "emailaddress", "mail"}
NAME_HEADERS = {"name", "full name", "fullname"}
DELIMITERS = (",", ";", "\t")
CHUNK = 5000
LONE_CR = re.compile(rb"(?<=\r)(?!\n)")
SUMMARY_KEYS = ("added", "updated", "unchanged", "skipped", "invalid", "duplicate-in-file")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One row that was not imported: where, what, why."""

    path: Path
    line: int
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}" + (
            f": {self.value!r}" if self.value else ""
        )


@dataclass
class ImportSummary:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMARY_KEYS, 0))

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _lines(
    path: Path, handle: Iterator[bytes], on_bad: Callable[[int, str], None]
) -> Iterator[str]:
    """Decode line by line so an undecodable byte is reported on its own line, not a chunk's.

    Lines end at \n, \r\n or a lone \r, as with ``open(newline="")``, which csv expects.
    """
    number = 0
    for raw in handle:
        if number == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        pieces = LONE_CR.split(raw) if b"\r" in raw[:-2] else [raw]
        for piece in pieces:
            number += 1
            try:
                yield piece.decode("utf-8")
            except UnicodeDecodeError as error:
                at = f"byte 0x{piece[error.start]:02x} at column {error.start + 1}"
                on_bad(number, f"not UTF-8 ({at})")
                yield "\n"  # keeps csv's line count in step; an empty row is skipped


@dataclass
class _Columns:
    email: int
    name: int | None
    attributes: list[tuple[int, str]]
    width: int


def _columns(path: Path, header: Sequence[str]) -> _Columns:
    names = [h.strip() for h in header]
    lowered = [n.lower() for n in names]
    emails = [i for i, n in enumerate(lowered) if n in EMAIL_HEADERS]
    if not emails:
        raise FileInputError(path, f"no email column in the header {names}", 1)
    if len(emails) > 1:
        raise FileInputError(path, "more than one email column in the header", 1)
    if "" in names:
        raise FileInputError(path, f"column {names.index('') + 1} of the header has no name", 1)
    duplicates = {n for n in lowered if lowered.count(n) > 1}
    if duplicates:
        raise FileInputError(
            path, f"column {sorted(duplicates)[0]!r} appears twice in the header", 1
        )
    name = next((i for i, n in enumerate(lowered) if n in NAME_HEADERS), None)
    attributes = [(i, n) for i, n in enumerate(names) if i not in (emails[0], name)]
    return _Columns(emails[0], name, attributes, len(names))


def import_csv(
    database: Database,
    mailing_list: MailingList,
    path: Path,
    *,
    on_problem: Callable[[RowProblem], None],
    resubscribe: bool = False,
    confirmed: bool = False,
    dry_run: bool = False,
    check_dns: bool = False,
) -> ImportSummary:
    """Import ``path`` into ``mailing_list`` in committed chunks; bad rows go to ``on_problem``."""
    summary = ImportSummary()
    counts = summary.counts

    def bad(line: int, reason: str, value: str = "") -> None:
        counts["invalid"] += 1
        on_problem(RowProblem(path, line, value, reason))

    try:
        handle = path.open("rb")
    except OSError as error:
        raise FileInputError(path, f"cannot read: {error.strerror}") from None
    with handle:
        first = handle.readline()
        try:
            header_text = first.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        except UnicodeDecodeError:
            raise FileInputError(path, "the header is not UTF-8 text", 1) from None
        if not header_text.strip():
            raise FileInputError(path, "empty file: expected a header row with an email column", 1)
        delimiter = max(DELIMITERS, key=header_text.count)
        handle.seek(0)
        reader = csv.reader(_lines(path, handle, bad), delimiter=delimiter)
        try:
            columns = _columns(path, next(reader))
        except csv.Error as error:
            raise FileInputError(path, f"bad header: {error}", 1) from None
        _start_seen(database)
        chunk: dict[str, Candidate] = {}
        line = reader.line_num
        while True:
            try:
                fields = next(reader, None)
            except csv.Error as error:
                bad(reader.line_num, f"unreadable row: {error}")
                continue
            if fields is None:
                break
            row_line, line = line + 1, reader.line_num
            if not fields or fields == [""]:
                continue
            if len(fields) != columns.width:
                bad(row_line, f"{len(fields)} fields where the header has {columns.width}")
                continue
            raw_email = fields[columns.email]
            try:
                address = normalise(raw_email, check_dns=check_dns)
            except AddressError as error:
                bad(row_line, f"invalid address: {error.reason}", raw_email)
                continue
            if address.email in chunk:
                counts["duplicate-in-file"] += 1
                on_problem(RowProblem(path, row_line, raw_email, "duplicate in file, ignored"))
                continue
            name = fields[columns.name].strip() if columns.name is not None else None
            attributes = {key: fields[i] for i, key in columns.attributes if fields[i] != ""}
            chunk[address.email] = Candidate(
                address.email, address.smtputf8, name, attributes, row_line
            )
            if len(chunk) >= CHUNK:
                _flush(
                    database,
                    mailing_list,
                    chunk,
                    counts,
                    on_problem,
                    path,
                    resubscribe,
                    confirmed,
                    dry_run,
                )
        _flush(
            database, mailing_list, chunk, counts, on_problem, path, resubscribe, confirmed, dry_run
        )
    return summary


def _flush(
    database: Database,
    mailing_list: MailingList,
    chunk: dict[str, Candidate],
    counts: dict[str, int],
    on_problem: Callable[[RowProblem], None],
    path: Path,
    resubscribe: bool,
    confirmed: bool,
    dry_run: bool,
) -> None:
    if not chunk:
        return
    seen = _already_seen(database, chunk)
    for email in seen:
        counts["duplicate-in-file"] += 1
        on_problem(RowProblem(path, chunk[email].line, email, "duplicate in file, ignored"))
    fresh = [c for c in chunk.values() if c.email not in seen]
    outcomes = subscriptions.add(
        database, mailing_list, fresh, resubscribe=resubscribe, confirmed=confirmed, dry_run=dry_run
    )
    for outcome in outcomes:
        counts[outcome.value] += 1
    chunk.clear()


def _start_seen(database: Database) -> None:
    """A temporary table of the addresses met so far, to find duplicates across chunks."""
    database.execute("CREATE TEMP TABLE IF NOT EXISTS seen (email TEXT PRIMARY KEY) WITHOUT ROWID")
    database.execute("DELETE FROM seen")


def _already_seen(database: Database, emails: Iterable[str]) -> set[str]:
    """Record ``emails`` as seen in this import; return those that were seen before."""
    batch = as_json(emails)
    before = {
        row[0]
        for row in database.query(f"SELECT email FROM seen WHERE email IN {IN_JSON}", (batch,))
    }
    database.execute("INSERT OR IGNORE INTO seen SELECT value FROM json_each(?)", (batch,))
    return before

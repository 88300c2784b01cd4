"""Import readers from CSV in committed chunks: good rows land, each bad one is reported."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailer.audience import subscriptions
from mailer.audience.addresses import normalise
from mailer.audience.cleaning import clean
from mailer.audience.formulas import live
from mailer.db.database import IN_JSON, Database, as_json
from mailer.errors import AddressError, FileInputError
from mailer.models import Candidate, MailingList

EMAIL_HEADERS = {"email", "e-mail", "email address", "e-mail address", "emailaddress", "mail"}
NAME_HEADERS = {"name", "full name", "fullname"}
DELIMITERS = (",", ";", "\t")
CHUNK = 5000
MAX_LINE = 64 * 1024  # bytes in one line; a longer line is a bad row, a longer header an error
SHOWN = 60  # characters of a bad line shown with its problem
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


@dataclass(frozen=True, slots=True)
class _Line:
    """One physical line: its text (with its line break), or why it cannot be read."""

    number: int
    text: str = ""
    problem: str = ""
    too_long: bool = False


def _lines(handle: BinaryIO) -> Iterator[_Line]:
    """The file's lines, each read whole but never more than MAX_LINE bytes of it: a longer one
    is a problem, skipped to its end with bounded memory. A line that is not UTF-8 is a problem
    on its own line. Lines end at \n, \r\n or a lone \r, as with ``open(newline="")``."""
    number = 0
    while raw := handle.readline(MAX_LINE + 1):
        if number == 0:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            number += 1
            yield _Line(number, problem=f"line longer than {MAX_LINE // 1024} KiB", too_long=True)
            while raw and not raw.endswith(b"\n"):  # to the line's end, if there is one
                raw = handle.readline(MAX_LINE)
            continue
        for piece in LONE_CR.split(raw) if b"\r" in raw[:-2] else [raw]:
            number += 1
            try:
                yield _Line(number, piece.decode("utf-8"))
            except UnicodeDecodeError as error:
                at = f"byte 0x{piece[error.start]:02x} at column {error.start + 1}"
                yield _Line(number, problem=f"not UTF-8 ({at})")


class FieldError(Exception):
    """A line that is not a CSV row: why, and the start of the line."""

    def __init__(self, reason: str, shown: str) -> None:
        self.reason, self.shown = reason, shown
        super().__init__(reason)


def _fields(line: _Line, delimiter: str) -> list[str]:
    """The cells of one line. A quoted field ends on its own line: one that runs on is an
    unterminated quote (FieldError), and the next line is read as a row of its own."""
    try:
        return next(csv.reader([line.text], delimiter=delimiter, strict=True), [])
    except csv.Error as error:
        shown = line.text.rstrip("\r\n")
        shown = shown if len(shown) <= SHOWN else shown[: SHOWN - 3] + "..."
        if str(error) == "unexpected end of data":
            raise FieldError(
                "unterminated quote: a quoted field must end on the line it starts on", shown
            ) from None
        raise FieldError(f"bad quoting ({error})", shown) from None


@dataclass
class _Columns:
    email: int
    name: int | None
    attributes: list[tuple[int, str]]
    width: int


def _columns(path: Path, header: Sequence[str]) -> _Columns:
    names = [clean(live(h)).strip() for h in header]
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


def _header(path: Path, lines: Iterator[_Line]) -> tuple[_Columns, str]:
    """The columns named by the first line, and the delimiter it uses."""
    first = next(lines, _Line(1))
    if first.too_long:
        raise FileInputError(path, f"the header is longer than {MAX_LINE // 1024} KiB", 1)
    if first.problem:
        raise FileInputError(path, "the header is not UTF-8 text", 1)
    if not first.text.strip():
        raise FileInputError(path, "empty file: expected a header row with an email column", 1)
    delimiter = max(DELIMITERS, key=first.text.count)
    try:
        return _columns(path, _fields(first, delimiter)), delimiter
    except FieldError as error:
        raise FileInputError(path, f"bad header: {error.reason}", 1) from None


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
    """Import ``path`` into ``mailing_list`` in committed chunks; bad rows go to ``on_problem``.

    Names and attributes are cleaned of control characters; a cell that export escaped as a
    formula loses exactly that escape."""
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
        lines = _lines(handle)
        columns, delimiter = _header(path, lines)
        _start_seen(database)
        chunk: dict[str, Candidate] = {}
        for line in lines:
            if line.problem:
                bad(line.number, line.problem)
                continue
            try:
                fields = [live(cell) for cell in _fields(line, delimiter)]
            except FieldError as error:
                bad(line.number, error.reason, error.shown)
                continue
            if not fields or fields == [""]:
                continue
            if len(fields) != columns.width:
                bad(line.number, f"{len(fields)} fields where the header has {columns.width}")
                continue
            raw_email = fields[columns.email]
            try:
                address = normalise(raw_email, check_dns=check_dns)
            except AddressError as error:
                bad(line.number, f"invalid address: {error.reason}", raw_email)
                continue
            if address.email in chunk:
                counts["duplicate-in-file"] += 1
                on_problem(RowProblem(path, line.number, raw_email, "duplicate in file, ignored"))
                continue
            name = clean(fields[columns.name]).strip() if columns.name is not None else None
            attributes = {k: value for i, k in columns.attributes if (value := clean(fields[i]))}
            chunk[address.email] = Candidate(
                address.email, address.smtputf8, name, attributes, line.number
            )
            if len(chunk) >= CHUNK:
                _flush(database, mailing_list, chunk, counts, on_problem, path,
                       resubscribe, confirmed, dry_run)  # fmt: skip
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

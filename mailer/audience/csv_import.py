"""Import readers from CSV in committed chunks: another tool's export, or any CSV with --map."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailer.audience.arrivals import land
from mailer.audience.csv_lines import MAX_LINE, FieldError, Line, cells, lines
from mailer.audience.import_formats import LEAVING, Layout, plan, stronger
from mailer.audience.import_reading import Reading, read_rows, workers_for
from mailer.audience.import_rows import Arrival
from mailer.audience.status.bulk import LEAVING as CHANGES
from mailer.audience.status.bulk import Standing
from mailer.db.database import Database, as_json
from mailer.errors import FileInputError, InputError
from mailer.models import Candidate, MailingList

DELIMITERS = (",", ";", "\t")
CHUNK = 5000
SUMMARY_KEYS = ("added", "updated", "unchanged", "skipped", "invalid", "duplicate-in-file",
                "erased")  # fmt: skip
LEFT = tuple(CHANGES)  # unsubscribed, bounced, blocklisted: as the summary names them
CHECKPOINT_PAGES = 16 * 1024  # the WAL may grow to 64 MiB while an import writes


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One row that was not imported: where, what, why."""

    path: Path
    line: int
    value: str
    reason: str
    note: str = ""  # what became of the row all the same

    def __str__(self) -> str:
        value = f": {self.value!r}" if self.value else ""
        return f"{self.path}:{self.line}: {self.reason}{value}" + (
            f"; {self.note}" if self.note else ""
        )


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to read the file and what its rows may do: the import command's options."""

    mapping: tuple[str, ...] = ()  # --map COLUMN=FIELD
    status: str | None = None  # --status: the status of every row
    resubscribe: bool = False
    confirmed: bool = False
    dry_run: bool = False
    check_dns: bool = False
    workers: int | None = None  # processes reading rows; None: by the file's size


@dataclass
class ImportSummary:
    """The counts of an import, how many rows the file says left, and its format."""

    format: str = ""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMARY_KEYS, 0))
    left: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEFT, 0))

    def __str__(self) -> str:
        parts = [", ".join(f"{self.counts[k]} {k}" for k in SUMMARY_KEYS)]
        if any(self.left.values()):
            parts.append(", ".join(f"{n} {status}" for status, n in self.left.items() if n))
        return "; ".join([*parts, f"format: {self.format}"])


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as error:
        raise FileInputError(path, f"cannot read: {error.strerror}") from None


def _header(path: Path, rows: Iterator[Line], options: ImportOptions) -> tuple[Layout, str]:
    """The layout the first line gives, and the delimiter it uses."""
    if options.confirmed and options.status is not None:
        raise InputError("--confirmed and --status cannot be used together")
    first = next(rows, Line(1))
    if first.too_long:
        raise FileInputError(path, f"the header is longer than {MAX_LINE // 1024} KiB", 1)
    if first.problem:
        raise FileInputError(path, "the header is not UTF-8 text", 1)
    if not first.text.strip():
        raise FileInputError(path, "empty file: expected a header row with an email column", 1)
    delimiter = max(DELIMITERS, key=first.text.count)
    try:
        header = cells(first, delimiter)
    except FieldError as error:
        raise FileInputError(path, f"bad header: {error.reason}", 1) from None
    return plan(path, header, options.mapping, options.status), delimiter


def read_layout(path: Path, options: ImportOptions = ImportOptions()) -> Layout:
    """The layout of ``path`` (its format, its columns), or the error its header or the
    options give: for checking before anything is written."""
    with _open(path) as handle:
        return _header(path, lines(handle), options)[0]


def import_csv(
    database: Database,
    mailing_list: MailingList,
    path: Path,
    *,
    on_problem: Callable[[RowProblem], None],
    secret: bytes,
    options: ImportOptions = ImportOptions(),
) -> ImportSummary:
    """Import ``path`` into ``mailing_list`` in committed chunks; bad rows go to ``on_problem``.
    Each membership's consent is ``import:FILENAME`` with the times and IP the file has;
    an address erased at the reader's request (its keyed hash made with ``secret``) stays out.

    Names and attributes are cleaned of control characters; a cell that export escaped as a
    formula loses exactly that escape."""
    summary = ImportSummary()
    counts = summary.counts

    def bad(line: int, reason: str, value: str = "") -> None:
        counts["invalid"] += 1
        on_problem(RowProblem(path, line, value, reason))

    with _open(path) as handle, database.fewer_checkpoints(CHECKPOINT_PAGES), _analyzed(database):
        rows = lines(handle)
        layout, delimiter = _header(path, rows, options)
        summary.format = layout.format
        reading = Reading(layout, delimiter, f"import:{path.name}", options.check_dns)
        workers = options.workers
        if workers is None:
            workers = workers_for(os.fstat(handle.fileno()).st_size)
        chunk = _Chunk(database, mailing_list, path, secret, options, summary, on_problem)
        _start_seen(database)
        gone = f"@{layout.gone_domain}" if layout.gone_domain else None
        with closing(read_rows(rows, reading, workers)) as batches, _worker_lost(path):
            for batch in batches:
                for row in batch:
                    if not isinstance(row, Arrival):
                        bad(*row)
                        continue
                    if row.problems:  # it says the reader left: that stands without them
                        counts["invalid"] += 1
                        note = f"the row's {row.status} is applied without this value"
                        for reason, value in row.problems:
                            on_problem(RowProblem(path, row.line, value, reason, note))
                    if gone is not None and row.email.endswith(gone):
                        counts["erased"] += 1  # the tool's stand-in for a reader erased
                    elif row.email in chunk.candidates:
                        chunk.duplicate(row.line, row.written, row.email, row.standing())
                    else:
                        chunk.add(row.candidate(), row.standing())
                        if len(chunk.candidates) >= CHUNK:
                            chunk.flush()
        chunk.flush()
    return summary


@dataclass
class _Chunk:
    """Rows waiting to land together, in one transaction."""

    database: Database
    mailing_list: MailingList
    path: Path
    secret: bytes
    options: ImportOptions
    summary: ImportSummary
    on_problem: Callable[[RowProblem], None]
    candidates: dict[str, Candidate] = field(default_factory=dict)
    standings: dict[str, Standing] = field(default_factory=dict)

    def duplicate(self, line: int, shown: str, email: str, standing: Standing | None) -> None:
        """A later row of an address read before is ignored, unless it says the reader left
        (deeper than the row before): a departure always wins."""
        self.summary.counts["duplicate-in-file"] += 1
        before = self.standings.get(email)
        was = before.status if before else None
        if standing is not None and stronger(was, standing.status) != was:
            self.standings[email] = standing
            why = f"duplicate in file: its {standing.status} applies"
        else:
            why = "duplicate in file, ignored"
        self.on_problem(RowProblem(self.path, line, shown, why))

    def add(self, candidate: Candidate, standing: Standing | None) -> None:
        self.candidates[candidate.email] = candidate
        if standing is not None:
            self.standings[candidate.email] = standing

    def flush(self) -> None:
        if not self.candidates:
            return
        counts, options = self.summary.counts, self.options
        seen = _already_seen(self.database, self.candidates)
        for email in seen:  # in an earlier chunk: only a departure lands (and keeps its standing)
            standing = self.standings.pop(email, None)
            self.duplicate(self.candidates[email].line, email, email, standing)
        fresh = [c for c in self.candidates.values()
                 if c.email not in seen or c.email in self.standings]  # fmt: skip
        landed = land(
            self.database, self.mailing_list, fresh, secret=self.secret,
            standings=self.standings, resubscribe=options.resubscribe,
            confirmed=options.confirmed, dry_run=options.dry_run,
            detail=f"import:{self.path.name}",
        )  # fmt: skip
        counts["erased"] += len(landed.erased - seen)
        for email, outcome in landed.outcomes.items():
            counts[outcome.value] += email not in seen  # a duplicate is counted as one
            standing = self.standings.get(email)
            if standing is not None and standing.status in LEAVING:
                self.summary.left[standing.status] += 1
        self.candidates.clear()
        self.standings.clear()


@contextmanager
def _worker_lost(path: Path) -> Iterator[None]:
    try:
        yield
    except BrokenProcessPool:  # killed, out of memory: what it read so far has landed
        raise FileInputError(
            path, "a process reading it stopped; run the same import again"
        ) from None


@contextmanager
def _analyzed(database: Database) -> Iterator[None]:
    """The tables an import filled, analysed once it is done (PostgreSQL plans by them)."""
    yield
    database.analyze("subscribers", "memberships", "events", "tags")


def _start_seen(database: Database) -> None:
    """A temporary table of the addresses met so far, to find duplicates across chunks."""
    database.execute("CREATE TEMP TABLE IF NOT EXISTS seen (email TEXT PRIMARY KEY) WITHOUT ROWID")
    database.execute("DELETE FROM seen")


def _already_seen(database: Database, emails: Iterable[str]) -> set[str]:
    """Record ``emails`` as seen in this import; return those that were seen before (those
    the insert left out): one statement a chunk."""
    batch = list(emails)
    added = database.query(
        "INSERT OR IGNORE INTO seen SELECT value FROM json_each(?) RETURNING email",
        (as_json(batch),),
    )
    return set(batch).difference(row[0] for row in added)

"""Import readers from CSV in committed chunks: another tool's export, or any CSV with --map."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mailer.audience.arrivals import land
from mailer.audience.csv_lines import MAX_LINE, FieldError, Line, cells, lines
from mailer.audience.import_chunks import Ahead, Chunk, RowProblem, gathered
from mailer.audience.import_formats import LEAVING, Layout, plan
from mailer.audience.import_reading import Reading, workers_for
from mailer.audience.status.bulk import LEAVING as CHANGES
from mailer.db.database import Database
from mailer.errors import FileInputError, InputError
from mailer.models import MailingList

DELIMITERS = (",", ";", "\t")
SUMMARY_KEYS = ("added", "updated", "unchanged", "skipped", "invalid", "duplicate-in-file",
                "erased")  # fmt: skip
LEFT = tuple(CHANGES)  # unsubscribed, bounced, blocklisted: as the summary names them
CHECKPOINT_PAGES = 16 * 1024  # the WAL may grow to 64 MiB while an import writes


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
    with _open(path) as handle, database.fewer_checkpoints(CHECKPOINT_PAGES), _analyzed(database):
        rows = lines(handle)
        layout, delimiter = _header(path, rows, options)
        summary.format = layout.format
        reading = Reading(layout, delimiter, f"import:{path.name}", options.check_dns)
        workers = options.workers
        if workers is None:
            workers = workers_for(os.fstat(handle.fileno()).st_size)
        chunks = gathered(rows, reading, workers, path, layout.gone_domain)
        with closing(chunks):  # on an error here too, the reading processes end
            ahead = Ahead(chunks)
            # Gathered early, a chunk is gathered inside the transaction before, which holds
            # the write lock: not when its addresses' domains are looked up (seconds, at worst).
            early = None if options.check_dns else ahead.fetch
            while (chunk := ahead.take()) is not None:
                for problem in chunk.problems:
                    on_problem(problem)
                for key, count in chunk.counts.items():
                    summary.counts[key] += count
                _land(database, mailing_list, chunk, options, summary, reading.source,
                      secret=secret, meanwhile=early)  # fmt: skip
    return summary


def _land(
    database: Database,
    mailing_list: MailingList,
    chunk: Chunk,
    options: ImportOptions,
    summary: ImportSummary,
    source: str,
    *,
    secret: bytes,
    meanwhile: Callable[[], None] | None,
) -> None:
    """One chunk onto the list, in one transaction, its events' detail ``source`` (the
    consent the rows carry), and its outcomes counted; the next chunk may be gathered
    ``meanwhile``."""
    if not chunk.candidates:
        return
    landed = land(
        database, mailing_list, list(chunk.candidates.values()), secret=secret,
        standings=chunk.standings, resubscribe=options.resubscribe,
        confirmed=options.confirmed, dry_run=options.dry_run,
        detail=source, meanwhile=meanwhile,
    )  # fmt: skip
    seen, counts = chunk.seen, summary.counts
    counts["erased"] += len(landed.erased - seen)
    for email, outcome in landed.outcomes.items():
        counts[outcome.value] += email not in seen  # a duplicate is counted as one
        standing = chunk.standings.get(email)
        if standing is not None and standing.status in LEAVING:
            summary.left[standing.status] += 1


@contextmanager
def _analyzed(database: Database) -> Iterator[None]:
    """The tables an import filled, analysed once it is done (PostgreSQL plans by them)."""
    yield
    database.analyze("subscribers", "memberships", "events", "tags")

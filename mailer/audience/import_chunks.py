"""An import's rows gathered into chunks to land, with what each chunk has to report."""

from __future__ import annotations

import sqlite3
import tempfile
from collections import Counter
from collections.abc import Collection, Generator, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mailer.audience.csv_lines import Line
from mailer.audience.import_formats import LEAVING, stronger
from mailer.audience.import_reading import BATCH, Reading, read_rows
from mailer.audience.import_rows import Arrival
from mailer.audience.status.bulk import Standing
from mailer.db.database import as_json
from mailer.db.sqlite import is_full
from mailer.errors import DiskFullError, FileInputError, MailerError
from mailer.models import Candidate

CHUNK = 5000  # rows landed in one transaction
# Lines, at most, gathered into one chunk, whatever they hold: rows that add neither a reader
# nor a problem (blank lines, a tool's stand-ins for erased readers) do not make a chunk's
# gathering unbounded, and PostgreSQL gathers the next chunk under the write lock.
CHUNK_LINES = 20_000


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


@dataclass
class Chunk:
    """Rows ready to land together, in one transaction: distinct readers (one met in an earlier
    chunk only when its row says they left), where rows say each stands, the addresses met in
    earlier chunks, and what the rows gave to report and count."""

    path: Path
    candidates: dict[str, Candidate] = field(default_factory=dict)
    standings: dict[str, Standing] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    problems: list[RowProblem] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # invalid, duplicate-in-file, erased

    def bad(self, line: int, reason: str, value: str = "") -> None:
        self.counts["invalid"] += 1
        self.problems.append(RowProblem(self.path, line, value, reason))

    def duplicate(self, line: int, shown: str, email: str, standing: Standing | None) -> None:
        """A later row of an address read before is ignored, unless it says the reader left
        (deeper than the row before): a departure always wins."""
        self.counts["duplicate-in-file"] += 1
        before = self.standings.get(email)
        was = before.status if before else None
        if standing is not None and stronger(was, standing.status) != was:
            self.standings[email] = standing
            why = f"duplicate in file: its {standing.status} applies"
        else:
            why = "duplicate in file, ignored"
        self.problems.append(RowProblem(self.path, line, shown, why))

    def add(self, row: Arrival, gone: str | None) -> None:
        """A row read; ``gone``: the ending of the addresses a tool gives its erased readers."""
        if row.problems:  # it says the reader left: that stands without them
            self.counts["invalid"] += 1
            note = f"the row's {row.status} is applied without this value"
            for reason, value in row.problems:
                self.problems.append(RowProblem(self.path, row.line, value, reason, note))
        if gone is not None and row.email.endswith(gone):
            self.counts["erased"] += 1  # the tool's stand-in for a reader erased
            return
        if row.email in self.candidates:
            self.duplicate(row.line, row.written, row.email, row.standing())
            return
        self.candidates[row.email] = row.candidate()
        if (standing := row.standing()) is not None:
            self.standings[row.email] = standing

    def finish(self, met: SeenAddresses) -> Chunk:
        """The chunk without the addresses met in earlier chunks, but for a departure (which
        keeps its standing): those are duplicates."""
        self.seen = met.again(self.candidates)
        for email in [email for email in self.candidates if email in self.seen]:  # in file order
            standing = self.standings.pop(email, None)
            self.duplicate(self.candidates[email].line, email, email, standing)
            if standing is None or standing.status not in LEAVING:
                del self.candidates[email]
        self.problems.sort(key=lambda problem: problem.line)  # as the file has them
        return self


class SeenAddresses:
    """The addresses met so far in one import, to find duplicates across chunks: a private
    SQLite database on disk (SQLite's own temporary file, gone when closed), apart from the
    store, so that memory stays flat and the store's engine does none of this work."""

    def __init__(self) -> None:
        with self._mapped():
            self.connection = sqlite3.connect("", isolation_level=None)
            self.connection.execute("PRAGMA journal_mode = OFF")
            self.connection.execute("CREATE TABLE seen (email TEXT PRIMARY KEY) WITHOUT ROWID")

    def again(self, emails: Collection[str]) -> set[str]:
        """Record ``emails`` as met; return those met before (those the insert left out)."""
        with self._mapped():
            added = self.connection.execute(
                "INSERT OR IGNORE INTO seen SELECT value FROM json_each(?) RETURNING email",
                (as_json(emails),),
            ).fetchall()
        return set(emails).difference(row[0] for row in added)

    def close(self) -> None:
        self.connection.close()

    @staticmethod
    @contextmanager
    def _mapped() -> Iterator[None]:
        """Its errors as what they mean: a full temporary folder, or one it cannot use."""
        try:
            yield
        except sqlite3.Error as error:
            folder = tempfile.gettempdir()
            if is_full(error):
                raise DiskFullError(f"temporary folder {folder} (or set TMPDIR)") from None
            raise MailerError(f"temporary folder {folder}: {error} (or set TMPDIR)") from None


def gathered(
    lines: Iterator[Line], reading: Reading, workers: int, path: Path, gone: str | None
) -> Generator[Chunk, None, None]:
    """The file's rows as chunks, in order, read by ``workers`` processes (0: here) while the
    caller lands the chunk before. ``gone``: the domain a tool gives its erased readers'
    addresses."""
    ending = f"@{gone}" if gone else None
    with closing(SeenAddresses()) as met, _worker_lost(path):
        chunk, covered = Chunk(path), 0
        with closing(read_rows(lines, reading, workers)) as batches:
            for batch in batches:
                for row in batch:
                    if isinstance(row, Arrival):
                        chunk.add(row, ending)
                    else:
                        chunk.bad(*row)
                    if len(chunk.candidates) >= CHUNK or len(chunk.problems) >= CHUNK:
                        yield chunk.finish(met)  # problems, too, are reported as they come
                        chunk, covered = Chunk(path), 0
                covered += BATCH  # the lines a batch came from, blank ones too
                if covered >= CHUNK_LINES:  # perhaps empty: the gathering gives way
                    yield chunk.finish(met)
                    chunk, covered = Chunk(path), 0
        if chunk.candidates or chunk.problems or chunk.counts:
            yield chunk.finish(met)


class Ahead:
    """The chunks one at a time, the next one gathered early when the caller offers the time
    (``fetch``: while PostgreSQL's server stores the chunk before). An error met gathering
    early is raised at ``take``, after the chunk before has landed, as it would have been."""

    def __init__(self, chunks: Iterator[Chunk]) -> None:
        self.chunks = chunks
        self.fetched = False
        self.chunk: Chunk | None = None
        self.error: BaseException | None = None

    def fetch(self) -> None:
        if self.fetched:
            return
        self.fetched = True
        try:
            self.chunk = next(self.chunks, None)
        except BaseException as error:  # Ctrl-C too: the chunk landing now still commits
            self.error = error

    def take(self) -> Chunk | None:
        """The next chunk, None after the last."""
        self.fetch()
        chunk, error = self.chunk, self.error
        self.fetched, self.chunk, self.error = False, None, None
        if error is not None:
            raise error
        return chunk


@contextmanager
def _worker_lost(path: Path) -> Iterator[None]:
    try:
        yield
    except BrokenProcessPool:  # killed, out of memory: what it read so far has landed
        raise FileInputError(
            path, "a process reading it stopped; run the same import again"
        ) from None

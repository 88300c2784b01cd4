"""Reading an import's lines into rows: in worker processes when the file is large, else here."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice

from mailer.audience.addresses import normalise
from mailer.audience.csv_lines import FieldError, Line, cells
from mailer.audience.formulas import live
from mailer.audience.import_formats import Layout
from mailer.audience.import_rows import Arrival, RowError, RowReader
from mailer.errors import AddressError

PARALLEL_BYTES = 16 * 1024 * 1024  # a file this large is read by worker processes
BATCH = 2000  # lines sent to a worker at a time
AHEAD = 4  # batches waiting or being read, per worker: memory stays flat
PARENT_CHECK = 0.5  # seconds between a worker's looks at whether the importer still runs
Bad = tuple[int, str, str]  # a row that cannot be imported: line number, reason, value shown


@dataclass(frozen=True, slots=True)
class Reading:
    """How each line of one file is read: its layout and delimiter, the consent source of its
    rows, and whether each address's domain is asked whether it takes mail."""

    layout: Layout
    delimiter: str
    source: str
    check_dns: bool = False


class LineReader:
    """Lines to rows: each good one an Arrival, each bad one why; blank lines are no rows."""

    def __init__(self, reading: Reading) -> None:
        self.reading, self.rows = reading, RowReader(reading.layout, reading.source)

    def read(self, lines: list[Line]) -> list[Arrival | Bad]:
        reading = self.reading
        delimiter, check_dns = reading.delimiter, reading.check_dns
        width, email = reading.layout.width, reading.layout.email
        read: list[Arrival | Bad] = []
        for line in lines:
            if line.problem:
                read.append((line.number, line.problem, ""))
                continue
            try:
                fields = cells(line, delimiter)
            except FieldError as error:
                read.append((line.number, error.reason, error.shown))
                continue
            if not fields or fields == [""]:
                continue
            if "'" in line.text:  # the one quote export puts before a formula comes off
                fields = [live(cell) for cell in fields]
            if len(fields) != width:
                read.append((line.number, f"{len(fields)} fields where the header has {width}", ""))
                continue
            try:
                address = normalise(fields[email], check_dns=check_dns)
                read.append(self.rows.read(fields, address, line.number))
            except AddressError as error:
                read.append((line.number, f"invalid address: {error.reason}", fields[email]))
            except RowError as error:
                read.append((line.number, error.reason, error.value))
        return read


def read_rows(
    lines: Iterator[Line], reading: Reading, workers: int
) -> Generator[list[Arrival | Bad], None, None]:
    """Batches of rows, in the file's order: read here (``workers`` 0) or by that many worker
    processes while the caller writes what came before."""
    batches = iter(lambda: list(islice(lines, BATCH)), [])
    if workers == 0:
        reader = LineReader(reading)
        yield from map(reader.read, batches)
        return
    spawn = multiprocessing.get_context("spawn")  # no copy of a parent's threads or locks
    with ProcessPoolExecutor(workers, spawn, _start, (reading,)) as pool:
        pending: deque[Future[list[Arrival | Bad]]] = deque()
        try:
            for batch in batches:
                pending.append(pool.submit(_read, batch))
                if len(pending) >= AHEAD * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for waiting in pending:
                waiting.cancel()


def workers_for(size: int) -> int:
    """Worker processes for a file of ``size`` bytes: none for a small one (starting one costs
    more than it saves), else one per spare core, up to two (the writes are then the limit)."""
    spare = (os.cpu_count() or 1) - 1
    return 0 if size < PARALLEL_BYTES else max(0, min(2, spare))


_reader: LineReader | None = None  # the worker process's own


def _start(reading: Reading) -> None:
    global _reader
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the importing process to handle
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    _reader = LineReader(reading)


def _end_with_parent(parent: int) -> None:
    """End this worker when the importing process is gone (killed: nothing tells the pool)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(0)


def _read(lines: list[Line]) -> list[Arrival | Bad]:
    assert _reader is not None
    return _reader.read(lines)

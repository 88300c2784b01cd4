"""CSV import and export: dialects, per-row problems, idempotence, round trips, interruption."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.audience import import_reading, lists
from mailer.audience.addresses import Address, normalise
from mailer.audience.csv_export import export_csv
from mailer.audience.csv_import import ImportOptions, import_csv
from mailer.audience.csv_lines import cells, lines
from mailer.audience.import_chunks import (
    CHUNK,
    CHUNK_LINES,
    Chunk,
    RowProblem,
    SeenAddresses,
    gathered,
)
from mailer.audience.import_formats import plan
from mailer.audience.import_reading import Reading
from mailer.db.database import Database
from mailer.errors import DiskFullError, MailerError
from mailer.models import MailingList
from tests.conftest import Invoke, engine_environ, store, write_csv

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL

SECRET = b"k" * 32  # the workspace secret that keys erased addresses, for direct calls


def summary_line(output: str) -> dict[str, int]:
    """The counts of an import's summary line (the rows it says left, and its format, aside)."""
    line = output.strip().splitlines()[-1].removeprefix("dry run, nothing changed: ")
    counts = line.split("; ")[0]
    return {part.split(" ", 1)[1]: int(part.split(" ", 1)[0]) for part in counts.split(", ")}


def summary_format(output: str) -> str:
    return output.strip().splitlines()[-1].rpartition("; format: ")[2]


def emails(mailer: Invoke, slug: str) -> list[str]:
    return [m["email"] for m in json.loads(mailer("subscribers", "ls", slug, "--json").stdout)]


@pytest.fixture
def weekly(mailer: Invoke) -> str:
    assert mailer("lists", "create", "weekly").exit_code == 0
    return "weekly"


@pytest.mark.parametrize(
    ("header", "sep", "encoding"),
    [
        ("email,name,city", ",", "utf-8"),
        ("E-Mail;Name;City", ";", "utf-8-sig"),
        ("Email Address\tname\tcity", "\t", "utf-8"),
    ],
)
def test_dialects_and_header_names(
    mailer: Invoke, workspace: Path, weekly: str, header: str, sep: str, encoding: str
) -> None:
    rows = [header, sep.join(["zoe@example.org", "Zoë Brontë", "Haworth"])]
    rows.append(sep.join(["jose@example.org", "José Álvarez", "Sevilla"]))
    path = write_csv(workspace / "in.csv", "\r\n".join(rows) + "\r\n", encoding)
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.stderr
    assert summary_line(result.stdout)["added"] == 2
    listed = json.loads(mailer("subscribers", "ls", weekly, "--json").stdout)
    assert listed[0]["name"] == "Zoë Brontë"
    assert listed[0]["attributes"] == {header.split(sep)[2]: "Haworth"}


def test_partially_bad_file_imports_good_rows_and_reports_each_bad_one(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = workspace / "mixed.csv"
    path.write_bytes(
        b"email,name\n"
        b"good1@example.org,One\n"
        b"not-an-address,Bad\n"
        b"good2@example.org,Two,extra\n"
        b"good3@example.org,Caf\xe9\n"
        b"GOOD1@example.org,Again\n"
        b"\n"
        b"good4@example.org,Four\n"
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    problems = result.stderr.strip().splitlines()
    assert problems[0].startswith(f"{path}:3: invalid address: ")
    assert problems[0].endswith("'not-an-address'")
    assert problems[1] == f"{path}:4: 3 fields where the header has 2"
    assert problems[2] == f"{path}:5: not UTF-8 (byte 0xe9 at column 22)"
    assert problems[3] == f"{path}:6: duplicate in file, ignored: 'GOOD1@example.org'"
    assert "Traceback" not in result.output + result.stderr
    counts = summary_line(result.stdout)
    assert counts == {
        "added": 2, "updated": 0, "unchanged": 0, "skipped": 0, "invalid": 3,
        "duplicate-in-file": 1, "erased": 0,
    }  # fmt: skip
    assert summary_format(result.stdout) == "generic CSV"
    assert emails(mailer, weekly) == ["good1@example.org", "good4@example.org"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"name,city\nAda,Paris\n", ":1: no email column in the header ['name', 'city']"),
        (b"", ":1: empty file"),
        (b"email,\xff\n", ":1: the header is not UTF-8 text"),
        (
            b"email,name,E-mail\n",
            ":1: more than one email column in the header ('email', 'E-mail')",
        ),
        (b"email,name,Email\n", ":1: column 'email' appears twice in the header"),
    ],
)
def test_fatal_file_problems(
    mailer: Invoke, workspace: Path, weekly: str, content: bytes, expected: str
) -> None:
    path = workspace / "bad.csv"
    path.write_bytes(content)
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    said = result.stderr.strip().splitlines()
    assert len(said) == 1
    assert said[0].startswith(f"error: {path}{expected}")


def test_reimport_changes_nothing_and_updates_are_counted(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    first = write_csv(
        workspace / "a.csv", "email,name,city\na@example.org,A,X\nb@example.org,B,Y\n"
    )
    mailer("subscribers", "import", weekly, str(first))
    with store(workspace) as db:
        events_before = db.query("SELECT COUNT(*) FROM events")
    again = mailer("subscribers", "import", weekly, str(first))
    assert summary_line(again.stdout)["unchanged"] == 2
    with store(workspace) as db:
        assert db.query("SELECT COUNT(*) FROM events") == events_before
    changed = write_csv(
        workspace / "b.csv", "email,name,city\na@example.org,A,Z\nb@example.org,B,Y\n"
    )
    counts = summary_line(mailer("subscribers", "import", weekly, str(changed)).stdout)
    assert (counts["updated"], counts["unchanged"]) == (1, 1)


def test_unsubscribed_and_bounced_need_resubscribe(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = write_csv(workspace / "a.csv", "email\na@example.org\nb@example.org\nc@example.org\n")
    mailer("subscribers", "import", weekly, str(path))
    mailer("subscribers", "rm", weekly, "a@example.org")
    with store(workspace) as db:
        db.execute("UPDATE subscribers SET status = 'bounced' WHERE email = 'b@example.org'")
    counts = summary_line(mailer("subscribers", "import", weekly, str(path)).stdout)
    assert (counts["skipped"], counts["unchanged"]) == (2, 1)
    counts = summary_line(
        mailer("subscribers", "import", weekly, str(path), "--resubscribe").stdout
    )
    assert (counts["added"], counts["updated"], counts["unchanged"]) == (1, 1, 1)
    members = json.loads(mailer("subscribers", "ls", weekly, "--json").stdout)
    assert {(m["status"], m["subscriber_status"]) for m in members} == {("confirmed", "active")}


def test_dry_run_changes_nothing(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = write_csv(workspace / "a.csv", "email\na@example.org\nb@example.org\na@example.org\n")
    result = mailer("subscribers", "import", weekly, str(path), "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.startswith("dry run, nothing changed: 2 added")
    assert summary_line(result.stdout)["duplicate-in-file"] == 1
    assert emails(mailer, weekly) == []


def test_duplicates_across_chunks_are_found(mailer: Invoke, workspace: Path, weekly: str) -> None:
    again = [f"r{i}@example.org" for i in (4321, 7, 2500, 3, 4999, 18)]  # of the first chunk
    rows = [f"r{i}@example.org" for i in range(12_000)] + again + ["R11999@example.org"]
    path = write_csv(workspace / "big.csv", "email\n" + "\n".join(rows) + "\n")
    result = mailer("subscribers", "import", weekly, str(path))
    counts = summary_line(result.stdout)
    assert (counts["added"], counts["duplicate-in-file"]) == (12_000, 7)
    said = result.stderr.splitlines()
    reported = [int(line.split(":")[1]) for line in said if "duplicate" in line]
    assert reported == list(range(12_002, 12_009))  # each once, in the file's order


FORMULAS = {
    "formula@example.org": ('=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0"),
    "sum@example.org": ("@SUM(1)", "-2+3"),
    "quoted@example.org": ("'=already quoted", "'plain"),
    "=cmd@example.org": ("Tab\tName", "\tlead"),
}


def test_export_import_round_trips_exactly(mailer: Invoke, workspace: Path, weekly: str) -> None:
    from tests.conftest import EXAMPLE_CSV

    mailer("subscribers", "import", weekly, str(EXAMPLE_CSV))
    mailer("subscribers", "add", weekly, "extra@example.org", "--attr", "role=editor")
    for email, (name, role) in FORMULAS.items():
        added = mailer(
            "subscribers", "add", weekly, email, "--name", name, "--attr", f"role={role}"
        )
        assert added.exit_code == 0, added.output
    exported = workspace / "out.csv"
    assert mailer("subscribers", "export", weekly, "--output", str(exported)).exit_code == 0
    mailer("lists", "create", "copy")
    counts = summary_line(mailer("subscribers", "import", "copy", str(exported)).stdout)
    assert (counts["added"], counts["updated"]) == (25, 0)  # same people, same data
    assert mailer("subscribers", "export", "copy").stdout_bytes == exported.read_bytes()
    original = {r["email"].lower(): r for r in csv.DictReader(EXAMPLE_CSV.open(encoding="utf-8"))}
    again = {r["email"]: r for r in csv.DictReader(io.StringIO(exported.read_text()))}
    for email, row in original.items():
        assert (again[email]["name"], again[email]["city"]) == (row["name"], row["city"])
    # No cell a spreadsheet would run: each starts with a quote before = + - @ or a tab.
    cells = [cell for row in csv.reader(io.StringIO(exported.read_text())) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert again["'=cmd@example.org"]["name"] == "Tab Name"  # the tab was cleaned on the way in
    assert again["formula@example.org"]["role"] == "'+cmd|' /C calc'!A0"
    assert again["quoted@example.org"]["name"] == "''=already quoted"
    assert again["quoted@example.org"]["role"] == "'plain"  # no formula after it: kept as it is
    listed = {
        m["email"]: m for m in json.loads(mailer("subscribers", "ls", "copy", "--json").stdout)
    }
    for email, (name, role) in FORMULAS.items():
        expected_name = name.replace("\t", " ")
        expected_role = role.replace("\t", " ")
        assert listed[email]["name"] == expected_name
        assert listed[email]["attributes"]["role"] == expected_role


# A line break inside a cell is reported, not imported (test_csv_rows.py): cells hold none here.
cell = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12
)
# Each example's lists and readers are its own: on PostgreSQL the examples share one database.
_example = itertools.count(1)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    people=st.lists(st.tuples(cell, cell, cell), min_size=1, max_size=8),
)
def test_round_trip_property(tmp_path: Path, people: list[tuple[str, str, str]]) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    n = next(_example)
    with store(folder) as db:
        source, target = lists.create(db, f"a{n}", "A"), lists.create(db, f"b{n}", "B")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["email", "name", "note", "other"])
        for i, (name, note, other) in enumerate(people):
            writer.writerow([f"p{i}.{n}@example.org", name.strip(), note, other])
        path = folder / "in.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8")
        problems: list[RowProblem] = []
        import_csv(db, source, path, on_problem=problems.append, secret=SECRET)
        assert problems == []
        first = export_of(db, source, folder / "first.csv")
        import_csv(db, target, folder / "first.csv", on_problem=problems.append, secret=SECRET)
        assert problems == []
        assert export_of(db, target, folder / "second.csv") == first


def export_of(database: Database, mailing_list: MailingList, path: Path) -> str:
    with path.open("w", encoding="utf-8", newline="") as handle:
        export_csv(database, mailing_list, handle)
    return path.read_text(encoding="utf-8")


def consistent(workspace: Path) -> tuple[int, int, int]:
    with store(workspace) as db:
        row = db.query_one(
            "SELECT (SELECT COUNT(*) FROM subscribers), (SELECT COUNT(*) FROM memberships),"
            " (SELECT COUNT(*) FROM events WHERE kind = 'subscribed')"
        )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_interrupted_import_leaves_no_half_row_and_can_be_rerun(tmp_path: Path) -> None:
    rows = 12_500
    path = write_csv(
        tmp_path / "r.csv",
        "email\n" + "".join(f"r{i}@example.org\n" for i in range(7_000)) + "broken\n"
        + "".join(f"r{i}@example.org\n" for i in range(7_000, rows)),
    )  # fmt: skip

    def interrupt(problem: RowProblem) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C arrived while reading row 7002

    with store(tmp_path) as db:
        weekly = lists.create(db, "weekly", "W")
        with pytest.raises(KeyboardInterrupt):
            import_csv(db, weekly, path, on_problem=interrupt, secret=SECRET)
    assert consistent(tmp_path) == (5_000, 5_000, 5_000)  # first chunk only
    with store(tmp_path) as db:
        summary = import_csv(
            db, lists.get(db, "weekly"), path, on_problem=lambda p: None, secret=SECRET
        )
    assert (summary.counts["added"], summary.counts["unchanged"]) == (rows - 5_000, 5_000)
    assert consistent(tmp_path) == (rows, rows, rows)


def seven_thousand(folder: Path) -> Path:
    """A file of two chunks: 5,000 readers, then 2,000."""
    text = "email\n" + "".join(f"r{i}@example.org\n" for i in range(7_000))
    return write_csv(folder / "r.csv", text)


def _failing_second_gather(
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    seen: list[tuple[int, int, int]],
    at: Path,
) -> None:
    """The second chunk's gathering fails with ``error``; ``seen``: what the store held when
    that gathering began, read from another connection."""
    again = SeenAddresses.again
    calls = itertools.count()

    def failing(self: SeenAddresses, emails: list[str]) -> set[str]:
        if next(calls) == 1:
            seen.append(consistent(at))
            raise error
        return again(self, emails)

    monkeypatch.setattr(SeenAddresses, "again", failing)


@pytest.mark.parametrize(
    "error", [DiskFullError("temporary folder"), KeyboardInterrupt()], ids=["disk-full", "ctrl-c"]
)
def test_a_failure_gathering_the_next_chunk_comes_after_the_chunk_before_lands(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """On PostgreSQL the next chunk is gathered while the server stores the one before (its
    COPY's foreign-key checks): that chunk is not committed yet then. An error met there (a
    full disk, Ctrl-C) is raised once the chunk before has landed, as it was when the chunks
    were gathered one after the other."""
    path = seven_thousand(tmp_path)
    seen: list[tuple[int, int, int]] = []
    _failing_second_gather(monkeypatch, error, seen, tmp_path)
    with store(tmp_path) as db:
        weekly = lists.create(db, "weekly", "W")
        with pytest.raises(type(error)):
            import_csv(db, weekly, path, on_problem=lambda p: None, secret=SECRET)
    ahead = engine == "postgresql"  # SQLite stores in this process: nothing to wait for
    assert seen == [(0, 0, 0) if ahead else (5_000, 5_000, 5_000)]
    assert consistent(tmp_path) == (5_000, 5_000, 5_000)  # the first chunk, whole


def test_with_dns_lookups_the_next_chunk_is_gathered_after_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking up every address's domain can make gathering a chunk take seconds: not while
    the chunk before holds the write lock. (The lookups themselves stay off the network.)"""
    looked_up: list[bool] = []

    def offline(raw: str, *, check_dns: bool = False) -> Address:
        looked_up.append(check_dns)
        return normalise(raw)

    monkeypatch.setattr(import_reading, "normalise", offline)
    path = seven_thousand(tmp_path)
    seen: list[tuple[int, int, int]] = []
    _failing_second_gather(monkeypatch, DiskFullError("temporary folder"), seen, tmp_path)
    with store(tmp_path) as db:
        weekly = lists.create(db, "weekly", "W")
        with pytest.raises(DiskFullError):
            import_csv(db, weekly, path, on_problem=lambda p: None, secret=SECRET,
                       options=ImportOptions(check_dns=True, workers=0))  # fmt: skip
    assert set(looked_up) == {True}
    assert seen == [(5_000, 5_000, 5_000)]  # on both engines
    assert consistent(tmp_path) == (5_000, 5_000, 5_000)


def test_import_killed_with_sigkill_is_consistent(tmp_path: Path) -> None:
    rows = 60_000
    path = write_csv(
        tmp_path / "r.csv", "email\n" + "".join(f"r{i}@example.org\n" for i in range(rows))
    )
    command = [sys.executable, "-m", "mailer", "--workspace", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(engine_environ())  # the test's engine
    subprocess.run(
        [*command, "lists", "create", "weekly"], check=True, env=env, capture_output=True
    )
    child = subprocess.Popen([*command, "subscribers", "import", "weekly", str(path)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while consistent(tmp_path)[0] < 5_000 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # polling for progress, not synchronising on time
    child.send_signal(signal.SIGKILL)
    child.wait()
    subscribers, memberships, events = consistent(tmp_path)
    assert subscribers == memberships == events
    assert subscribers % 5_000 == 0 or subscribers == rows
    rerun = subprocess.run([*command, "subscribers", "import", "weekly", str(path)],
                           env=env, capture_output=True, text=True)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert consistent(tmp_path) == (rows, rows, rows)


def test_create_list_on_import_is_repeatable(mailer: Invoke) -> None:
    from tests.conftest import EXAMPLE_CSV

    first = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert first.exit_code == 0, first.stderr
    again = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert again.exit_code == 0
    assert summary_line(again.stdout)["unchanged"] == 20
    missing = mailer("subscribers", "import", "other", str(EXAMPLE_CSV))
    assert missing.exit_code == 1


@contextmanager
def gathering(
    path: Path, gone: str | None = None
) -> Iterator[tuple[Generator[Chunk, None, None], BinaryIO]]:
    """The chunks of a CSV file with an email column, read here, and the open file."""
    with path.open("rb") as handle:
        rows = lines(handle)
        layout = plan(path, cells(next(rows), ","))
        chunks = gathered(rows, Reading(layout, ",", "import:r.csv"), 0, path, gone)
        with closing(chunks):
            yield chunks, handle


def test_bad_rows_are_handed_over_as_they_come_not_held(tmp_path: Path) -> None:
    """However few good rows there are, a chunk goes to be reported (and landed) once it
    holds 5,000 problems: a file of bad rows is reported as it is read, in bounded memory."""
    path = write_csv(
        tmp_path / "r.csv", "email\n" + "not an address\n" * 12_000 + "a@example.org\n"
    )
    with gathering(path) as (chunks, handle):
        first = next(chunks)
        assert (len(first.problems), first.candidates) == (CHUNK, {})
        assert first.problems[0].line == 2 and handle.tell() < path.stat().st_size
        rest = list(chunks)
    assert [len(chunk.problems) for chunk in rest] == [CHUNK, 2_000]
    assert list(rest[-1].candidates) == ["a@example.org"]


@pytest.mark.parametrize(
    ("filler", "gone"),
    [("\n", None), ("r{}@deletion-request.substack.com\n", "deletion-request.substack.com")],
    ids=["blank-lines", "erased-stand-ins"],
)
def test_rows_that_add_nobody_still_end_a_chunk(
    tmp_path: Path, filler: str, gone: str | None
) -> None:
    """Lines that give neither a reader nor a problem (blank ones, a tool's stand-ins for
    readers erased) end a chunk after CHUNK_LINES all the same: gathering one, which
    PostgreSQL does while the chunk before holds the write lock, stays bounded."""
    count = 3 * CHUNK_LINES
    text = "email\n" + "".join(filler.format(i) for i in range(count)) + "a@example.org\n"
    path = write_csv(tmp_path / "r.csv", text)
    with gathering(path, gone) as (chunks, handle):
        first = next(chunks)
        assert first.candidates == {} and handle.tell() < path.stat().st_size / 2
        rest = list(chunks)
    assert len(rest) >= 2
    assert list(rest[-1].candidates) == ["a@example.org"]
    erased = sum(chunk.counts["erased"] for chunk in [first, *rest])
    assert erased == (count if gone else 0)


def test_a_full_temporary_folder_is_one_line_not_a_traceback() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    said = r"^disk full: temporary folder .* \(or set TMPDIR\)"
    with pytest.raises(DiskFullError, match=said), SeenAddresses._mapped():
        raise full
    refused, said = sqlite3.OperationalError("unable to open file"), r"^temporary folder .*: unable"
    with pytest.raises(MailerError, match=said), SeenAddresses._mapped():
        raise refused

"""Consent as data (how, when and from where each reader joined) through add, import and export;
no import mails a reader who left, bounced, was blocked or erased; large files read in workers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.audience import lists
from mailer.audience.csv_import import ImportOptions, import_csv
from mailer.audience.erased import remember
from mailer.audience.import_chunks import RowProblem
from mailer.audience.import_rows import tags_of, time_stamp
from mailer.times import stamp
from mailer.tokens import load_secret
from tests.conftest import Invoke, store, write_csv
from tests.test_import import SECRET, summary_line
from tests.test_import_formats import CLEANED, MAILCHIMP, PLACE, readers

CONSENT = "email,name,status,lang,tags,source,joined_at,confirmed_at,ip"


def subscribed_export(workspace: Path, *emails: str) -> Path:
    rows = "".join(
        f'{email},{email.split("@")[0].title()},Reader,,,3,"2019-03-14 09:12:31",203.0.113.7,'
        f'"2019-03-14 09:14:02",203.0.113.7,{PLACE},"2023-01-02 10:00:00",{n},e{n:09d},,'
        '"""steward"""\r\n'
        for n, email in enumerate(emails)
    )
    return write_csv(workspace / "subscribed_members_export_9c1d.csv", MAILCHIMP + "\r\n" + rows)


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_add_records_the_editor_as_the_source(mailer: Invoke, workspace: Path) -> None:
    mailer("lists", "create", "weekly")
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 0
    [ada] = readers(workspace).values()
    source, joined_at, confirmed_at, ip = ada["consent"]
    assert (source, ip, confirmed_at) == ("cli", "", joined_at)  # single opt-in: confirmed then
    assert ada["events"] == [("subscribed", joined_at, "cli")]


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_export_writes_consent_and_importing_it_elsewhere_keeps_it(
    mailer: Invoke, workspace: Path
) -> None:
    mailer("lists", "create", "weekly")
    source = subscribed_export(workspace, "ada@example.org", "bob@example.org")
    assert mailer("subscribers", "import", "weekly", str(source)).exit_code == 0
    langs = write_csv(workspace / "langs.csv", "email,language\nada@example.org,pt-BR\n")
    mailer("subscribers", "import", "weekly", str(langs), "--map", "language=lang")
    exported = mailer("subscribers", "export", "weekly").stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert exported.startswith(CONSENT + ",")
    assert {k: rows[0][k] for k in CONSENT.split(",")} == {
        "email": "ada@example.org", "name": "Ada Reader", "status": "confirmed", "lang": "pt-BR",
        "tags": "steward", "source": f"import:{source.name}",
        "joined_at": "2019-03-14T09:12:31+00:00", "confirmed_at": "2019-03-14T09:14:02+00:00",
        "ip": "203.0.113.7",
    }  # fmt: skip
    copy = write_csv(workspace / "weekly.csv", exported)
    mailer("lists", "create", "copy")
    result = mailer("subscribers", "import", "copy", str(copy))
    assert result.stdout.strip().endswith("; format: mailer export")
    before, after = readers(workspace), readers(workspace, "copy")
    for email in before:
        for key in ("name", "attributes", "lang", "tags", "membership", "consent"):
            assert after[email][key] == before[email][key], (email, key)
    assert mailer("subscribers", "export", "copy").stdout == exported
    # Who left stays left in the copy: export writes the status and import reads it.
    mailer("subscribers", "rm", "weekly", "bob@example.org")
    unsubscribed = mailer("subscribers", "export", "weekly", "--status", "unsubscribed").stdout
    left = write_csv(workspace / "left.csv", unsubscribed)
    mailer("lists", "create", "third")
    assert (
        "; 1 unsubscribed; format: mailer export"
        in mailer("subscribers", "import", "third", str(left)).stdout
    )
    assert readers(workspace, "third")["bob@example.org"]["membership"] == "unsubscribed"


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_no_import_mails_a_reader_who_left_bounced_or_was_blocked(
    mailer: Invoke, workspace: Path
) -> None:
    mailer("lists", "create", "weekly")
    everyone = ("left@example.org", "bounced@example.org", "blocked@example.org")
    plain = write_csv(workspace / "all.csv", "email\n" + "\n".join(everyone) + "\n")
    assert mailer("subscribers", "import", "weekly", str(plain)).exit_code == 0
    mailer("subscribers", "rm", "weekly", "left@example.org")
    cleaned = write_csv(
        workspace / "cleaned_members_export_9c1d.csv",
        CLEANED + "\r\nbounced@example.org,,,1,,,,,,,,,,,,,,,,,,\r\n",
    )
    assert mailer("subscribers", "import", "weekly", str(cleaned)).exit_code == 0
    blocked = write_csv(workspace / "blocked.csv", "email\nblocked@example.org\n")
    mailer("subscribers", "import", "weekly", str(blocked), "--status", "blocklisted")
    export = subscribed_export(workspace, *everyone)
    for args in ([], ["--confirmed"], ["--status", "confirmed"]):
        counts = summary_line(mailer("subscribers", "import", "weekly", str(export), *args).stdout)
        assert (counts["skipped"], counts["added"], counts["updated"]) == (3, 0, 0), args
    found = readers(workspace)
    assert {e: (r["membership"], r["status"]) for e, r in found.items()} == {
        "left@example.org": ("unsubscribed", "active"),
        "bounced@example.org": ("confirmed", "bounced"),
        "blocked@example.org": ("confirmed", "blocklisted"),
    }
    result = mailer("subscribers", "import", "weekly", str(export), "--resubscribe")
    assert summary_line(result.stdout)["skipped"] == 0
    assert {(r["membership"], r["status"]) for r in readers(workspace).values()} == {
        ("confirmed", "active")
    }


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_an_erased_address_is_never_added_again_by_an_import(
    mailer: Invoke, workspace: Path
) -> None:
    mailer("lists", "create", "weekly")
    with store(workspace) as database, database.transaction() as db:
        remember(db, load_secret(workspace), "ada@example.org", stamp(datetime.now(UTC)))
    export = subscribed_export(workspace, "ada@example.org", "bob@example.org")
    for args in ([], ["--resubscribe"]):
        result = mailer("subscribers", "import", "weekly", str(export), *args)
        assert result.exit_code == 0, result.output
        assert summary_line(result.stdout)["erased"] == 1
        assert "ada@example.org" not in result.output  # nothing says the address again
    assert list(readers(workspace)) == ["bob@example.org"]
    refused = mailer("subscribers", "add", "weekly", "ada@example.org")
    assert refused.exit_code == 1
    assert "erased at the reader's request" in refused.stderr
    # Not even the editor's --resubscribe: only the reader's own new consent, through the form.
    forced = mailer("subscribers", "add", "weekly", "ada@example.org", "--resubscribe")
    assert forced.exit_code == 1 and "through the subscribe form" in forced.stderr
    assert list(readers(workspace)) == ["bob@example.org"]


Imported = tuple[list[RowProblem], str, list[tuple[Any, ...]]]


def import_both_ways(tmp_path: Path, path: Path) -> list[Imported]:
    """The problems, summary and rows of importing ``path`` read here, then by a worker, each
    into a list of its own (in one database on PostgreSQL)."""
    results: list[Imported] = []
    for workers in (0, 1):
        problems: list[RowProblem] = []
        folder = tmp_path / f"db{workers}"
        folder.mkdir()
        with store(folder) as database:
            weekly = lists.create(database, f"weekly{workers}", "Weekly")
            options = ImportOptions(workers=workers)
            summary = import_csv(database, weekly, path, on_problem=problems.append,
                                 secret=SECRET, options=options)  # fmt: skip
            rows = database.query(
                "SELECT s.email, s.name, s.attributes, s.status, m.status, m.source, m.joined_at,"
                " m.confirmed_at, m.ip FROM subscribers s JOIN memberships m"
                " ON m.subscriber_id = s.id WHERE m.list_id = ? ORDER BY s.id",
                (weekly.id,),
            )
        results.append((problems, str(summary), rows))
    return results


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_a_worker_process_reads_rows_as_this_one_does(tmp_path: Path) -> None:
    emails = [f"r{i}@example.org" for i in range(5200)]
    path = subscribed_export(tmp_path, *emails, "R7@example.org")  # a duplicate, across chunks
    with path.open("a", encoding="utf-8") as handle:
        handle.write("not-an-address,,,,,,,,,,,,,,,,,,,,,\r\nshort,row\r\n")
    here, worker = import_both_ways(tmp_path, path)
    assert here == worker
    problems, summary, rows = here
    duplicate = "duplicate in file, ignored"  # across chunks: found when its chunk lands
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (5202, duplicate), (5203, "invalid address"), (5204, "2 fields where the header has 22")
    ]  # fmt: skip
    assert summary.startswith("5200 added, 0 updated, 0 unchanged, 0 skipped, 2 invalid, 1")
    assert len(rows) == 5200


@pytest.mark.usefixtures("engine")  # on SQLite, then PostgreSQL
def test_an_interrupted_import_read_by_a_worker_keeps_whole_chunks(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "r.csv",
        "email\n" + "".join(f"r{i}@example.org\n" for i in range(7000)) + "broken\n"
        + "".join(f"r{i}@example.org\n" for i in range(7000, 9000)),
    )  # fmt: skip

    def interrupt(problem: RowProblem) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C arrived while reading row 7002

    with store(tmp_path) as database:
        weekly = lists.create(database, "weekly", "W")
        try:
            import_csv(database, weekly, path, on_problem=interrupt, secret=SECRET,
                       options=ImportOptions(workers=1))  # fmt: skip
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("the interruption was lost")
        assert database.query("SELECT COUNT(*) FROM memberships") == [(5000,)]
        summary = import_csv(database, weekly, path, on_problem=lambda p: None, secret=SECRET,
                             options=ImportOptions(workers=1))  # fmt: skip
    assert (summary.counts["added"], summary.counts["unchanged"]) == (4000, 5000)


moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5,
                               minutes=30))]),
)  # fmt: skip


@given(moment=moments)
def test_every_spelling_of_a_time_is_stored_the_same(moment: datetime) -> None:
    expected = stamp(moment)
    offset = moment.strftime("%z")
    spellings = [
        moment.isoformat(), moment.isoformat(sep=" "), moment.isoformat(timespec="milliseconds"),
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),  # Ghost, Substack
        moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),  # Mailchimp: UTC, no offset
        moment.strftime("%Y-%m-%d %H:%M:%S.%f ") + f"{offset} {moment.tzname()}",  # listmonk
    ]  # fmt: skip
    assert {time_stamp(s) for s in spellings} == {expected}


tag = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10).filter(
    lambda t: t.strip() == t and "," not in t
)


@given(tags=st.lists(tag, max_size=5, unique=True))
def test_tags_come_back_from_mailchimps_spelling(tags: list[str]) -> None:
    cell = ",".join('"' + t.replace('"', '""') + '"' for t in tags)
    assert tags_of(cell, ",") == tuple(tags)

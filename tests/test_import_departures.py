"""A row that says its reader left lands left, in any format: another tool's export in any
language, a generic CSV's status or unsubscribe-time column, a row with a bad value beside it,
a duplicate row, and a list deleted and made again under the same slug."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_REPORT, Invoke, write_csv
from tests.test_import import summary_format, summary_line
from tests.test_import_formats import UNSUBSCRIBED, readers
from tests.test_suppression import send, statuses

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL

BYSTANDER = "reader@example.org"


@pytest.fixture
def weekly(mailer: Invoke) -> str:
    """weekly, with grace confirmed on it (a reader any file below may say left) and a
    bystander, who is mailed."""
    assert mailer("lists", "create", "weekly").exit_code == 0
    for email in ("grace@example.org", BYSTANDER):
        assert mailer("subscribers", "add", "weekly", email).exit_code == 0
    return "weekly"


def memberships(workspace: Path) -> dict[str, tuple[str, str]]:
    """Each reader of weekly but the bystander: (membership status, subscriber status)."""
    found = readers(workspace)
    assert found.pop(BYSTANDER)["membership"] == "confirmed"
    return {e: (r["membership"], r["status"]) for e, r in found.items()}


# Mailchimp's unsubscribed export as its French and German editions write it: the merge
# fields' labels are translated, its own columns are not.
FRENCH = UNSUBSCRIBED.replace('"Email Address","First Name","Last Name"',
                              '"Adresse e-mail","Prénom","Nom"')  # fmt: skip
GERMAN = UNSUBSCRIBED.replace('"Email Address","First Name","Last Name"',
                              '"E-Mail-Adresse",Vorname,Nachname')  # fmt: skip
RENAMED = UNSUBSCRIBED.replace('"Email Address"', '"Your email"')
LEFT_ROW = (
    'grace@example.org,Grace,Hopper,2,,,"2020-06-01 12:00:00",,,,,,,,,"2024-02-01 08:30:00",'
    '"Autumn report",a1b2c3,"I no longer want to receive these emails",,102,f6a7b8c9d0,,\r\n'
)


@pytest.mark.parametrize(
    ("header", "maps"),
    [
        (FRENCH, []),
        (GERMAN, []),
        (RENAMED, []),
        (FRENCH, ["--map", "Adresse e-mail=email"]),
        (GERMAN, ["--map", "E-Mail-Adresse=email"]),
    ],
)
def test_mailchimp_is_known_by_its_own_columns_whatever_the_address_is_called(
    mailer: Invoke, workspace: Path, weekly: str, header: str, maps: list[str]
) -> None:
    path = write_csv(workspace / "export.csv", header + "\r\n" + LEFT_ROW)
    result = mailer("subscribers", "import", weekly, str(path), *maps)
    assert result.exit_code == 0, result.output
    assert summary_format(result.stdout).startswith("Mailchimp (unsubscribed export)")
    found = readers(workspace)["grace@example.org"]
    assert (found["membership"], found["name"]) == ("unsubscribed", "Grace Hopper")
    assert found["events"][-1][2].endswith("dated 2024-02-01T08:30:00+00:00")
    assert send(mailer, workspace, weekly) == {BYSTANDER: 1}


@pytest.mark.parametrize(
    ("header", "row", "maps", "left"),
    [
        ("Email,Name,UNSUB_TIME", "{e},Ada,2024-02-01 08:30:00", [], "unsubscribed"),
        ("Mail;Wer;CLEAN_TIME", "{e};Ada;2023-07-08T03:04:05Z", ["--map", "Mail=email"], "bounced"),
        ("email,unsubscribed_at", "{e},2024-02-01", ["--status", "confirmed"], "unsubscribed"),
    ],
)
def test_a_column_that_says_the_reader_left_is_read_in_any_file(
    mailer: Invoke, workspace: Path, weekly: str, header: str, row: str, maps: list[str], left: str
) -> None:
    rows = [row.format(e="grace@example.org"), row.format(e="new@example.org")]
    still = header.replace(";", ",").split(",")[0] + "\nstays@example.org\n"
    path = write_csv(workspace / "people.csv", header + "\n" + "\n".join(rows) + "\n")
    result = mailer("subscribers", "import", weekly, str(path), *maps)
    assert result.exit_code == 0, result.output
    assert f"; 2 {left}; format: generic CSV" in result.stdout
    expected = ("unsubscribed", "active") if left == "unsubscribed" else ("confirmed", "bounced")
    found = memberships(workspace)
    assert found["grace@example.org"] == found["new@example.org"] == expected
    assert "UNSUB_TIME" not in readers(workspace)["new@example.org"]["attributes"]
    plain = write_csv(workspace / "plain.csv", still)  # no such column: joins as ever
    assert mailer("subscribers", "import", weekly, str(plain)).exit_code == 0
    assert memberships(workspace)["stays@example.org"] == ("confirmed", "active")
    assert send(mailer, workspace, weekly) == {"stays@example.org": 1, BYSTANDER: 1}


@pytest.mark.parametrize("column", ["status", "Member Status", "subscription_status"])
def test_a_generic_status_column_is_read_and_an_unknown_value_is_a_bad_row(
    mailer: Invoke, workspace: Path, weekly: str, column: str
) -> None:
    path = write_csv(
        workspace / "people.csv",
        f"email,name,{column}\n"
        "grace@example.org,Grace,unsubscribed\n"
        "bob@example.org,Bob,bounced\n"
        "cy@example.org,Cy,Cleaned\n"
        "dee@example.org,Dee,blocked\n"
        "eve@example.org,Eve,pending\n"
        "fay@example.org,Fay,active\n"
        "gus@example.org,Gus,gone fishing\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{path}:8: unknown status in {column} (confirmed, subscribed,")
    hint = "" if column == "status" else f'; not a status? --map "{column}=attribute:{column}"'
    assert line.endswith(f"blacklisted{hint}): 'gone fishing'")
    assert summary_line(result.stdout)["invalid"] == 1
    assert memberships(workspace) == {
        "grace@example.org": ("unsubscribed", "active"),
        "bob@example.org": ("confirmed", "bounced"),
        "cy@example.org": ("confirmed", "bounced"),
        "dee@example.org": ("confirmed", "blocklisted"),
        "eve@example.org": ("unconfirmed", "active"),
        "fay@example.org": ("confirmed", "active"),
    }
    assert send(mailer, workspace, weekly) == {"fay@example.org": 1, BYSTANDER: 1}


def test_a_bad_value_beside_a_departure_does_not_keep_the_reader(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    """Grace's row has a bad opt-in time, Alan's a bad unsubscribe time: both still leave, and
    each bad value is reported with its file, line and column; the import exits 1."""
    assert mailer("subscribers", "add", weekly, "alan@example.org").exit_code == 0
    path = write_csv(
        workspace / "unsubscribed_members_export_1.csv",
        UNSUBSCRIBED + "\r\n"
        'grace@example.org,Grace,,2,yesterday,300.1.2.3,,,,,,,,,,"2024-02-01 08:30:00",'
        ",,,,,,,\r\n"
        "alan@example.org,Alan,,1,,,,,,,,,,,,last spring,,,,,,,,\r\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    expected = "ISO 8601, such as 2024-03-14 09:12:31 or 2024-03-14T09:12:31Z"
    assert result.stderr.strip().splitlines() == [
        f"{path}:2: invalid time in OPTIN_TIME (expected {expected}): 'yesterday'; the row's"
        " unsubscribed is applied without this value",
        f"{path}:2: invalid IP address in OPTIN_IP: '300.1.2.3'; the row's unsubscribed is"
        " applied without this value",
        f"{path}:3: invalid time in UNSUB_TIME (expected {expected}): 'last spring'; the row's"
        " unsubscribed is applied without this value",
    ]
    counts = summary_line(result.stdout)
    assert (counts["updated"], counts["invalid"]) == (2, 2)
    found = memberships(workspace)
    assert found["grace@example.org"] == found["alan@example.org"] == ("unsubscribed", "active")
    assert send(mailer, workspace, weekly) == {BYSTANDER: 1}
    # A bad value in a row that says nothing of leaving still keeps the whole row out.
    bad = write_csv(
        workspace / "bad.csv", "email,status,language\nzed@example.org,,not a language\n"
    )
    assert mailer("subscribers", "import", weekly, str(bad)).exit_code == 1
    assert "zed@example.org" not in memberships(workspace)


def test_a_later_duplicate_that_says_the_reader_left_wins(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = write_csv(
        workspace / "people.csv",
        "email,name,status\n"
        "grace@example.org,Grace,subscribed\n"
        "new@example.org,New,subscribed\n"
        "GRACE@example.org,,unsubscribed\n"
        "new@example.org,,bounced\n"
        "new@example.org,,subscribed\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines() == [
        f"{path}:4: duplicate in file: its unsubscribed applies: 'GRACE@example.org'",
        f"{path}:5: duplicate in file: its bounced applies: 'new@example.org'",
        f"{path}:6: duplicate in file, ignored: 'new@example.org'",
    ]
    assert summary_line(result.stdout)["duplicate-in-file"] == 3
    assert memberships(workspace) == {
        "grace@example.org": ("unsubscribed", "active"), "new@example.org": ("confirmed", "bounced")
    }  # fmt: skip
    assert readers(workspace)["new@example.org"]["name"] == "New"  # the first row's data


def test_a_duplicate_in_a_later_chunk_that_says_the_reader_left_still_lands(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    rows = [f"r{i}@example.org,subscribed" for i in range(6_000)]
    rows += ["r3@example.org,unsubscribed", "r4@example.org,subscribed"]
    path = write_csv(workspace / "big.csv", "email,status\n" + "\n".join(rows) + "\n")
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    counts = summary_line(result.stdout)
    assert (counts["added"], counts["duplicate-in-file"]) == (6_000, 2)
    assert "; 1 unsubscribed;" in result.stdout
    found = memberships(workspace)
    assert (found["r3@example.org"], found["r4@example.org"]) == (
        ("unsubscribed", "active"), ("confirmed", "active")
    )  # fmt: skip


def test_an_unsubscribe_outlives_its_list(mailer: Invoke, workspace: Path) -> None:
    """The audit's path: rm, lists rm, lists create, a plain import: alice stays out (skipped);
    --resubscribe still brings her back."""
    assert mailer("lists", "create", "other").exit_code == 0
    assert mailer("lists", "create", "mc").exit_code == 0
    for email in ("alice@example.org", "bob@example.org"):
        assert mailer("subscribers", "add", "mc", email).exit_code == 0
    assert mailer("subscribers", "rm", "mc", "alice@example.org").exit_code == 0
    assert mailer("lists", "rm", "mc", "--yes").exit_code == 0
    # "again" takes the deleted list's id (SQLite reuses the largest); alice joins it, then it
    # goes too: her events there say nothing of mc.
    assert mailer("lists", "create", "again").exit_code == 0
    assert mailer("subscribers", "add", "again", "alice@example.org").exit_code == 0
    assert mailer("lists", "rm", "again", "--yes").exit_code == 0
    assert mailer("lists", "create", "mc").exit_code == 0
    path = write_csv(workspace / "mc.csv", "email\nalice@example.org\nbob@example.org\n")
    result = mailer("subscribers", "import", "mc", str(path))
    assert result.exit_code == 0, result.output
    assert (summary_line(result.stdout)["added"], summary_line(result.stdout)["skipped"]) == (1, 1)
    assert statuses(workspace, "alice@example.org") == ("active", {})
    added = mailer("subscribers", "add", "mc", "alice@example.org")
    assert added.exit_code == 1 and "left mc" in added.stderr
    assert send(mailer, workspace, "mc") == {"bob@example.org": 1}
    back = mailer("subscribers", "import", "mc", str(path), "--resubscribe")
    assert summary_line(back.stdout)["added"] == 1
    assert statuses(workspace, "alice@example.org") == ("active", {"mc": "confirmed"})


def test_a_reader_who_came_back_before_the_list_went_is_not_kept_out(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("lists", "create", "mc").exit_code == 0
    assert mailer("subscribers", "add", "mc", "alice@example.org").exit_code == 0
    assert mailer("subscribers", "rm", "mc", "alice@example.org").exit_code == 0
    assert mailer("lists", "rm", "mc", "--yes").exit_code == 0
    # made again; she is back by --resubscribe
    assert mailer("lists", "create", "mc").exit_code == 0
    assert mailer("subscribers", "add", "mc", "alice@example.org", "--resubscribe").exit_code == 0
    assert mailer("lists", "rm", "mc", "--yes").exit_code == 0
    assert mailer("lists", "create", "mc").exit_code == 0
    path = write_csv(workspace / "mc.csv", "email\nalice@example.org\n")
    assert summary_line(mailer("subscribers", "import", "mc", str(path)).stdout)["added"] == 1


def test_tags_and_language_columns_of_a_generic_csv(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = write_csv(
        workspace / "people.csv",
        'email,name,tags,language\nada@example.org,Ada,"steward; donor,press",fr\n'
        "bob@example.org,Bob,,en\n",
    )
    assert mailer("subscribers", "import", weekly, str(path)).exit_code == 0
    ada = readers(workspace)["ada@example.org"]
    assert (ada["tags"], ada["attributes"], ada["lang"]) == (
        {"steward", "donor", "press"},
        {},
        "fr",
    )
    where = "language = 'fr' and tag = 'donor'"  # the segment field lang, by its other name
    dry = mailer("send", str(EXAMPLE_REPORT), "-l", weekly, "--where", where, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "1 message rendered and checked for weekly where" in dry.stdout
    assert readers(workspace)["bob@example.org"]["lang"] == "en"


def test_a_state_column_is_the_readers_state_not_a_status(mailer: Invoke, workspace: Path) -> None:
    path = write_csv(workspace / "us.csv", "email,state\nann@example.org,Ohio\n")
    done = mailer("subscribers", "import", "us", str(path), "--create-list")
    assert done.exit_code == 0, done.output
    shown = mailer("subscribers", "show", "ann@example.org").stdout
    assert "state" in shown and "Ohio" in shown and "confirmed" in shown

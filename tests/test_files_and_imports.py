"""Files that are not what they seem (links, FIFOs) and imports that must not move readers
nearer to mail: each is one clear line, and nobody who left is mailed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Invoke, write_csv
from tests.test_import import summary_line

REPORT = "---\nsubject: Hello\n---\nHello, readers.\n"
SMTP = '[smtp]\nhost = "127.0.0.1"\nport = 2\nsecurity = "none"\n'


@pytest.fixture
def weekly(mailer: Invoke, workspace: Path) -> str:
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 0
    return "weekly"


def statuses(mailer: Invoke, slug: str) -> dict[str, tuple[str, str]]:
    """Each reader of the list: (membership status, subscriber status)."""
    listed = json.loads(mailer("subscribers", "ls", slug, "--json").stdout)
    return {m["email"]: (m["status"], m["subscriber_status"]) for m in listed}


def mailchimp(workspace: Path, name: str, columns: str, *rows: str) -> Path:
    """A Mailchimp export with ``columns`` after its address, rating and opt-in time."""
    header = f"Email Address,MEMBER_RATING,OPTIN_TIME,{columns}\n"
    return write_csv(workspace / name, header + "".join(f"{row}\n" for row in rows))


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# 1. mailer.toml that cannot be read is an error, never every default (the outbox for SMTP)


def _dangling(workspace: Path) -> None:
    (workspace / "cfg").mkdir()
    (workspace / "cfg" / "mailer.toml").write_text(SMTP)
    (workspace / "mailer.toml").symlink_to(workspace / "cfg" / "mailer.toml")
    (workspace / "cfg").rename(workspace / "cfg-gone")


def _looping(workspace: Path) -> None:
    (workspace / "mailer.toml").symlink_to("mailer.toml")


def _folder(workspace: Path) -> None:
    (workspace / "mailer.toml").mkdir()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_dangling, "cannot read: No such file or directory (a broken link?)"),
        (_looping, "cannot read: Too many levels of symbolic links (a broken link?)"),
        (_folder, "cannot read: not a regular file"),
    ],
    ids=["dangling link", "looping link", "folder"],
)
def test_an_unreadable_config_stops_a_send_before_anything_is_sent(
    mailer: Invoke, workspace: Path, weekly: str, make: object, reason: str
) -> None:
    (workspace / "r.md").write_text(REPORT)
    assert callable(make)
    make(workspace)
    result = mailer("send", str(workspace / "r.md"), "--list", weekly, "--yes")
    assert result.exit_code == 1
    assert one_line(result.stderr) == f"error: {workspace / 'mailer.toml'}: {reason}"
    assert not (workspace / "outbox").exists()  # not "sent" to the local Maildir


def test_a_fifo_config_is_refused_at_once(workspace: Path) -> None:
    os.mkfifo(workspace / "mailer.toml")
    command = [sys.executable, "-m", "mailer", "-w", str(workspace), "lists", "ls"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        f"error: {workspace / 'mailer.toml'}: cannot read: not a regular file"
    )


def test_a_broken_config_link_still_marks_the_workspace_above(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "mailer.toml").symlink_to(workspace / "gone" / "mailer.toml")
    (workspace / "sub").mkdir()
    monkeypatch.chdir(workspace / "sub")
    from typer.testing import CliRunner

    from mailer.cli import app

    result = CliRunner().invoke(app, ["lists", "ls"])
    assert result.exit_code == 1
    assert one_line(result.stderr) == (
        f"error: {workspace / 'mailer.toml'}: cannot read: No such file or directory"
        " (a broken link?)"
    )


# 2. export --output writes through a link to its file, and never replaces a FIFO or a device


def test_export_through_a_link_replaces_the_file_it_names_and_keeps_the_link(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    (workspace / "out").mkdir()
    real = workspace / "out" / "real.csv"
    real.write_text("old\n")
    link = workspace / "link.csv"
    link.symlink_to(Path("out") / "real.csv")
    result = mailer("subscribers", "export", weekly, "--output", str(link))
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(Path("out") / "real.csv")
    assert real.read_text(encoding="utf-8").splitlines()[1].startswith("ada@example.org,")
    assert sorted(p.name for p in (workspace / "out").iterdir()) == ["real.csv"]  # no .part
    dangling = workspace / "new.csv"
    dangling.symlink_to(workspace / "out" / "made.csv")
    assert mailer("subscribers", "export", weekly, "--output", str(dangling)).exit_code == 0
    assert dangling.is_symlink() and (workspace / "out" / "made.csv").read_text().startswith(
        "email"
    )


@pytest.mark.parametrize("through_link", [False, True], ids=["fifo", "link to a fifo"])
def test_export_refuses_a_fifo_and_leaves_it_be(
    mailer: Invoke, workspace: Path, weekly: str, through_link: bool
) -> None:
    fifo = workspace / "pipe"
    os.mkfifo(fifo)
    given = fifo
    if through_link:
        given = workspace / "to-pipe.csv"
        given.symlink_to(fifo)
    result = mailer("subscribers", "export", weekly, "--output", str(given))
    assert result.exit_code == 1
    assert one_line(result.stderr) == (
        f"error: {given}: not a regular file: --output writes a file whole; without --output,"
        " export writes to stdout"
    )
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert given.is_symlink() == through_link
    assert not list(workspace.glob("*.part"))


# 3. --status never weakens what a row says (blocked or bounced stay so, everywhere)

SUPPRESSIONS = [
    ("generic CSV", "email,status\nada@example.org,blocklisted\nbob@example.org,bounced\n"),
    (
        "Buttondown",
        "email,subscriber_type,creation_date\n"
        "ada@example.org,complained,2020-01-01\nbob@example.org,undeliverable,2020-01-01\n",
    ),
    (
        "listmonk",
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        "1,ada@example.org,Ada,{},blocklisted,2020-01-01,2020-02-01\n"
        "2,bob@example.org,Bob,{},enabled,2020-01-01,2020-02-01\n",
    ),
]


@pytest.mark.parametrize(("kind", "text"), SUPPRESSIONS, ids=[k for k, _ in SUPPRESSIONS])
@pytest.mark.parametrize("forced", ["unsubscribed", "confirmed"])
def test_status_option_keeps_a_rows_block_or_bounce(
    mailer: Invoke, workspace: Path, kind: str, text: str, forced: str
) -> None:
    for slug in ("weekly", "letters"):
        assert mailer("lists", "create", slug).exit_code == 0
    for email in ("ada@example.org", "bob@example.org"):
        assert mailer("subscribers", "add", "letters", email).exit_code == 0
    path = write_csv(workspace / "sup.csv", text)
    result = mailer("subscribers", "import", "weekly", str(path), "--status", forced)
    assert result.exit_code == 0, result.stderr
    letters = statuses(mailer, "letters")
    assert letters["ada@example.org"][1] == "blocklisted"  # no mail on any list
    if kind != "listmonk":
        assert letters["bob@example.org"][1] == "bounced"
    else:  # an enabled row takes the option
        assert statuses(mailer, "weekly")["bob@example.org"][0] == forced


def test_a_mailchimp_cleaned_export_stays_bounced_under_status_unsubscribed(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = mailchimp(workspace, "cleaned.csv", "CLEAN_TIME,LEID,EUID",
                     "ada@example.org,2,2019-01-01 10:00:00,2020-01-01 10:00:00,1,a")  # fmt: skip
    result = mailer("subscribers", "import", weekly, str(path), "--status", "unsubscribed")
    assert result.exit_code == 0, result.stderr
    assert statuses(mailer, weekly)["ada@example.org"][1] == "bounced"


# 4. a recognised format's Status column is read


def test_a_mailchimp_exports_status_column_is_read(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = mailchimp(workspace, "m.csv", "LEID,EUID,Status",
                     "ada@example.org,2,2019-01-01 10:00:00,1,a,unsubscribed",
                     "bob@example.org,2,2019-01-01 10:00:00,2,b,cleaned",
                     "cy@example.org,2,2019-01-01 10:00:00,3,c,pending",
                     "dee@example.org,2,2019-01-01 10:00:00,4,d,",
                     "eve@example.org,2,2019-01-01 10:00:00,5,e,TX")  # fmt: skip
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    assert one_line(result.stderr).startswith(f"{path}:6: unknown status in Status (confirmed,")
    assert 'not a status? --map "Status=attribute:Status"' in result.stderr
    found = statuses(mailer, weekly)
    assert found["ada@example.org"] == ("unsubscribed", "active")  # was: confirmed
    assert found["bob@example.org"][1] == "bounced"
    assert found["cy@example.org"] == ("unconfirmed", "active")
    assert found["dee@example.org"] == ("confirmed", "active")
    assert "eve@example.org" not in found
    listed = json.loads(mailer("subscribers", "ls", weekly, "--json").stdout)
    assert all("Status" not in m["attributes"] for m in listed)


def test_a_status_column_never_brings_back_a_mailchimp_unsubscribed_export(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    row = "bob@example.org,2,2019-01-01 10:00:00,2020-01-01 10:00:00,1,subscribed"
    path = mailchimp(workspace, "u.csv", "UNSUB_TIME,LEID,Status", row)
    assert mailer("subscribers", "import", weekly, str(path)).exit_code == 0
    assert statuses(mailer, weekly)["bob@example.org"] == ("unsubscribed", "active")


# 5. a time in the future is a bad row


def test_times_in_the_future_are_bad_rows_and_the_good_rows_land(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    next_year = f"{datetime.now(UTC).year + 1}-06-01 10:00:00"
    path = write_csv(
        workspace / "future.csv",
        "email,joined_at,confirmed_at,unsubscribed_at\n"
        "bob@example.org,9999-12-31T23:59:59Z,,\n"
        f"cy@example.org,2019-01-01,{next_year},\n"
        "dee@example.org,2019-01-01,2019-01-02,\n"
        "ada@example.org,,,2999-01-01\n",
    )
    args = ("--map", "joined_at=joined_at", "--map", "confirmed_at=confirmed_at")
    result = mailer("subscribers", "import", weekly, str(path), *args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        f"{path}:2: invalid time in joined_at",
        f"{path}:3: invalid time in confirmed_at",
        f"{path}:5: invalid time in unsubscribed_at",
    ]
    assert all("(in the future: after " in line for line in lines)
    assert lines[2].endswith("'2999-01-01'; the row's unsubscribed is applied without this value")
    found = statuses(mailer, weekly)
    assert "bob@example.org" not in found and "cy@example.org" not in found
    assert found["dee@example.org"] == ("confirmed", "active")
    assert found["ada@example.org"] == ("unsubscribed", "active")  # the departure still stands
    assert summary_line(result.stdout)["invalid"] == 3


# 6. add refuses a name or attributes an export could not bring back


def test_add_refuses_attributes_an_export_could_not_import_again(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    result = mailer(
        "subscribers", "add", weekly, "big@example.org", "--attr", "note=" + "v" * 70000
    )
    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert line.startswith("error: big@example.org: attribute 'note' takes 70,004 bytes")
    assert "big@example.org" not in statuses(mailer, weekly)
    name = mailer("subscribers", "add", weekly, "big@example.org", "--name", "é" * 20000)
    assert one_line(name.stderr).startswith("error: big@example.org: the name takes 40,000 bytes")
    # What fits lands; more on top of it, the same way, is refused naming what was given.
    ok = mailer("subscribers", "add", weekly, "big@example.org", "--attr", "note=" + "v" * 20000)
    assert ok.exit_code == 0, ok.stderr
    more = mailer("subscribers", "add", weekly, "big@example.org", "--attr", "x=" + "w" * 19000)
    assert more.exit_code == 1
    assert one_line(more.stderr).startswith("error: big@example.org: attribute 'x' takes")
    exported = workspace / "e.csv"
    assert mailer("subscribers", "export", weekly, "--output", str(exported)).exit_code == 0
    assert mailer("lists", "create", "copy").exit_code == 0
    again = mailer("subscribers", "import", "copy", str(exported))
    assert again.exit_code == 0, again.stderr
    assert set(statuses(mailer, "copy")) == {"ada@example.org", "big@example.org"}

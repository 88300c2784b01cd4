"""One reader's own data: `subscribers show` (GDPR articles 15 and 20) and `subscribers forget`
(article 17), through the real CLI on each engine and a real outbox."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailer.audience import erased, lists, subscriptions
from mailer.audience.subscriptions import Link
from mailer.models import Candidate, Consent
from mailer.tokens import load_secret
from tests.conftest import EXAMPLE_REPORT, Invoke, dump, engine_environ, store
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Site, confirm_link, http, make_site, post_form

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL

ADA = "ada@example.org"
TRACES = (b"ada@example.org", b"Ada Lovelace", b"Paris", b"steward", b"192.0.2.7")


def outbox_recipients(workspace: Path) -> list[str]:
    return sorted(
        path.read_bytes().split(b"\r\n", 2)[1].removeprefix(b"Delivered-To: ").decode()
        for path in (workspace / "outbox" / "new").glob("*")
    )


@pytest.fixture
def ada(mailer: Invoke, workspace: Path) -> Path:
    """Ada joined letters through the form (from 192.0.2.7) and confirmed; the editor added her
    to weekly with a name, an attribute, a tag and a language; one campaign reached her and bob."""
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("lists", "create", "letters", "--double-opt-in").exit_code == 0
    with store(workspace) as database:
        letters = lists.get(database, "letters")
        consent = Consent("form", ip="192.0.2.7")
        member = subscriptions.request(database, letters, Candidate(ADA, False, consent=consent))
        assert member is not None
        link = Link(int(time.time()), time.time(), 3600, load_secret(workspace), "192.0.2.8")
        assert subscriptions.confirm(database, member, letters.id, link).value == "changed"
        weekly = lists.get(database, "weekly")
        readers = [Candidate(ADA, False, "Ada Lovelace", {"city": "Paris"}, tags=("steward",),
                             lang="en"), Candidate("bob@example.org", False, "Bob")]  # fmt: skip
        subscriptions.add(database, weekly, readers)
    sent = mailer("send", str(EXAMPLE_REPORT), "--list", "weekly", "--yes")
    assert sent.exit_code == 0, sent.output
    assert mailer("subscribers", "rm", "weekly", ADA).exit_code == 0
    return workspace


def test_show_json_has_every_list_consent_event_and_delivery(mailer: Invoke, ada: Path) -> None:
    result = mailer("subscribers", "show", "Ada@EXAMPLE.org", "--json")
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    assert list(shown) == ["email", "name", "status", "lang", "attributes", "tags", "created_at",
                           "updated_at", "pending_address", "lists", "events",
                           "deliveries"]  # fmt: skip
    assert (shown["email"], shown["name"], shown["status"]) == (ADA, "Ada Lovelace", "active")
    assert (shown["lang"], shown["attributes"], shown["tags"]) == ("en", {"city": "Paris"},
                                                                   ["steward"])  # fmt: skip
    letters, weekly = shown["lists"]
    assert (letters["list"], letters["status"]) == ("letters", "confirmed")
    consent = letters["consent"]
    assert (consent["source"], consent["ip"]) == ("form", "192.0.2.7")  # the requester's IP
    assert consent["joined_at"] <= consent["confirmed_at"]
    assert (weekly["list"], weekly["status"]) == ("weekly", "unsubscribed")
    assert list(weekly["consent"]) == ["source", "joined_at", "confirmed_at", "ip"]
    assert weekly["consent"]["ip"] is None
    kinds = [(e["kind"], e["list"], e["detail"]) for e in shown["events"]]
    assert kinds == [
        ("subscribed", "letters", "web form"), ("confirmed", "letters", "web"),
        ("subscribed", "weekly", ""), ("unsubscribed", "weekly", "by the editor"),
    ]  # fmt: skip
    [delivery] = shown["deliveries"]
    assert list(delivery) == ["campaign", "subject", "status", "sent_at", "attempts", "code",
                              "reply", "message_id"]  # fmt: skip
    assert (delivery["campaign"], delivery["status"], delivery["attempts"]) == (1, "sent", 1)
    assert delivery["subject"].startswith("Lower Vale Water Survey")
    assert delivery["code"] == 250 and delivery["sent_at"] and delivery["message_id"]


def test_show_prints_the_same_for_people(mailer: Invoke, ada: Path) -> None:
    result = mailer("subscribers", "show", ADA)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"subscriber {ADA}\nname:       Ada Lovelace\nstatus:     active\n")
    assert "tags:       steward" in text and "attributes: city=Paris" in text
    assert "via form from 192.0.2.7" in text
    assert "campaign 1  sent" in text and "code 250  1 attempt  Lower Vale" in text
    assert "unsubscribed  weekly  by the editor" in text


def test_show_of_an_unknown_address_exits_1(mailer: Invoke, ada: Path) -> None:
    result = mailer("subscribers", "show", "ghost@example.org")
    assert (result.exit_code, result.stderr) == (1, "error: no subscriber 'ghost@example.org'\n")


def traces(workspace: Path) -> list[bytes]:
    """Which of TRACES the database still holds: SQLite's files byte for byte (free pages
    included), or every row of PostgreSQL's tables."""
    with store(workspace) as database:
        rows = "" if database.engine == "sqlite" else dump(database)
    files = (workspace / "subscribers").glob("mailer.db*")  # none on PostgreSQL
    data = b"".join(p.read_bytes() for p in files) + rows.encode()
    return [t for t in TRACES if t in data]


def test_forget_erases_the_reader_everywhere_and_keeps_counts(mailer: Invoke, ada: Path) -> None:
    counts = json.loads(mailer("campaigns", "show", "1", "--json").stdout)["counts"]
    with store(ada) as database:
        quoted = f"stopped by an error: cannot render the message for {ADA.upper()}"
        database.execute("UPDATE campaigns SET reason = ?", (quoted,))  # as a paused one says
    assert outbox_recipients(ada) == ["ada@example.org", "bob@example.org"]
    assert traces(ada) == list(TRACES)
    refused = mailer("subscribers", "forget", ADA)  # no terminal to ask, no --yes
    assert refused.exit_code == 1
    assert refused.stderr == f"error: refusing to erase {ADA} without --yes (no terminal to ask)\n"
    assert traces(ada) == list(TRACES)
    done = mailer("subscribers", "forget", ADA, "--yes")
    assert done.exit_code == 0, done.output
    assert done.stdout == (
        f"erased {ADA}: name, attributes, tags, consent IPs and the address are gone from 2"
        " lists, 4 events and 1 delivery; removed 1 message to it from the outbox; only a keyed"
        " hash is kept, so imports skip it\n"
    )
    assert traces(ada) == []
    assert outbox_recipients(ada) == ["bob@example.org"]
    after = json.loads(mailer("campaigns", "show", "1", "--json").stdout)
    assert after["counts"] == counts and after["reason"].endswith("message for [erased]")
    with store(ada) as database, database.transaction() as db:
        assert erased.erased_among(db, load_secret(ada), [ADA, "b@x.org"]) == {ADA}
    with store(ada) as database:
        anonymous = "SELECT status, name, attributes, lang FROM subscribers WHERE id = 1"
        assert database.query(anonymous) == [("erased", "", "{}", "")]
        assert database.query("SELECT COUNT(*) FROM tags") == [(0,)]
        assert database.query("SELECT DISTINCT ip FROM memberships") == [("",)]
    bob = json.loads(mailer("subscribers", "show", "bob@example.org", "--json").stdout)
    assert (bob["name"], bob["lists"][0]["status"]) == ("Bob", "confirmed")


def test_forgetting_twice_or_a_stranger(mailer: Invoke, ada: Path) -> None:
    assert mailer("subscribers", "forget", ADA, "--yes").exit_code == 0
    again = mailer("subscribers", "forget", ADA)  # nothing to ask about
    assert again.exit_code == 0
    assert again.stdout.startswith(f"{ADA} was already erased on ")
    assert again.stdout.endswith(": only a keyed hash of the address is kept\n")
    shown = mailer("subscribers", "show", ADA)
    assert shown.exit_code == 1 and "erased on" in shown.stderr and "keyed hash" in shown.stderr
    stranger = mailer("subscribers", "forget", "ghost@example.org", "--yes")
    assert (stranger.exit_code, stranger.stdout) == (1, "")
    assert stranger.stderr == "error: no subscriber 'ghost@example.org'\n"


@pytest.mark.parametrize("answer", ["n", "y"])
def test_forget_asks_on_a_terminal(ada: Path, answer: str) -> None:
    leader, follower = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    clean.update(engine_environ())  # the test's engine
    command = [sys.executable, "-m", "mailer", "-w", str(ada), "subscribers", "forget", ADA]
    with subprocess.Popen(command, stdin=follower, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=clean) as process:  # fmt: skip
        os.write(leader, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    os.close(leader)
    os.close(follower)
    assert f"Erase {ADA} everywhere (2 lists, 4 events and 1 delivery)?".encode() in out
    if answer == "n":
        assert process.returncode == 1 and b"Aborted" in err
        assert traces(ada) == list(TRACES)
    else:
        assert process.returncode == 0 and f"erased {ADA}".encode() in out
        assert traces(ada) == []


# the form: an erased reader may come back with their own new consent


@pytest.fixture
def site(engine: str, workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    """A live site for the test, on each engine in turn."""
    made = make_site(workspace, smtp)
    yield made
    made.live.stop()


def test_an_erased_reader_comes_back_through_the_form_as_a_new_subscriber(
    site: Site, mailer: Invoke, workspace: Path
) -> None:
    assert mailer("subscribers", "forget", ADA, "--yes").exit_code == 0
    secret = load_secret(workspace)
    post_form(f"{site.live.url}/s/weekly", {"email": ADA, "name": "Ada"}, ip="198.51.100.4")
    [received] = site.mailbox.wait_for(1)
    with site.live.store() as database, database.transaction() as db:
        assert erased.erased_among(db, secret, [ADA]) == {ADA}  # not yet
    assert http("POST", confirm_link(received.message, site.live.url), b"", FORM).status == 200
    with site.live.store() as database, database.transaction() as db:
        assert erased.erased_among(db, secret, [ADA]) == set()
    with site.live.store() as database:
        rows = database.query("SELECT id, status, name FROM subscribers ORDER BY id")
    assert rows[0] == (site.ada.id, "erased", "")  # the old row stays anonymous
    assert rows[1][1:] == ("active", "Ada") and rows[1][0] != site.ada.id
    assert site.membership(site.weekly, ADA) == "confirmed"
    assert site.events(ADA) == [("subscribed", "web form"), ("confirmed", "web")]

"""The welcome mail: set from a report and checked then; queued with each reader's join (the web
confirmation, the preferences page, `subscribers add --welcome`), never by an import; delivered
once through the sending service, recorded, signed, with the one-click unsubscribe."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest

from mailer import config
from mailer.db.campaign_lock import one_sender
from mailer.db.sqlite import SqliteDatabase as Database
from mailer.errors import FileInputError
from mailer.send.sessions import RunResult, Session
from mailer.send.welcome import deliver_welcomes, queue_welcome
from tests.conftest import PUBLICATION, ROOT, Invoke, write_csv
from tests.smtp_servers import LoopbackController, Mailbox, Received
from tests.test_web import FORM, Live, confirm_link, http, post_form, smtp_environ, start_web
from tests.test_web_preferences import save

EXAMPLE_WELCOME = ROOT / "examples" / "welcome.md"
SUBJECT = "Welcome to the Lower Vale Water Survey bulletin"


def report(folder: Path, name: str, subject: str, body: str = "Hello.") -> Path:
    path = folder / name
    path.write_text(f'---\nsubject: "{subject}"\n---\n\n{body}\n', encoding="utf-8")
    return path


def db(workspace: Path) -> sqlite3.Connection:
    return sqlite3.connect(workspace / "subscribers" / "mailer.db")


def deliveries(workspace: Path) -> list[tuple[int, str, str]]:
    """(campaign, address, status) of every delivery."""
    with db(workspace) as found:
        rows = found.execute(
            "SELECT d.campaign_id, s.email, d.status FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id ORDER BY d.campaign_id, s.email"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def json_of(mailer: Invoke, *args: str) -> object:
    result = mailer(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def deliver(settings: config.Settings) -> list[RunResult]:
    """What `mailer serve`'s scheduler does on each tick."""
    with Database(settings.database_path) as database:
        return asyncio.run(deliver_welcomes(Session(settings, database)))


def subjects(received: list[Received]) -> list[tuple[str, str]]:
    return [(r.recipient, str(r.message["Subject"])) for r in received]


@dataclass
class Web:
    live: Live
    mailbox: Mailbox
    env: dict[str, str]  # for the CLI: the same SMTP server and publication


@pytest.fixture
def web(workspace: Path, mailer: Invoke, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Web]:
    """`mailer serve`'s web side over SMTP; 'letters' (double opt-in, public form) has the
    example welcome; Ada is confirmed on 'weekly' (public form)."""
    controller, mailbox = smtp
    env = {**PUBLICATION, **smtp_environ(controller.port)}
    assert mailer("lists", "create", "weekly", "--public-form").exit_code == 0
    assert mailer("lists", "create", "letters", "--double-opt-in", "--public-form").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "ada@example.org", "--name", "Ada").exit_code == 0
    set_welcome = mailer("lists", "set", "letters", "--welcome", str(EXAMPLE_WELCOME))
    assert set_welcome.exit_code == 0, set_welcome.output
    live = start_web(workspace, env)
    yield Web(live, mailbox, {**env, "MAILER_NEWSLETTER_BASE_URL": live.url})
    live.stop()


# setting it


def test_a_welcome_with_an_error_is_refused_when_set_and_nothing_is_stored(
    mailer: Invoke, workspace: Path
) -> None:
    mailer("lists", "create", "weekly")
    mailer("subscribers", "add", "weekly", "ada@example.org", "--attr", "city=Oslo")
    broken = report(workspace, "broken.md", "Welcome", "Hello {{ subscriber.name( }}")
    city = report(workspace, "city.md", "Welcome", "News from {{ subscriber.attributes.city }}")
    refused = mailer("lists", "set", "weekly", "--welcome", str(broken))
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [f"error: {broken}:5: unexpected '}}', expected ')'"]
    # Fine for Ada, who has a city; a reader who joins through the form has none.
    refused = mailer("lists", "set", "weekly", "--welcome", str(city))
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"error: {city}:5: 'dict object' has no attribute 'city'"
        " (for a reader who joins: no name, no attributes)"
    ]
    assert json_of(mailer, "campaigns", "ls") == []
    assert json_of(mailer, "lists", "show", "weekly")["welcome_campaign"] is None  # type: ignore[index]
    with db(workspace) as found:
        assert found.execute("SELECT COUNT(*) FROM campaign_editions").fetchone() == (0,)
    assert "welcome:  none" in mailer("lists", "show", "weekly").stdout
    either = "News from {{ subscriber.attributes.get('city', 'the Vale') }}"
    fixed = report(workspace, "fixed.md", "Welcome", either)
    accepted = mailer("lists", "set", "weekly", "--welcome", str(fixed))
    assert accepted.exit_code == 0, accepted.output
    assert json_of(mailer, "lists", "show", "weekly")["welcome_campaign"] == 1  # type: ignore[index]
    assert deliveries(workspace) == []  # Ada was there before: she gets none


def test_welcome_and_no_welcome_together_is_one_error(mailer: Invoke) -> None:
    mailer("lists", "create", "weekly")
    both = mailer("lists", "set", "weekly", "--welcome", str(EXAMPLE_WELCOME), "--no-welcome")
    assert both.exit_code == 1 and "contradict" in both.stderr
    assert json_of(mailer, "campaigns", "ls") == []


# joining through the web


def test_a_reader_who_confirms_on_the_web_gets_one_signed_welcome(
    web: Web, mailer: Invoke, workspace: Path
) -> None:
    generated = mailer("dkim", "keygen", "--domain", "example.org")
    assert generated.exit_code == 0, generated.output
    [line] = [x for x in generated.stdout.splitlines() if "._domainkey." in x]
    record = "".join(re.findall(r'"([^"]*)"', line))
    answer = post_form(f"{web.live.url}/s/letters", {"email": "bea@example.org", "name": "Bea"})
    assert answer.status == 200
    [confirmation] = web.mailbox.wait_for(1)
    link = confirm_link(confirmation.message, web.live.url)
    assert deliveries(workspace) == []  # asking is not joining
    assert http("POST", link, b"", FORM).status == 200
    assert deliveries(workspace) == [(1, "bea@example.org", "queued")]  # with the join itself
    signing = config.load(workspace, {**web.env, "MAILER_DKIM_DOMAIN": "example.org"})
    [result] = deliver(signing)
    assert (result.campaign_id, result.progress.counts["sent"]) == (1, 1)
    received = web.mailbox.received
    assert subjects(received) == [
        ("bea@example.org", "Please confirm your subscription to letters"),
        ("bea@example.org", SUBJECT),
    ]
    welcome = received[1]
    assert dkim.verify(welcome.data, dnsfunc=lambda name, timeout=5: record.encode())
    assert welcome.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.search(r"<(http[^>]+/u/[^>]+)>", str(welcome.message["List-Unsubscribe"]))
    assert found is not None and found.group(1).startswith(web.live.url)
    # A second click on the link: the same page, no second welcome.
    again = http("POST", link, b"", FORM)
    assert again.status == 200 and "Your subscription is confirmed" in again.body
    assert deliveries(workspace) == [(1, "bea@example.org", "sent")]
    assert deliver(signing) == []
    assert len(web.mailbox.received) == 2
    # The welcome's one-click unsubscribe is a real one.
    left = http("POST", found.group(1), b"List-Unsubscribe=One-Click", FORM)
    assert left.status == 200
    with db(workspace) as store:
        status = store.execute(
            "SELECT m.status FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
            " WHERE s.email = 'bea@example.org'"
        ).fetchone()
    assert status == ("unsubscribed",)


def test_joining_a_list_on_the_preferences_page_welcomes_when_confirmed(
    web: Web, workspace: Path
) -> None:
    with db(workspace) as found:
        ada, weekly, letters = (found.execute(sql).fetchone()[0] for sql in (
            "SELECT id FROM subscribers WHERE email = 'ada@example.org'",
            "SELECT id FROM lists WHERE slug = 'weekly'",
            "SELECT id FROM lists WHERE slug = 'letters'"))  # fmt: skip
    page = f"{web.live.url}/p/{web.live.signer().make('p', ada, weekly)}"
    assert save(web, page, name="Ada L.").status == 200  # saved, nothing joined
    assert deliveries(workspace) == []
    assert save(web, page, list=[str(weekly), str(letters)]).status == 200
    [asked] = web.mailbox.wait_for(1)
    assert deliveries(workspace) == []  # ticking is asking: the inbox says yes
    http("POST", confirm_link(asked.message, web.live.url), b"", FORM)
    assert deliveries(workspace) == [(1, "ada@example.org", "queued")]
    [result] = deliver(web.live.settings)
    assert result.progress.counts["sent"] == 1
    assert subjects(web.mailbox.received)[1:] == [("ada@example.org", SUBJECT)]
    # Leaving and joining again: she has had this welcome.
    save(web, page, list=[str(weekly)])
    save(web, page, list=[str(weekly), str(letters)])
    [_, _, again] = web.mailbox.wait_for(3)
    http("POST", confirm_link(again.message, web.live.url), b"", FORM)
    assert deliveries(workspace) == [(1, "ada@example.org", "sent")]
    assert deliver(web.live.settings) == []


def test_a_reader_who_left_or_was_blocked_before_their_turn_is_skipped(
    web: Web, mailer: Invoke, workspace: Path
) -> None:
    for email in ("bea@example.org", "cy@example.org", "dee@example.org"):
        post_form(f"{web.live.url}/s/letters", {"email": email})
    links = [confirm_link(r.message, web.live.url) for r in web.mailbox.wait_for(3)]
    for link in links:
        assert http("POST", link, b"", FORM).status == 200
    assert [status for *_, status in deliveries(workspace)] == ["queued"] * 3
    assert mailer("subscribers", "rm", "letters", "bea@example.org").exit_code == 0
    assert mailer("subscribers", "block", "cy@example.org").exit_code == 0
    [result] = deliver(web.live.settings)
    assert result.progress.counts["skipped"] == 2 and result.progress.counts["sent"] == 1
    assert deliveries(workspace) == [(1, "bea@example.org", "skipped"),
                                     (1, "cy@example.org", "skipped"),
                                     (1, "dee@example.org", "sent")]  # fmt: skip
    assert subjects(web.mailbox.received[3:]) == [("dee@example.org", SUBJECT)]


def test_the_welcome_is_kept_out_of_the_public_archive(
    web: Web, mailer: Invoke, workspace: Path
) -> None:
    assert mailer("lists", "set", "letters", "--public-archive").exit_code == 0
    post_form(f"{web.live.url}/s/letters", {"email": "bea@example.org"})
    [confirmation] = web.mailbox.wait_for(1)
    http("POST", confirm_link(confirmation.message, web.live.url), b"", FORM)
    [result] = deliver(web.live.settings)
    assert result.progress.counts["sent"] == 1
    index = http("GET", f"{web.live.url}/archive/")
    assert index.status == 200 and SUBJECT not in index.body
    assert http("GET", f"{web.live.url}/archive/1").status == 404
    assert SUBJECT not in http("GET", f"{web.live.url}/archive/feed.xml").body
    # So the welcome links to no page of it: "view online" would answer 404.
    [welcomed] = [r.message for r in web.mailbox.received if r.message["Subject"] == SUBJECT]
    assert "/archive/" not in welcomed.as_string()


def test_a_double_opt_in_add_queues_the_welcome_when_the_reader_confirms(
    web: Web, mailer: Invoke, workspace: Path
) -> None:
    added = mailer("subscribers", "add", "letters", "fay@example.org", "--welcome", env=web.env)
    assert added.exit_code == 0, added.output
    assert "fay@example.org gets the welcome mail when they confirm" in added.stdout
    [confirmation] = web.mailbox.wait_for(1)
    assert deliveries(workspace) == []
    assert http("POST", confirm_link(confirmation.message, web.live.url), b"", FORM).status == 200
    assert deliveries(workspace) == [(1, "fay@example.org", "queued")]


# the editor's additions


@dataclass
class Editor:
    env: dict[str, str]  # the CLI's: the SMTP server, the publication
    mailbox: Mailbox

    def tick(self, workspace: Path) -> list[RunResult]:
        return deliver(config.load(workspace, self.env))


@pytest.fixture
def editor(mailer: Invoke, smtp: tuple[LoopbackController, Mailbox]) -> Editor:
    """A single opt-in list 'weekly' with the example welcome."""
    controller, mailbox = smtp
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("lists", "set", "weekly", "--welcome", str(EXAMPLE_WELCOME)).exit_code == 0
    return Editor({**PUBLICATION, **smtp_environ(controller.port)}, mailbox)


def test_add_with_welcome_sends_it_at_once_plain_add_and_import_send_none(
    editor: Editor, mailer: Invoke, workspace: Path
) -> None:
    mailbox = editor.mailbox
    added = mailer("subscribers", "add", "weekly", "bob@example.org", "--welcome", env=editor.env)
    assert added.exit_code == 0, added.output
    assert "welcome mail (campaign 1) to bob@example.org:\n1 sent, 0 deferred" in added.stdout
    assert subjects(mailbox.received) == [("bob@example.org", SUBJECT)]
    assert mailer("subscribers", "add", "weekly", "cy@example.org", env=editor.env).exit_code == 0
    people = "email,name\ndee@example.org,Dee\neve@example.org,Eve\n"
    csv = write_csv(workspace / "people.csv", people)
    imported = mailer("subscribers", "import", "weekly", str(csv), env=editor.env)
    assert imported.exit_code == 0, imported.output
    again = mailer("subscribers", "add", "weekly", "bob@example.org", "--welcome", env=editor.env)
    assert "no welcome mail: bob@example.org did not join now" in again.stdout
    assert deliveries(workspace) == [(1, "bob@example.org", "sent")]
    assert editor.tick(workspace) == []
    assert len(mailbox.received) == 1
    shown = json_of(mailer, "subscribers", "show", "bob@example.org")
    assert [(d["campaign"], d["status"]) for d in shown["deliveries"]] == [(1, "sent")]  # type: ignore[index]


def test_add_with_welcome_on_a_list_without_one_is_refused(mailer: Invoke) -> None:
    mailer("lists", "create", "plain")
    refused = mailer("subscribers", "add", "plain", "bob@example.org", "--welcome")
    assert refused.exit_code == 1
    assert "list plain has no welcome mail: set one with mailer lists set plain" in refused.stderr
    assert json_of(mailer, "subscribers", "ls", "plain") == []


def test_add_with_welcome_leaves_it_queued_while_another_process_sends(
    editor: Editor, mailer: Invoke, workspace: Path
) -> None:
    mailbox = editor.mailbox
    with one_sender(workspace / "subscribers" / "mailer.db", 1):
        added = mailer(
            "subscribers", "add", "weekly", "bob@example.org", "--welcome", env=editor.env
        )
        assert editor.tick(workspace) == []  # a tick skips it, too
    assert added.exit_code == 0, added.output
    assert "welcome to bob@example.org queued: campaign 1 is being sent by another" in added.stdout
    assert deliveries(workspace) == [(1, "bob@example.org", "queued")] and mailbox.received == []
    [result] = editor.tick(workspace)  # the next tick
    assert result.progress.counts["sent"] == 1
    assert subjects(mailbox.received) == [("bob@example.org", SUBJECT)]


def test_no_welcome_and_replacing_it(editor: Editor, mailer: Invoke, workspace: Path) -> None:
    mailbox = editor.mailbox
    mailer("subscribers", "add", "weekly", "bob@example.org", "--welcome", env=editor.env)
    second = report(workspace, "second.md", "Welcome, second edition")
    replaced = mailer("lists", "set", "weekly", "--welcome", str(second))
    assert replaced.exit_code == 0, replaced.output
    assert "welcome mail is campaign 2" in replaced.stdout
    assert "it replaces campaign 1" in replaced.stdout
    mailer("subscribers", "add", "weekly", "cy@example.org", "--welcome", env=editor.env)
    again = mailer("subscribers", "add", "weekly", "bob@example.org", "--welcome", env=editor.env)
    assert "no welcome mail: bob@example.org did not join now" in again.stdout  # on it already
    assert subjects(mailbox.received) == [
        ("bob@example.org", SUBJECT), ("cy@example.org", "Welcome, second edition")]  # fmt: skip
    old, new = mailer("campaigns", "show", "1").stdout, mailer("campaigns", "show", "2").stdout
    assert "kind:     welcome mail, replaced: new readers of weekly no longer get it" in old
    assert "kind:     welcome mail of weekly: each reader who joins gets it once" in new
    cleared = mailer("lists", "set", "weekly", "--no-welcome")
    assert cleared.exit_code == 0 and "campaign 2 stays in" in cleared.stdout
    assert "welcome:  none" in mailer("lists", "show", "weekly").stdout
    refused = mailer("subscribers", "add", "weekly", "dee@example.org", "--welcome", env=editor.env)
    assert refused.exit_code == 1 and "has no welcome mail" in refused.stderr
    assert mailer("subscribers", "add", "weekly", "dee@example.org", env=editor.env).exit_code == 0
    assert editor.tick(workspace) == []
    assert len(mailbox.received) == 2
    listed = json_of(mailer, "campaigns", "ls")
    assert [(c["id"], c["kind"], c["counts"]["sent"]) for c in listed] == [  # type: ignore[index, union-attr]
        (1, "welcome", 1), (2, "welcome", 1)]  # fmt: skip


def test_campaigns_ls_tells_a_welcome_from_an_issue(
    editor: Editor, mailer: Invoke, workspace: Path
) -> None:
    mailer("subscribers", "add", "weekly", "ada@example.org")
    sent = mailer("send", str(ROOT / "examples" / "report.md"), "--list", "weekly", "--yes",
                  env=editor.env)  # fmt: skip
    assert sent.exit_code == 0, sent.output
    listed = json_of(mailer, "campaigns", "ls")
    assert [(c["id"], c["kind"]) for c in listed] == [(1, "welcome"), (2, "issue")]  # type: ignore[index, union-attr]
    assert json_of(mailer, "campaigns", "show", "1")["kind"] == "welcome"  # type: ignore[index]
    header, *rows = [line.split("\t") for line in mailer("campaigns", "ls").stdout.splitlines()]
    assert header[:4] == ["id", "list", "kind", "status"]
    assert [row[2] for row in rows] == ["welcome", "issue"]


def test_each_reader_gets_the_welcome_in_their_language(
    mailer: Invoke, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    env = {**PUBLICATION, **smtp_environ(controller.port)}
    english = report(workspace, "hello.md", "Welcome")
    french = workspace / "hello.fr.md"
    french.write_text('---\nsubject: "Bienvenue"\nlang: fr\n---\n\nBonjour.\n', encoding="utf-8")
    mailer("lists", "create", "weekly")
    assert mailer("lists", "set", "weekly", "--welcome", str(english)).exit_code == 0
    for email, lang in (("ana@example.org", "fr-CA"), ("bob@example.org", "de")):
        added = mailer("subscribers", "add", "weekly", email, "--language", lang, "--welcome",
                       env=env)  # fmt: skip
        assert added.exit_code == 0, added.output
    assert subjects(mailbox.received) == [("ana@example.org", "Bienvenue"),
                                          ("bob@example.org", "Welcome")]  # fmt: skip
    with db(workspace) as found:
        editions = found.execute("SELECT edition FROM deliveries ORDER BY subscriber_id").fetchall()
    assert editions == [("fr",), ("en",)]


def test_one_welcome_that_fails_for_a_reader_holds_up_no_other(
    mailer: Invoke, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    env = {**PUBLICATION, **smtp_environ(controller.port)}
    divided = report(workspace, "divided.md", "Shares",
                     "{{ 100 // subscriber.attributes.get('n', '1')|int }} each")  # fmt: skip
    plain = report(workspace, "plain.md", "Plain welcome")
    for slug, path in (("a-shares", divided), ("b-plain", plain)):
        mailer("lists", "create", slug)
        assert mailer("lists", "set", slug, "--welcome", str(path)).exit_code == 0
    with one_sender(workspace / "subscribers" / "mailer.db", 1), \
            one_sender(workspace / "subscribers" / "mailer.db", 2):  # fmt: skip
        for slug in ("a-shares", "b-plain"):
            mailer("subscribers", "add", slug, "zed@example.org", "--attr", "n=0", "--welcome")
    assert [status for *_, status in deliveries(workspace)] == ["queued", "queued"]
    with pytest.raises(FileInputError, match=r"divided\.md:5: integer division or modulo by zero"):
        deliver(config.load(workspace, env))
    assert subjects(mailbox.received) == [("zed@example.org", "Plain welcome")]
    assert deliveries(workspace) == [(1, "zed@example.org", "queued"),
                                     (2, "zed@example.org", "sent")]  # fmt: skip


def test_queue_welcome_queues_only_for_a_confirmed_active_member_and_once(
    mailer: Invoke, workspace: Path
) -> None:
    mailer("lists", "create", "letters", "--double-opt-in")
    assert mailer("lists", "set", "letters", "--welcome", str(EXAMPLE_WELCOME)).exit_code == 0
    mailer("subscribers", "add", "letters", "fay@example.org")  # unconfirmed: no mail sent here
    with Database(workspace / "subscribers" / "mailer.db") as database:
        [(list_id,)] = database.query("SELECT id FROM lists")
        [(fay,)] = database.query("SELECT id FROM subscribers")
        with database.transaction() as sql:
            assert queue_welcome(sql, list_id, fay) is None
        assert deliveries(workspace) == []
        with database.transaction() as sql:
            sql.execute("UPDATE memberships SET status = 'confirmed'")
            assert queue_welcome(sql, list_id, fay) == 1
            assert queue_welcome(sql, list_id, fay) is None  # once
    assert deliveries(workspace) == [(1, "fay@example.org", "queued")]


def test_the_service_sends_the_welcome_of_a_reader_who_confirms_once(
    workspace: Path, mailer: Invoke, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    """`mailer serve` with its scheduler: the confirm click queues it, the next tick sends it."""
    controller, mailbox = smtp
    env = {**PUBLICATION, **smtp_environ(controller.port), "MAILER_SCHEDULE_POLL_SECONDS": "0.05"}
    assert mailer("lists", "create", "letters", "--double-opt-in", "--public-form").exit_code == 0
    assert mailer("lists", "set", "letters", "--welcome", str(EXAMPLE_WELCOME)).exit_code == 0
    live = start_web(workspace, env, scheduler=True)
    try:
        post_form(f"{live.url}/s/letters", {"email": "bea@example.org"})
        [confirmation] = mailbox.wait_for(1)
        link = confirm_link(confirmation.message, live.url)
        for _ in range(2):  # the second click changes nothing, and queues nothing
            assert http("POST", link, b"", FORM).status == 200
        mailbox.wait_for(2)
        health = json.loads(http("GET", f"{live.url}/healthz").body)
        assert health["status"] == "ok" and health["scheduler"] == "running"
    finally:
        live.stop()  # the scheduler stops with it: whatever it was to send has gone
    assert subjects(mailbox.received) == [
        ("bea@example.org", "Please confirm your subscription to letters"),
        ("bea@example.org", SUBJECT),
    ]
    assert deliveries(workspace) == [(1, "bea@example.org", "sent")]

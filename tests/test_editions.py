"""Editions: issue.md with issue.fr.md beside it is one campaign, each reader gets their
language's edition, through the real CLI, a real SQLite file, the outbox and the web app."""

from __future__ import annotations

import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.compose.editions import choose_edition, read_editions
from mailer.compose.report import load_report
from mailer.errors import InputError
from tests.conftest import Invoke
from tests.message_checks import check_message
from tests.test_web import http, start_web

ENGLISH = """---
subject: The spring issue
author: Ada Lovelace
date: 2026-03-21
---
# The spring issue

Dear {{ subscriber.name or "reader" }}, the river is high this spring.
"""
FRENCH = """---
subject: Le numéro du printemps
---
# Le numéro du printemps

Bonjour {{ subscriber.name or "lectrice, lecteur" }}, la rivière est haute ce printemps.
"""
GERMAN = """---
subject: Die Frühlingsausgabe
lang: de
---
# Die Frühlingsausgabe

Hallo {{ subscriber.name }}, der Fluss führt Hochwasser.
"""
READERS = {  # address: (--language, the edition they get)
    "ada@example.org": ("en", "en"),
    "zoe@example.org": ("fr", "fr"),
    "camille@example.org": ("fr-CA", "fr"),
    "jonas@example.org": ("DE-at", "de"),
    "ines@example.org": ("pt-BR", "en"),
    "bob@example.org": ("", "en"),
}


def write_issue(folder: Path, **editions: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issue.md").write_text(ENGLISH, encoding="utf-8")
    for lang, text in editions.items():
        (folder / f"issue.{lang}.md").write_text(text, encoding="utf-8")
    return folder / "issue.md"


def add_readers(mailer: Invoke, slug: str = "weekly", env: dict[str, str] | None = None) -> None:
    assert mailer("lists", "create", slug, "--public-archive", env=env).exit_code == 0
    for email, (lang, _) in READERS.items():
        extra = ["--language", lang] if lang else []
        added = mailer("subscribers", "add", slug, email, "--name", email[:3].title(), *extra,
                       env=env)  # fmt: skip
        assert added.exit_code == 0, added.output


def delivered(outbox: Path) -> dict[str, EmailMessage]:
    found = {}
    for path in (outbox / "new").iterdir():
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        assert check_message(path.read_bytes()) == []
        found[message["To"].addresses[0].addr_spec] = message
    return found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def test_each_reader_gets_their_language_and_their_unsubscribe_page(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH, de=GERMAN)
    live = start_web(workspace, {})
    try:
        env = {"MAILER_NEWSLETTER_BASE_URL": live.url}
        add_readers(mailer, env=env)
        outbox = workspace / "out"
        sent = mailer("send", str(report), "--list", "weekly", "--yes", "--outbox", str(outbox),
                      env=env)  # fmt: skip
        assert sent.exit_code == 0, sent.output
        messages = delivered(outbox)
        assert set(messages) == set(READERS)
        subjects = {"en": "The spring issue", "fr": "Le numéro du printemps",
                    "de": "Die Frühlingsausgabe"}  # fmt: skip
        for email, (_, edition) in READERS.items():
            message = messages[email]
            assert message["Subject"] == subjects[edition], email
            assert f'<html lang="{edition}"' in html_of(message)
            suffix = "" if edition == "en" else f"/{edition}"
            assert f"{live.url}/archive/1{suffix}" in text_of(message)
        assert "la rivière est haute" in text_of(messages["zoe@example.org"])
        assert "la rivière est haute" in html_of(messages["camille@example.org"])
        assert "the river is high" in text_of(messages["ada@example.org"])
        assert "rivière" not in text_of(messages["ines@example.org"])
        assert "Se désabonner" in text_of(messages["zoe@example.org"])
        assert "Unsubscribe: " in text_of(messages["ada@example.org"])

        def unsubscribe_page(email: str) -> str:
            link = str(messages[email]["List-Unsubscribe"]).split(",")[0].strip(" <>")
            page = http("GET", link)
            assert page.status == 200
            return page.body

        french = unsubscribe_page("zoe@example.org")
        assert '<html lang="fr">' in french and "Se désabonner de weekly" in french
        assert "Appuyez sur le bouton pour ne plus recevoir" in french
        english = unsubscribe_page("ada@example.org")
        assert '<html lang="en">' in english and "Unsubscribe from weekly?" in english
        assert "Appuyez" not in english
        assert '<html lang="de">' in unsubscribe_page("jonas@example.org")

        # The archive keeps every edition; the feed links them with hreflang.
        copy = http("GET", f"{live.url}/archive/1/fr")
        assert copy.status == 200 and "la rivière est haute" in copy.body
        assert '<html lang="fr"' in copy.body and "zoe@example.org" not in copy.body
        assert "the river is high" in http("GET", f"{live.url}/archive/1").body
        assert http("GET", f"{live.url}/archive/1/it").status == 404
        assert http("GET", f"{live.url}/archive/1/en").status == 404  # the default: /archive/1
        atom = "{http://www.w3.org/2005/Atom}"
        feed = ET.fromstring(http("GET", f"{live.url}/archive/feed.xml").body.encode())
        [entry] = feed.findall(f"{atom}entry")
        links = {(link.get("hreflang"), link.get("href")) for link in entry.findall(f"{atom}link")}
        assert links == {("en", f"{live.url}/archive/1"), ("fr", f"{live.url}/archive/1/fr"),
                         ("de", f"{live.url}/archive/1/de")}  # fmt: skip
        index = http("GET", f"{live.url}/archive/", headers={"Accept-Language": "fr-CH, en;q=0.5"})
        assert index.headers["vary"] == "Accept-Language"
        french = '<a class="issue" href="/archive/1/fr" hreflang="fr" lang="fr">'
        assert french + "Le numéro du printemps</a>" in index.body
    finally:
        live.stop()


def test_campaigns_show_counts_deliveries_per_edition(mailer: Invoke, workspace: Path) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH, de=GERMAN)
    add_readers(mailer)
    sent = mailer("send", str(report), "--list", "weekly", "--yes")
    assert sent.exit_code == 0, sent.output
    assert "editions:  en, de, fr (the first is the default)" in sent.stdout
    shown = json.loads(mailer("campaigns", "show", "1", "--json").stdout)
    editions = {e["lang"]: e for e in shown["editions"]}
    assert [e["lang"] for e in shown["editions"]] == ["en", "de", "fr"]
    assert [e["default"] for e in shown["editions"]] == [True, False, False]
    assert {lang: e["counts"]["sent"] for lang, e in editions.items()} == {
        "en": 3,
        "fr": 2,
        "de": 1,
    }
    assert editions["fr"]["subject"] == "Le numéro du printemps"
    assert set(editions["de"]["counts"]) == {"queued", "sent", "deferred", "failed", "skipped"}
    text = mailer("campaigns", "show", "1").stdout
    assert re.search(r"^  fr\s+0 queued, 2 sent, .*\s+Le numéro du printemps$", text, re.MULTILINE)
    assert re.search(r"^  en \(default\)\s+0 queued, 3 sent, ", text, re.MULTILINE)
    rows = text.split("editions:\n")[1].splitlines()[:3]
    assert "\t" not in text.split("editions:")[1]
    assert len({row.index("0 queued") for row in rows}) == 1  # the counts in one column
    subjects = [row.index(subject) for row, subject in zip(rows, subjects_of(shown), strict=True)]
    assert len(set(subjects)) == 1  # and the subjects in the next
    database = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    stored = dict(database.execute(
        "SELECT s.email, d.edition FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
    ).fetchall())  # fmt: skip
    assert stored == {email: edition for email, (_, edition) in READERS.items()}


def subjects_of(shown: dict[str, list[dict[str, str]]]) -> list[str]:
    return [edition["subject"] for edition in shown["editions"]]


def test_a_variable_missing_in_one_edition_stops_the_send_naming_that_file(
    mailer: Invoke, workspace: Path
) -> None:
    broken = GERMAN + "\nAusgabe {{ report.meta.issue }}.\n"
    report = write_issue(workspace / "issues", fr=FRENCH, de=broken)
    add_readers(mailer)
    for extra in (["--dry-run"], ["--yes"]):
        result = mailer("send", str(report), "--list", "weekly", *extra)
        assert result.exit_code == 1
        assert f"{workspace / 'issues' / 'issue.de.md'}:9:" in result.stderr
        assert "no attribute 'issue'" in result.stderr
    assert "no campaigns" in mailer("campaigns", "ls").stderr
    assert not (workspace / "outbox").exists()


def test_an_edition_for_readers_who_are_not_there_is_still_checked(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_issue(workspace / "issues", es="# Hola\n\n{{ subscriber.attributes.ciudad }}\n")
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 0
    checked = mailer("send", str(report), "--list", "weekly", "--dry-run")
    assert checked.exit_code == 0, checked.output  # the stand-in reader has every attribute
    es = workspace / "issues" / "issue.es.md"
    es.write_text("# Hola\n\n{{ nadie.sabe }}\n", encoding="utf-8")
    failed = mailer("send", str(report), "--list", "weekly", "--dry-run")
    assert failed.exit_code == 1 and f"{es}:3:" in failed.stderr and "nadie" in failed.stderr


def test_a_resumed_campaign_sends_the_editions_it_stored(mailer: Invoke, workspace: Path) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH)
    add_readers(mailer)
    first = mailer("send", str(report), "--list", "weekly", "--yes", "--limit", "2")
    assert first.exit_code == 0, first.output
    (workspace / "issues" / "issue.fr.md").unlink()
    report.write_text(ENGLISH.replace("river is high", "river is dry"), encoding="utf-8")
    assert mailer("campaigns", "resume", "1").exit_code == 0
    messages = delivered(workspace / "outbox")
    assert len(messages) == len(READERS)
    assert "la rivière est haute" in text_of(messages["zoe@example.org"])
    assert "la rivière est haute" in text_of(messages["camille@example.org"])
    assert all("river is dry" not in text_of(m) for m in messages.values())
    # resumed, the French edition still takes the default's byline, as the first run did
    assert "Ada Lovelace" in text_of(messages["camille@example.org"])


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("issue.fr.md", "---\nlang: de\n---\n# Titre\n", "differs from the file name's 'fr'"),
        ("issue.en.md", "# Title\n", "a second edition in en"),
    ],
)
def test_editions_that_contradict_themselves_are_refused(
    mailer: Invoke, workspace: Path, name: str, text: str, problem: str
) -> None:
    report = write_issue(workspace / "issues")
    (workspace / "issues" / name).write_text(text, encoding="utf-8")
    add_readers(mailer)
    result = mailer("send", str(report), "--list", "weekly", "--dry-run")
    assert result.exit_code == 1 and problem in result.stderr and name in result.stderr


def test_an_editions_other_lang_names_its_front_matter_line(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_issue(workspace / "issues")
    spanish = workspace / "issues" / "issue.es.md"
    spanish.write_text("---\nsubject: Hola\nauthor: Ana\nlang: fr\n---\n# Hola\n", encoding="utf-8")
    result = mailer("render", str(report), "--out", str(workspace / "p"))
    assert result.exit_code == 1
    assert result.stderr == f"error: {spanish}:4: lang 'fr' differs from the file name's 'es'\n"


def test_files_beside_the_report_that_are_no_language_are_not_editions(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH)
    for name in ("issue.old.md", "issue.bak.md", "issue.fin.md", "issue.v2.md", "issue.fr.txt",
                 "other.de.md"):  # fmt: skip
        (workspace / "issues" / name).write_text("# {{ broken", encoding="utf-8")
    add_readers(mailer)
    sent = mailer("send", str(report), "--list", "weekly", "--yes")
    assert sent.exit_code == 0, sent.output
    assert "editions:  en, fr (the first is the default)" in sent.stdout
    shown = json.loads(mailer("campaigns", "show", "1", "--json").stdout)
    assert [e["lang"] for e in shown["editions"]] == ["en", "fr"]


def test_signing_worker_processes_build_each_readers_edition(
    mailer: Invoke, workspace: Path
) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH)
    env = {"MAILER_DKIM_DOMAIN": "example.org", "MAILER_DKIM_PROCESSES": "1"}
    assert mailer("dkim", "keygen", "--domain", "example.org", env=env).exit_code == 0
    add_readers(mailer, env=env)
    sent = mailer("send", str(report), "--list", "weekly", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    messages = delivered(workspace / "outbox")
    assert messages["camille@example.org"]["Subject"] == "Le numéro du printemps"
    assert messages["ada@example.org"]["Subject"] == "The spring issue"
    assert all(m["DKIM-Signature"] for m in messages.values())


def test_the_readers_language_comes_from_add_and_from_imports(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("lists", "create", "weekly").exit_code == 0
    added = mailer("subscribers", "add", "weekly", "ada@example.org", "--language", "pt_BR")
    assert added.exit_code == 0
    shown = json.loads(mailer("subscribers", "show", "ada@example.org", "--json").stdout)
    assert shown["lang"] == "pt-BR"
    bad = mailer("subscribers", "add", "weekly", "bob@example.org", "--language", "English")
    assert bad.exit_code == 1 and "invalid --language 'English'" in bad.stderr
    csv = workspace / "readers.csv"
    csv.write_text(
        "email,locale\nzoe@example.org,fr_FR\nbea@example.org,\n"
        "jo@example.org,de_DE.UTF-8\nxx@example.org,français\n",
        encoding="utf-8",
    )
    imported = mailer("subscribers", "import", "weekly", str(csv))
    assert imported.exit_code == 1  # the one row whose language cannot be read
    assert "invalid language tag" in imported.stderr and "français" in imported.stderr
    other = workspace / "other.csv"
    other.write_text("Email,Language\nlea@example.org,es\n", encoding="utf-8")
    assert mailer("subscribers", "import", "weekly", str(other)).exit_code == 0
    langs = {
        email: json.loads(mailer("subscribers", "show", email, "--json").stdout)["lang"]
        for email in ("zoe@example.org", "bea@example.org", "jo@example.org", "lea@example.org")
    }
    assert langs == {"zoe@example.org": "fr-FR", "bea@example.org": None,
                     "jo@example.org": "de-DE", "lea@example.org": "es"}  # fmt: skip
    listed = mailer("subscribers", "ls", "weekly", "--json").stdout
    assert all("locale" not in json.loads(line.rstrip(",")).get("attributes", {})
               for line in listed.splitlines()[1:-1])  # fmt: skip


def test_a_campaign_stored_before_editions_resumes_in_its_reports_language(
    mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "bericht.md"
    report.write_text(GERMAN, encoding="utf-8")
    add_readers(mailer)
    assert mailer("send", str(report), "--list", "weekly", "--yes", "--limit", "1").exit_code == 0
    with sqlite3.connect(workspace / "subscribers" / "mailer.db") as database:
        database.execute("DELETE FROM campaign_editions")  # as migration 9 left older ones
        database.execute("UPDATE deliveries SET edition = ''")
    assert mailer("campaigns", "resume", "1").exit_code == 0
    messages = delivered(workspace / "outbox")
    assert len(messages) == len(READERS)
    assert all('<html lang="de"' in html_of(m) for m in messages.values())
    assert all("Abmelden: " in text_of(m) for m in messages.values())
    shown = json.loads(mailer("campaigns", "show", "1", "--json").stdout)
    assert [(e["lang"], e["counts"]["sent"]) for e in shown["editions"]] == [("de", 6)]


def test_a_test_send_goes_out_in_each_addresses_edition(mailer: Invoke, workspace: Path) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH)
    add_readers(mailer)
    for address, subject in (("camille@example.org", "[TEST] Le numéro du printemps"),
                             ("stranger@example.net", "[TEST] The spring issue")):  # fmt: skip
        sent = mailer("send", str(report), "--list", "weekly", "--test", address)
        assert sent.exit_code == 0, sent.output
        [message] = [m for a, m in delivered(workspace / "outbox").items() if a == address]
        assert message["Subject"] == subject
    shown_as = mailer("send", str(report), "--list", "weekly", "--test", "me@example.net",
                      "--test-as", "zoe@example.org")  # fmt: skip
    assert shown_as.exit_code == 0
    me = delivered(workspace / "outbox")["me@example.net"]
    assert me["Subject"] == "[TEST] Le numéro du printemps"


def test_the_edition_a_preview_shows_is_the_one_a_reader_of_that_language_gets(
    workspace: Path,
) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH, de=GERMAN)
    editions = read_editions(load_report(report))
    assert choose_edition(editions, "fr-CA").subject == "Le numéro du printemps"
    assert choose_edition(editions, "fr-CA").lang == "fr"
    assert choose_edition(editions, "DE").path.name == "issue.de.md"
    assert choose_edition(editions, "en-GB").path == report
    with pytest.raises(InputError, match=r"no edition in 'it' .*: en, de, fr"):
        choose_edition(editions, "it")


def test_render_language_previews_that_edition(mailer: Invoke, workspace: Path) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH, de=GERMAN)
    out = workspace / "preview"
    result = mailer("render", str(report), "--language", "fr-CA", "--out", str(out))
    assert result.exit_code == 0, result.output
    message = message_from_bytes((out / "message.eml").read_bytes(), policy=policy.default)
    assert message["Subject"] == "Le numéro du printemps"
    assert "Le numéro du printemps" in (out / "message.txt").read_text(encoding="utf-8")
    none = mailer("render", str(report), "--language", "it", "--out", str(out))
    assert none.exit_code == 1 and "no edition in 'it'" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1


def test_render_to_a_reader_shows_the_edition_they_get(mailer: Invoke, workspace: Path) -> None:
    report = write_issue(workspace / "issues", fr=FRENCH, de=GERMAN)
    add_readers(mailer)
    out = workspace / "preview"
    for email, (_, edition) in READERS.items():
        done = mailer("render", str(report), "--list", "weekly", "--to", email, "--out", str(out))
        assert done.exit_code == 0, done.output
        message = message_from_bytes((out / "message.eml").read_bytes(), policy=policy.default)
        assert message["To"].addresses[0].addr_spec == email
        assert f'<html lang="{edition}"' in (out / "message.html").read_text(encoding="utf-8")
    shown = mailer("render", str(report), "--list", "weekly", "--to", "zoe@example.org",
                   "--out", str(out))  # fmt: skip
    assert shown.exit_code == 0
    message = message_from_bytes((out / "message.eml").read_bytes(), policy=policy.default)
    assert message["Subject"] == "Le numéro du printemps"
    assert "la rivière est haute" in (out / "message.txt").read_text(encoding="utf-8")
    chosen = mailer("render", str(report), "--list", "weekly", "--to", "zoe@example.org",
                    "--language", "de", "--out", str(out))  # fmt: skip
    assert chosen.exit_code == 0  # --language still says which edition to show
    assert "Hochwasser" in (out / "message.txt").read_text(encoding="utf-8")


def test_render_strict_checks_every_edition(mailer: Invoke, workspace: Path) -> None:
    broken = GERMAN + "\nAusgabe {{ report.meta.issue }}.\n"
    report = write_issue(workspace / "issues", fr=FRENCH, de=broken)
    german = workspace / "issues" / "issue.de.md"
    out = str(workspace / "preview")
    assert mailer("render", str(report), "--out", out).exit_code == 0  # a draft: the default
    add_readers(mailer)
    for extra in (["--strict"], ["--strict", "--list", "weekly"], ["--list", "weekly"]):
        done = mailer("render", str(report), "--out", out, *extra)
        assert done.exit_code == 1, extra
        assert done.stderr.startswith(f"error: {german}:9: "), extra
        assert "no attribute 'issue'" in done.stderr and len(done.stderr.splitlines()) == 1


def test_render_list_checks_each_member_in_the_edition_they_get(
    mailer: Invoke, workspace: Path
) -> None:
    french = FRENCH + "\nÀ {{ subscriber.attributes.ciudad }}.\n"
    report = write_issue(workspace / "issues", fr=french)
    add_readers(mailer)
    out = str(workspace / "preview")
    done = mailer("render", str(report), "--list", "weekly", "--to", "ada@example.org",
                  "--out", out)  # fmt: skip
    assert done.exit_code == 1  # Zoé reads French, which asks for an attribute she has not
    french_file = workspace / "issues" / "issue.fr.md"
    assert done.stderr.startswith(f"error: {french_file}:8: ")
    assert "ciudad" in done.stderr and "zoe@example.org" in done.stderr


def test_send_warns_for_every_edition(mailer: Invoke, workspace: Path) -> None:
    french = FRENCH + "\n![](https://example.org/carte.png)\n"
    report = write_issue(workspace / "issues", fr=french)
    add_readers(mailer)
    strict = mailer("send", str(report), "--list", "weekly", "--dry-run", "--strict")
    assert strict.exit_code == 1
    assert strict.stderr.startswith(f"error: {report.with_name('issue.fr.md')}:")
    assert "image https://example.org/carte.png has no alt text" in strict.stderr
    plain = mailer("send", str(report), "--list", "weekly", "--dry-run")
    assert plain.exit_code == 0 and plain.stderr.startswith("warning: ")
    preview = mailer("render", str(report), "--out", str(workspace / "p"), "--strict")
    assert preview.exit_code == 1 and "carte.png has no alt text" in preview.stderr


def test_an_edition_without_attachments_sends_the_defaults(mailer: Invoke, workspace: Path) -> None:
    folder = workspace / "issues"
    german = GERMAN.replace("---\n#", "attachments: [anlage.pdf]\n---\n#")
    spanish = FRENCH.replace("---\n#", "attachments: []\n---\n#")  # none, on purpose
    report = write_issue(folder, fr=FRENCH, de=german, es=spanish)
    annex, anlage = b"%PDF-1.4\n% the annual accounts\n", b"%PDF-1.4\n% der Jahresabschluss\n"
    (folder / "annex.pdf").write_bytes(annex)
    (folder / "anlage.pdf").write_bytes(anlage)
    report.write_text(ENGLISH.replace("---\n#", "attachments: [annex.pdf]\n---\n#", 1))
    add_readers(mailer)
    mailer("subscribers", "add", "weekly", "sol@example.org", "--language", "es")
    sent = mailer("send", str(report), "--list", "weekly", "--yes")
    assert sent.exit_code == 0, sent.output
    got = delivered(workspace / "outbox")

    def annexes(message: EmailMessage) -> list[bytes]:
        return [part.get_content() for part in message.iter_attachments()]

    assert annexes(got["ada@example.org"]) == [annex]
    assert annexes(got["zoe@example.org"]) == [annex]  # French: takes the default's
    assert annexes(got["jonas@example.org"]) == [anlage]  # German names its own
    assert annexes(got["sol@example.org"]) == []  # an empty list: the Spanish edition has none


def test_the_archive_index_shows_the_visitors_language_among_the_campaigns_own(
    mailer: Invoke, workspace: Path
) -> None:
    """Italian has no page catalog but this campaign has an Italian edition; a French visitor
    gets the campaign's fr-CA edition, as a French reader would be sent it."""
    italian = FRENCH.replace("Le numéro du printemps", "Il numero di primavera")
    canadian = FRENCH.replace("Le numéro du printemps", "Le numéro printanier")
    report = write_issue(workspace / "issues", it=italian, **{"fr-CA": canadian})
    live = start_web(workspace, {})
    try:
        env = {"MAILER_NEWSLETTER_BASE_URL": live.url}
        add_readers(mailer, env=env)
        sent = mailer("send", str(report), "--list", "weekly", "--yes", env=env)
        assert sent.exit_code == 0, sent.output
        for accept, subject in (("it", "Il numero di primavera"),
                                ("fr, en;q=0.5", "Le numéro printanier"),
                                ("de", "The spring issue")):  # fmt: skip
            index = http("GET", f"{live.url}/archive/", headers={"Accept-Language": accept})
            assert f">{subject}</a>" in index.body, accept
    finally:
        live.stop()


def test_an_edition_written_right_to_left_says_so(mailer: Invoke, workspace: Path) -> None:
    arabic = FRENCH.replace("Le numéro du printemps", "عدد الربيع")
    report = write_issue(workspace / "issues", ar=arabic)
    out = workspace / "preview"
    assert mailer("render", str(report), "--language", "ar", "--out", str(out)).exit_code == 0
    assert '<html lang="ar" dir="rtl">' in (out / "message.html").read_text(encoding="utf-8")
    assert mailer("render", str(report), "--out", str(out)).exit_code == 0
    assert '<html lang="en" dir="ltr">' in (out / "message.html").read_text(encoding="utf-8")


def test_quotes_lists_and_table_headers_start_on_the_editions_side(
    mailer: Invoke, workspace: Path
) -> None:
    """In Arabic a quote's bar, a list's indent and a header's alignment are on the right, as
    the text starts there; in English on the left. Email clients know few logical properties,
    so the side is named in the inlined styles."""
    block = "\n\n> اقتباس\n\n- بند\n\n| أ | ب |\n|---|---|\n| 1 | 2 |\n"
    arabic = FRENCH.replace("Le numéro du printemps", "عدد الربيع") + block
    report = write_issue(workspace / "issues", ar=arabic)
    out = workspace / "preview"
    for lang, start, end in (("ar", "right", "left"), ("en", "left", "right")):
        given = ["--language", "ar"] if lang == "ar" else []
        assert mailer("render", str(report), *given, "--out", str(out)).exit_code == 0
        page = (out / "message.html").read_text(encoding="utf-8")
        if lang == "ar":
            quote = re.search(r'<blockquote style="([^"]*)"', page)
            header = re.search(r'<th style="([^"]*)"', page)
            items = re.search(r'<ul style="([^"]*)"', page)
            assert quote and header and items, page
            assert f"border-{start}: 4px solid" in quote.group(1)
            assert f"border-{end}" not in quote.group(1)
            assert f"text-align: {start}" in header.group(1)
            assert f"padding-{start}: 24px" in items.group(1)
        assert f"border-{start}-color" in page  # the dark scheme's bar, on the same side

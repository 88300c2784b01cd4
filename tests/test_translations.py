"""What readers see is translated: the catalogs are complete and current, the web pages follow
the reader's language or the browser's, the confirmation mail the form's or the reader's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from mailer.compose import translations
from tests.conftest import ROOT, Invoke
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Live, http, post_form, smtp_environ, start_web

LANGUAGES = ("de", "es", "fr")
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s")


def extracted() -> set[str]:
    """Every message of the templates and code, as `pybabel extract -F babel.cfg` finds it."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as file:
        method_map, options_map = parse_mapping_cfg(file)
    found = extract_from_dir(ROOT, method_map, options_map)
    return {message for _, _, message, _, _ in found if isinstance(message, str)}


def catalog_ids(path: Path) -> dict[str, str]:
    with path.open("rb") as file:
        catalog = read_po(file)
    assert list(catalog.check()) == []  # placeholders and formats agree (as pybabel compile)
    assert not [m.id for m in catalog if m.id and m.fuzzy]
    return {str(m.id): str(m.string) for m in catalog if m.id}


def test_the_template_holds_every_message_and_no_other() -> None:
    messages = extracted()
    assert {"Unsubscribe", "View in your browser", "By %(author)s", "Archive"} <= messages
    assert set(catalog_ids(ROOT / "mailer" / "locale" / "messages.pot")) == messages


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_catalog_translates_every_message_with_the_same_placeholders(lang: str) -> None:
    path = ROOT / "mailer" / "locale" / lang / "LC_MESSAGES" / "messages.po"
    found = catalog_ids(path)
    assert set(found) == extracted()
    for message, translated in found.items():
        assert translated, f"{lang}: {message!r} is not translated"
        assert sorted(PLACEHOLDER.findall(message)) == sorted(PLACEHOLDER.findall(translated))


def test_the_catalogs_are_read_at_run_time_from_the_po_files() -> None:
    assert translations.languages() == ("de", "en", "es", "fr")
    assert translations.text("fr", "Unsubscribe") == "Se désabonner"
    assert translations.text("de-AT", "Unsubscribe") == "Abmelden"
    assert translations.text("es", "By %(author)s", author="Zoë") == "Por Zoë"
    assert translations.text("ja", "Unsubscribe") == "Unsubscribe"
    assert translations.text("", "Unsubscribe") == "Unsubscribe"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("fr-CH, fr;q=0.9, en;q=0.8", "fr"),
        ("ja, de;q=0.5, es;q=0.7", "es"),
        ("es;q=0, de", "de"),
        ("*", "en"),
        ("", "en"),
        ("x" * 5000, "en"),
        ("en-GB;q=0.8, fr;q=zero, de;q=0.9", "de"),
    ],
)
def test_the_browsers_language_is_negotiated(header: str, lang: str) -> None:
    assert translations.page_language(header) == lang


@pytest.fixture
def live(workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Live]:
    running = start_web(workspace, smtp_environ(smtp[0].port))
    yield running
    running.stop()


WORDS = {  # a word of the page that says it is in that language
    "en": "This link is not valid",
    "fr": "Ce lien n\u2019est pas valide",
    "de": "Dieser Link ist nicht gültig",
    "es": "Este enlace no es válido",
}


@pytest.mark.parametrize(("header", "lang"), [("de-CH,de;q=0.9", "de"), ("es", "es"),
                                              ("fr;q=0.4, ja", "fr"), ("ja", "en")])  # fmt: skip
def test_pages_speak_the_browsers_language(live: Live, header: str, lang: str) -> None:
    page = http("GET", f"{live.url}/u/not-a-token", headers={"Accept-Language": header})
    assert page.status == 404
    assert f'<html lang="{lang}">' in page.body and WORDS[lang] in page.body
    assert page.headers["vary"] == "Accept-Language"
    assert all(WORDS[other] not in page.body for other in WORDS if other != lang)


def test_the_readers_own_language_wins_over_the_browsers(
    live: Live, mailer: Invoke, workspace: Path
) -> None:
    env = {"MAILER_NEWSLETTER_BASE_URL": live.url}
    assert mailer("lists", "create", "weekly", env=env).exit_code == 0
    assert mailer("subscribers", "add", "weekly", "ada@example.org", "--language", "es",
                  env=env).exit_code == 0  # fmt: skip
    assert mailer("subscribers", "add", "weekly", "bob@example.org", env=env).exit_code == 0
    report = workspace / "r.md"
    report.write_text("# Hello\n\nHi.\n", encoding="utf-8")
    sent = mailer("send", str(report), "--list", "weekly", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    links = {}
    for path in (workspace / "outbox" / "new").iterdir():
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        links[str(message["To"])] = str(message["List-Unsubscribe"]).split(",")[0].strip(" <>")
    german = {"Accept-Language": "de"}
    spanish = http("GET", links["ada@example.org"], headers=german)
    assert '<html lang="es">' in spanish.body and "¿Darse de baja de weekly?" in spanish.body
    unsubscribed = http("POST", links["ada@example.org"], b"", {**FORM, **german})
    assert "no recibirá más mensajes" in unsubscribed.body
    assert "Volver a suscribirse" in unsubscribed.body
    no_language = http("GET", links["bob@example.org"], headers=german)
    assert '<html lang="de">' in no_language.body and "Von weekly abmelden?" in no_language.body


def confirmation(mailbox: Mailbox) -> EmailMessage:
    received = mailbox.wait_for(1)[0]
    message = message_from_bytes(received.data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_form_is_in_the_pages_language_and_so_is_the_confirmation(
    live: Live, mailer: Invoke, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    env = {"MAILER_NEWSLETTER_BASE_URL": live.url}
    assert mailer("lists", "create", "letters", "--public-form", env=env).exit_code == 0
    form = http("GET", f"{live.url}/s/letters", headers={"Accept-Language": "fr-FR"})
    assert '<html lang="fr">' in form.body and "S\u2019abonner à letters" in form.body
    assert '<input type="hidden" name="lang" value="fr">' in form.body
    answer = post_form(f"{live.url}/s/letters", {"email": "zoe@example.org", "lang": "fr"})
    assert answer.status == 200 and "C\u2019est presque fini" in answer.body
    message = confirmation(smtp[1])
    assert message["Subject"] == "Veuillez confirmer votre abonnement à letters"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert str(text.get_content()).startswith("Bonjour,")
    assert '<html lang="fr" dir="ltr">' in str(html.get_content())
    link = re.search(r"http://\S+/c/\S+", str(text.get_content()))
    assert link is not None
    shown = json.loads(mailer("subscribers", "show", "zoe@example.org", "--json").stdout)
    assert shown["lang"] == "fr"  # the form's language is the reader's from the request on
    page = http("GET", link.group(0), headers={"Accept-Language": "es"})
    assert '<html lang="fr">' in page.body  # the reader's own, over the browser's


def test_the_cli_confirmation_follows_the_readers_language(mailer: Invoke, workspace: Path) -> None:
    assert mailer("lists", "create", "letters", "--double-opt-in").exit_code == 0
    added = mailer("subscribers", "add", "letters", "jo@example.org", "--language", "de-AT")
    assert added.exit_code == 0, added.output
    [path] = (workspace / "outbox" / "new").iterdir()
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Bitte bestätigen Sie Ihr Abonnement von letters"
    body = message.get_body(("plain",))
    assert body is not None and "Guten Tag," in str(body.get_content())

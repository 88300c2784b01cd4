"""Rendering a report into messages: parts, personalisation, errors, and the fast MIME assembly."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import compat32
from email.utils import getaddresses, unquote
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it.tree import SyntaxTreeNode

from mailer.compose import mime
from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.plaintext import markdown
from mailer.compose.preview import render_preview
from mailer.compose.reference import reference_message
from mailer.compose.report import Report, load_report
from mailer.compose.templates import template_dirs
from mailer.config import NewsletterSettings, Settings
from mailer.errors import FileInputError, NotFoundError
from mailer.models import MailingList, Member, Reader
from tests.message_checks import check_message

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "report.md"
NEWS = NewsletterSettings(
    base_url="https://bulletin.example.org", reply_to="Letters Desk <letters@example.org>"
)
LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
LINKS = Links("https://bulletin.example.org/u/AbC123", "https://bulletin.example.org/a/7")
READERS = [
    Reader(1, "ada@example.org", "Ada Lovelace", {"city": "Ashby"}),
    Reader(2, "zoe@example.org", "Zoë Brontë-Łukasiewicz", {}),
    Reader(3, "bob@example.org", 'Dr. "Bob" O\'Brien, Jr.', {}),
    Reader(4, "long@example.org", ("Bartholomew " * 5 + "Żółć " * 12).strip(), {}),
    Reader(5, "anon@example.org", "", {}),
    Reader(6, "evil@example.org", "<script>alert('x')</script> & Sons", {}),
]
ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);")
URL = re.compile(r"https?://\S+|mailto:\S+")


def campaign(
    report: Report | None = None,
    *,
    templates: list[Path] | None = None,
    news: NewsletterSettings = NEWS,
) -> CompiledCampaign:
    return CompiledCampaign(
        report or load_report(EXAMPLE), news, LIST, templates=templates, campaign_id="c42"
    )


def report_file(tmp_path: Path, body: str, front: str = "subject: Test issue\n") -> Path:
    path = tmp_path / "report.md"
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text))


class VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


# The text part


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.email)
def test_text_wraps_at_72_keeps_urls_and_has_no_entities(reader: Reader) -> None:
    html, text = campaign().parts(reader, LINKS)
    for line in text.splitlines():
        if len(line) > 72:  # only a single word that cannot be broken, such as a URL
            assert " " not in line.lstrip("> ").strip(), line
    assert not ENTITY.search(text)
    for href in re.findall(r'href="([^"]+)"', html):
        url = href.replace("&amp;", "&")
        assert url.removeprefix("mailto:") in text, url
    for url in URL.findall(text):
        assert url.rstrip(".,;:)") in html or url.rstrip(".,;:)").replace("&", "&amp;") in html


def test_every_word_of_the_report_is_in_both_parts() -> None:
    reader = READERS[0]
    html, text = campaign().parts(reader, LINKS)
    body = load_report(EXAMPLE).body_source.replace(
        '{{ subscriber.name or "reader" }}', reader.name
    )
    tokens = markdown().parse(body)
    report_words: set[str] = set()
    for node in SyntaxTreeNode(tokens).walk():
        if node.type in ("text", "code_inline", "fence", "code_block"):
            report_words |= words(node.content)
    assert len(report_words) > 300
    assert report_words - words(text) == set()
    assert report_words - words(visible(html)) == set()


def test_text_structure_headings_lists_quotes_tables_and_references() -> None:
    _, text = campaign().parts(READERS[0], LINKS)
    lines = text.splitlines()
    title = "Lower Vale Water Survey: Autumn 2026 Quarterly Report"
    assert lines[:6] == [
        "View in your browser: https://bulletin.example.org/a/7",
        "",
        title,
        "=" * len(title),
        "",
        "By Zoë Brontë · November 20, 2026",
    ]
    assert "Summary of the quarter\n----------------------" in text
    assert "> 1. We publish all results, including those that are inconvenient to" in text
    assert ">    any party." in text
    assert "Nitrate           37                      3" in text
    assert "site notes page [1]" in text
    assert "[1] https://example.org/survey/sites/harkers-weir" in lines
    assert "Dear Ada Lovelace," in lines
    assert "Unsubscribe: https://bulletin.example.org/u/AbC123" in lines


def test_a_long_personal_paragraph_is_wrapped_per_reader() -> None:
    _, text = campaign().parts(READERS[3], LINKS)
    start = text.index("Dear Bartholomew")
    greeting = text[start : text.index(",", start) + 1]
    assert "\n" in greeting
    assert all(len(line) <= 72 for line in greeting.splitlines())
    assert " ".join(greeting.split()) == "Dear " + " ".join(READERS[3].name.split()) + ","


# Personalisation


def test_reader_values_are_escaped_in_html_and_plain_in_text() -> None:
    html, text = campaign().parts(READERS[5], LINKS)
    assert "<script>" not in html
    assert "Dear &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Sons," in html
    assert "Dear <script>alert('x')</script> & Sons," in text


def test_fallback_for_a_reader_without_a_name() -> None:
    html, text = campaign().parts(READERS[4], LINKS)
    assert "Dear reader," in text
    assert "Dear reader," in html


def test_personal_blocks_in_the_body(tmp_path: Path) -> None:
    body = (
        "# Hello\n\nHi {{ subscriber.name }}!\n\n"
        "{% if subscriber.attributes.get('city') %}\n"
        "News for **{{ subscriber.attributes.city }}**: the bridge reopens.\n\n"
        "A second paragraph for {{ subscriber.attributes.city }} only.\n"
        "{% endif %}\n\nFor everyone: [details](https://example.org/d?id={{ subscriber.id }}).\n"
    )
    compiled = campaign(load_report(report_file(tmp_path, body)))
    html, text = compiled.parts(READERS[0], LINKS)
    assert "News for <strong>Ashby</strong>" in html
    assert "A second paragraph for Ashby only." in text
    assert "[1] https://example.org/d?id=1" in text
    assert 'href="https://example.org/d?id=1"' in html
    html, text = compiled.parts(READERS[1], LINKS)
    assert "bridge" not in html and "bridge" not in text
    assert "Hi Zoë Brontë-Łukasiewicz!" in text


# Errors name the file and line


def test_unknown_variable_names_report_and_line(tmp_path: Path) -> None:
    body = "\n# Hello\n\nDear {{ subscriber.name }},\n\nThe {{ mystery.value }} rose.\n"
    path = report_file(tmp_path, body, "subject: S\nauthor: A\n")
    with pytest.raises(FileInputError) as caught:
        campaign(load_report(path))
    assert caught.value.path == path
    lines = path.read_text().splitlines()
    assert "mystery" in lines[caught.value.line - 1]  # type: ignore[operator]
    assert "mystery" in str(caught.value)


def test_jinja_syntax_error_in_body_names_line(tmp_path: Path) -> None:
    path = report_file(tmp_path, "# T\n\nText\n\n{% if subscriber.name %}\nno end\n")
    with pytest.raises(FileInputError) as caught:
        campaign(load_report(path))
    assert caught.value.path == path
    assert caught.value.line is not None and caught.value.line >= 7


def test_missing_attribute_is_found_by_check_before_sending(tmp_path: Path) -> None:
    body = "# T\n\nHello.\n\nWeather in {{ subscriber.attributes.city }} today.\n"
    path = report_file(tmp_path, body)
    compiled = campaign(load_report(path))  # the stand-in reader has every attribute
    assert compiled.check([READERS[0]]) == 1
    with pytest.raises(FileInputError) as caught:
        compiled.check(READERS)
    assert caught.value.path == path
    assert caught.value.line is not None
    assert (
        "{{ subscriber.attributes.city }}" in path.read_text().splitlines()[caught.value.line - 1]
    )
    assert "zoe@example.org" in str(caught.value)
    with pytest.raises(FileInputError):
        compiled.message(READERS[1], LINKS)


def test_template_errors_name_template_file_and_line(tmp_path: Path) -> None:
    own = tmp_path / "templates"
    own.mkdir()
    broken = own / "newsletter.txt.j2"
    broken.write_text("{{ report.text }}\n\n{% if %}\n", encoding="utf-8")
    with pytest.raises(FileInputError) as caught:
        campaign(templates=template_dirs(own))
    assert (caught.value.path, caught.value.line) == (broken, 3)
    broken.write_text("{{ report.text }}\n{{ report.nothing }}\n", encoding="utf-8")
    with pytest.raises(FileInputError) as caught:
        campaign(templates=template_dirs(own))
    assert (caught.value.path, caught.value.line) == (broken, 2)
    broken.write_text("{{ report.text }}\n\n\n{{ subscriber.nickname }}\n", encoding="utf-8")
    with pytest.raises(FileInputError) as caught:
        campaign(templates=template_dirs(own))
    assert (caught.value.path, caught.value.line) == (broken, 4)


def test_workspace_templates_override_file_by_file(tmp_path: Path) -> None:
    own = tmp_path / "templates"
    (own / "partials").mkdir(parents=True)
    (own / "partials" / "footer.html.j2").write_text(
        "{% set who = subscriber.name or 'friend' %}\n<p>Custom footer for {{ who }}, "
        '<a href="{{ links.unsubscribe }}">leave</a>. {{ newsletter.postal_address }}</p>\n',
        encoding="utf-8",
    )
    html, text = campaign(templates=template_dirs(own)).parts(READERS[0], LINKS)
    assert "Custom footer for Ada Lovelace" in html
    assert "max-width: 600px" in html  # the packaged page and style are still used
    assert "Unsubscribe: https://bulletin.example.org/u/AbC123" in text
    html, _ = campaign(templates=template_dirs(own)).parts(READERS[4], LINKS)
    assert "Custom footer for friend" in html


# The HTML part


def test_html_part_layout() -> None:
    html, _ = campaign().parts(READERS[0], LINKS)
    assert '<html lang="en"' in html
    assert "max-width: 600px" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert re.search(r'<p style="[^"]*margin', html)  # CSS inlined
    head_style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert head_style.strip().startswith("@media")  # only at-rules stay in <style>
    assert 'class="preheader" style="display: none;' in html
    assert "Results from forty sampling sites" in html
    assert "Example Bulletin, 1 Example Street, 1000 Example City" in html
    assert "is subscribed to the list" in html
    assert 'href="https://bulletin.example.org/u/AbC123"' in html
    assert 'href="https://bulletin.example.org/a/7"' in html
    for remote in ("<img", "<link", "@import", "@font-face", "url("):
        assert remote not in html


# Messages: the fast bytes against an EmailMessage twin


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def rfc2047(value: str) -> str:
    """Decode encoded-words as RFC 2047 says (the legacy decoder drops the space between
    adjacent encoded-words; policy.default's parser keeps one, a CPython quirk)."""
    return str(make_header(decode_header(value)))


def unfolded(raw: bytes, name: str) -> str:
    value = email.message_from_bytes(raw, policy=compat32)[name]
    return re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()


def phrase_text(phrase: str) -> str:
    phrase = phrase.strip()
    if phrase.startswith('"'):
        return unquote(phrase).replace('\\"', '"').replace("\\\\", "\\")
    return rfc2047(phrase)


def normalised_header(raw: bytes, name: str) -> object:
    value = unfolded(raw, name)
    if name in ("From", "To", "Reply-To"):
        return [(rfc2047(display), addr) for display, addr in getaddresses([value])]
    if name == "List-Id":
        phrase, _, rest = value.rpartition(" <")
        return phrase_text(phrase), rest
    if name == "Subject":
        return rfc2047(value)
    return " ".join(value.split())


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.email)
def test_fast_bytes_agree_with_email_message(reader: Reader) -> None:
    compiled = campaign()
    message_id = compiled.skeleton.message_id(reader.id)
    date = "Fri, 20 Nov 2026 09:30:00 +0000"
    fast_raw = compiled.message(reader, LINKS, message_id=message_id, date=date.encode())
    twin_message = reference_message(compiled, reader, LINKS, message_id=message_id, date=date)
    twin_raw = twin_message.as_bytes()
    fast, twin = parse(fast_raw), parse(twin_raw)
    assert sorted(fast.keys()) == sorted(set(twin.keys()) - {"Content-Transfer-Encoding"})
    for name in fast:
        if name != "Content-Type":
            mine, theirs = normalised_header(fast_raw, name), normalised_header(twin_raw, name)
            assert mine == theirs, name
            if name not in ("To", "From", "Reply-To", "List-Id"):
                assert str(fast[name]) == str(twin[name]), name
    if reader.name:
        assert normalised_header(fast_raw, "To") == [(reader.name, reader.email)]
    assert fast.get_content_type() == twin.get_content_type() == "multipart/alternative"
    fast_parts = [p for p in fast.walk() if not p.is_multipart()]
    twin_parts = [p for p in twin.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in fast_parts] == ["text/plain", "text/html"]
    assert [p.get_content_type() for p in twin_parts] == ["text/plain", "text/html"]
    for mine, theirs in zip(fast_parts, twin_parts, strict=True):
        assert mine.get_content_charset() == theirs.get_content_charset() == "utf-8"
        assert mine["Content-Transfer-Encoding"] == "quoted-printable"
        mine_text, their_text = mine.get_content(), theirs.get_content()
        assert mine_text.replace("\r\n", "\n") == their_text.replace("\r\n", "\n")
    assert fast.defects == [] and all(not p.defects for p in fast_parts)


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.email)
def test_wire_format(reader: Reader) -> None:
    raw = campaign().message(reader, LINKS)
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, no bare LF or CR
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    text_part = raw.split(b"quoted-printable\r\n\r\n", 1)[1].split(b"\r\n--=_mailer_", 1)[0]
    assert text_part.isascii()


def test_headers_and_message_ids() -> None:
    compiled = campaign()
    first, second = (parse(compiled.message(READERS[1], LINKS)) for _ in range(2))
    assert first["Message-ID"] != second["Message-ID"]
    # The campaign, the reader, this skeleton's random 12 hex digits and a count.
    shape = re.compile(r"<c42\.2\.([0-9a-f]{12})[0-9a-f]+@example\.org>")
    found = shape.fullmatch(str(first["Message-ID"]))
    assert found is not None
    other = campaign()  # as in another process: another random part
    again = shape.fullmatch(str(parse(other.message(READERS[1], LINKS))["Message-ID"]))
    assert again is not None and again.group(1) != found.group(1)
    assert str(first["List-Unsubscribe"]) == (
        "<https://bulletin.example.org/u/AbC123>, "
        "<mailto:bulletin+unsubscribe-survey@example.org?subject=unsubscribe>"
    )
    assert str(first["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert str(first["List-Id"]) == "Lower Vale Water Survey <survey.example.org>"
    assert first["To"].addresses[0].display_name == "Zoë Brontë-Łukasiewicz"
    assert str(first["Reply-To"]) == "Letters Desk <letters@example.org>"
    assert str(first["MIME-Version"]) == "1.0"
    assert first["Date"].datetime is not None
    chunks, message_id = compiled.build(READERS[0], LINKS)
    assert str(parse(b"".join(chunks))["Message-ID"]) == message_id
    no_reply = campaign(news=NewsletterSettings(base_url="https://b.example.org"))
    assert parse(no_reply.message(READERS[0], LINKS))["Reply-To"] is None


# Header injection: no CR or LF in any input can start a header


BREAKERS = ["\r\n", "\n", "\r", "\r\n\r\n", "\u2028", "\x85", "\x0b", "\x0c", "\x00"]
PAYLOADS = st.sampled_from(
    ["Bcc: victim@example.net", "X-Injected: yes", "Subject: spoof", " folded", "\tX: y", ""]
)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=70)
VALUE = st.one_of(
    TEXT,
    st.tuples(TEXT, st.sampled_from(BREAKERS), PAYLOADS, TEXT).map("".join),
)
EXPECTED = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "reply-to",
    "content-type",
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=VALUE, sender=VALUE, reply=VALUE, list_name=VALUE, name=VALUE, city=VALUE, token=VALUE
)
def test_no_input_can_start_a_header(
    subject: str, sender: str, reply: str, list_name: str, name: str, city: str, token: str
) -> None:
    report = Report(
        path=Path("report.md"),
        subject=subject or "x",
        preheader=subject,
        author=name,
        date="2026-11-20",
        lang="en",
        meta={},
        body_source="# T\n\nHello {{ subscriber.name }} in {{ subscriber.attributes.city }}.\n",
    )
    news = NewsletterSettings(
        name=list_name,
        sender=f"{sender} <news@example.org>",
        reply_to=f"{reply} <letters@example.org>",
        base_url="https://b.example.org",
    )
    mailing_list = MailingList(3, "weekly", list_name, False)
    compiled = CompiledCampaign(report, news, mailing_list, campaign_id="c1")
    reader = Reader(9, "reader@example.org", name, {"city": city})
    raw = compiled.message(reader, Links(f"https://b.example.org/u/{token}"))
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0].decode().lower()
        for line in head.split(b"\r\n")
        if not line.startswith((b" ", b"\t"))
    ]
    assert set(names) <= EXPECTED and len(names) == len(set(names))
    assert {"from", "to", "subject", "list-unsubscribe", "list-id"} <= set(names)
    assert check_message(raw) == []
    message = parse(raw)
    for key in ("Subject", "From", "To", "Reply-To", "List-Id", "List-Unsubscribe"):
        value = str(message[key] or "")
        assert "\r" not in value and "\n" not in value
    assert str(message["Subject"]) == mime.clean(subject or "x")
    display = message["To"].addresses[0].display_name
    assert "".join(display.split()) == "".join(mime.clean(name).split())
    assert normalised_header(raw, "To") == [(mime.clean(name), "reader@example.org")]
    assert normalised_header(raw, "Subject") == mime.clean(subject or "x")
    for line in head.split(b"\r\n"):
        assert len(line) <= 78 or line.startswith(b" <https://")


# The preview command's core


def test_render_preview_writes_three_files(tmp_path: Path) -> None:
    settings_ = Settings(workspace=tmp_path, newsletter=NEWS)
    members = [
        Member(11, "ada@example.org", "Ada", {"city": "Ashby"}, "confirmed", "active", False)
    ]
    paths = render_preview(
        EXAMPLE,
        settings_,
        tmp_path / "out",
        mailing_list=LIST,
        members=members,
        email="ADA@example.org",
    )
    assert [p.name for p in paths] == ["message.eml", "message.html", "message.txt"]
    assert "Dear Ada," in paths[2].read_text(encoding="utf-8")
    assert parse(paths[0].read_bytes())["To"].addresses[0].addr_spec == "ada@example.org"
    with pytest.raises(NotFoundError):
        render_preview(
            EXAMPLE,
            settings_,
            tmp_path / "o2",
            mailing_list=LIST,
            members=members,
            email="bob@example.org",
        )
    paths = render_preview(EXAMPLE, settings_, tmp_path / "o3")
    assert "Dear reader," in paths[2].read_text(encoding="utf-8")
    assert "reader@example.org" in paths[1].read_text(encoding="utf-8")


def test_bare_urls_and_personal_headings(tmp_path: Path) -> None:
    body = (
        "# News for {{ subscriber.name }}\n\n"
        "Data at https://example.org/data?id={{ subscriber.id }} and mail editor@example.org.\n"
    )
    html, text = campaign(load_report(report_file(tmp_path, body))).parts(READERS[3], LINKS)
    assert '<a href="https://example.org/data?id=4"' in html
    assert '<a href="mailto:editor@example.org"' in html
    assert "https://example.org/data?id=4 and mail editor@example.org." in " ".join(text.split())
    assert "[1]" not in text  # a URL shown as itself needs no reference
    view_online, heading = (block.splitlines() for block in text.split("\n\n", 2)[:2])
    assert view_online == ["View in your browser: https://bulletin.example.org/a/7"]
    assert all(len(line) <= 72 for line in heading)
    assert set(heading[-1]) == {"="} and len(heading[-1]) == max(map(len, heading[:-1]))


def test_both_footers_link_the_preferences_page_and_a_forwarded_reader_to_the_form() -> None:
    links = replace(LINKS, preferences="https://bulletin.example.org/p/PqR",
                    subscribe="https://bulletin.example.org/s/survey")  # fmt: skip
    html, text = campaign().parts(READERS[0], links)
    lines = text.splitlines()
    assert "Manage your subscription: https://bulletin.example.org/p/PqR" in lines
    assert ("Was this forwarded to you? Subscribe: https://bulletin.example.org/s/survey"
            in lines)  # fmt: skip
    footer = html.partition('role="contentinfo"')[2]
    assert 'href="https://bulletin.example.org/p/PqR"' in footer
    assert 'href="https://bulletin.example.org/s/survey"' in footer
    # A list without a public form offers no form to whoever was forwarded the message.
    plain_html, plain_text = campaign().parts(READERS[0], LINKS)
    assert "forwarded" not in plain_text and "/s/" not in plain_html.partition("contentinfo")[2]


def test_a_personal_piece_the_last_reader_had_is_reused_only_when_it_is_the_same() -> None:
    """Each personal piece's encoding is kept for the next reader: readers in turns (the same
    one twice, others between, links that change) each still read exactly their own parts."""
    compiled = campaign()
    other = Links("https://bulletin.example.org/u/Other9", "https://bulletin.example.org/a/8")
    turns = [(READERS[0], LINKS), (READERS[0], LINKS), (READERS[1], LINKS),
             (READERS[0], other), (READERS[5], other), (READERS[0], LINKS)]  # fmt: skip
    for reader, links in turns:
        message = parse(compiled.message(reader, links))
        html, text = compiled.parts(reader, links)  # rendered afresh, nothing kept
        for kind, expected in (("html", html), ("plain", text)):
            part = message.get_body((kind,))
            assert part is not None
            assert part.get_content().replace("\r\n", "\n") == expected, (reader.email, kind)

"""No reader's value (control characters, the assembly's markers) can change a message's make."""

from __future__ import annotations

import email
import email.policy
import functools
import re
from email.message import EmailMessage
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.reference import reference_message
from mailer.compose.report import parse_report
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Reader
from tests.message_checks import check_message

NEWS = NewsletterSettings(base_url="https://bulletin.example.org")
LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
LINKS = Links("https://bulletin.example.org/u/AbC123", "https://bulletin.example.org/archive/7")
# Each value is printed plainly, escaped (|e: Markup, which finalize used to let through) and
# raw (|safe), in a paragraph wrapped per reader, in a code block and in the footer's line.
REPORT = """---
subject: Controls
---
# Controls

Dear {{ subscriber.name }}, news for {{ subscriber.attributes.city }} and
{{ subscriber.attributes.town|e }} and {{ subscriber.attributes.village|safe }}.

    code {{ subscriber.attributes.city }} {{ subscriber.attributes.town|e }}

Shared text between the personal lines.

{{ subscriber.attributes.village|safe }}{{ subscriber.attributes.town|e }}
"""
SLOTS = {"name": "NAMEVALUE", "city": "CITYVALUE", "town": "TOWNVALUE", "village": "VILLAGEVALUE"}
EMAIL = "reader1@example.org"  # the slotted reader's, in the footer
SLOT = re.compile("|".join([*SLOTS.values(), re.escape(EMAIL)]))
CONTROLS = "".join(map(chr, [*range(0, 9), *range(11, 32), 127]))
TRICKY = ["\x00", "\x01", "\x02", "\x03", "\x04", "\x05", "\x000\x00", "\x001\x00", "\x002\x00",
          "\x010\x02", "0", "1", "XQZPH0000QZX", "\r", "\n", "\r\n", "\t", "<", "&", "=",
          "{{", "}}", "\u2028", "\x85", "\xa0", " ", "é"]  # fmt: skip
VALUES = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=24),
    st.text(st.sampled_from(CONTROLS), max_size=8),
    st.lists(st.sampled_from(TRICKY), max_size=8).map("".join),
)


@functools.cache
def campaign() -> CompiledCampaign:
    return CompiledCampaign(parse_report(REPORT, Path("controls.md")), NEWS, LIST, campaign_id="c9")


def cleaned(value: str) -> str:
    return value.translate(dict.fromkeys(map(ord, CONTROLS)))


def reader(i: int, name: str, city: str, town: str, village: str) -> Reader:
    return Reader(i, f"reader{i}@example.org", name, {"city": city, "town": town,
                                                      "village": village})  # fmt: skip


@functools.cache
def slotted() -> tuple[str, str]:
    """The parts for a reader whose values are plain words: what any reader's parts are, with
    the words replaced by their (cleaned) values."""
    return campaign().parts(reader(1, **SLOTS), LINKS)


def expected(values: dict[str, str], email: str) -> tuple[str, str]:
    html, text = slotted()
    plain = {SLOTS[key]: cleaned(value) for key, value in values.items()} | {EMAIL: email}
    shown = {**{slot: str(escape(value)) for slot, value in plain.items()},
             SLOTS["village"]: plain[SLOTS["village"]]}  # fmt: skip
    in_text = {**plain, SLOTS["town"]: str(escape(plain[SLOTS["town"]]))}
    return (
        SLOT.sub(lambda found: shown[found.group()], html),
        SLOT.sub(lambda found: in_text[found.group()], text),
    )


def decoded(raw: bytes) -> tuple[EmailMessage, str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return message, html.get_content().replace("\r\n", "\n"), text.get_content()


def words(text: str) -> list[str]:
    return text.split()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.tuples(VALUES, VALUES, VALUES, VALUES), second=st.tuples(VALUES, VALUES, VALUES,
                                                                          VALUES))  # fmt: skip
def test_any_values_give_each_reader_exactly_their_own_message(
    first: tuple[str, str, str, str], second: tuple[str, str, str, str]
) -> None:
    compiled = campaign()
    readers = [reader(2, *first), reader(3, *second)]
    raws = [compiled.message(r, LINKS, date=b"Fri, 20 Nov 2026 09:30:00 +0000") for r in readers]
    for one, raw in zip(readers, raws, strict=True):
        assert check_message(raw) == []
        message, html, text = decoded(raw)
        values = dict(zip(SLOTS, (one.name, *one.attributes.values()), strict=True))
        want_html, want_text = expected(values, one.email)
        assert html == want_html
        assert words(text) == words(want_text)  # the text part is wrapped per reader
        assert message["To"].addresses[0].addr_spec == one.email
        twin = reference_message(compiled, one, LINKS, message_id=str(message["Message-ID"]),
                                 date="Fri, 20 Nov 2026 09:30:00 +0000")  # fmt: skip
        for kind, mine in (("html", html), ("plain", text)):
            theirs = twin.get_body((kind,))
            assert theirs is not None
            assert mine.splitlines() == theirs.get_content().splitlines()


def test_a_nul_value_no_longer_splices_a_shared_chunk_into_the_message() -> None:
    # Rendered through |e, "\x000\x00" stood for the campaign's shared chunk 0 (the whole head
    # of the HTML part) and put it in the middle of this reader's paragraph.
    raw = campaign().message(reader(4, "\x000\x00", "b.\x03\n", "\x000\x00", "\x001\x00"), LINKS)
    _, html, text = decoded(raw)
    assert html.count("<!DOCTYPE html>") == 1 and html.count("</html>") == 1
    assert "news for b.\n and\n0 and 1." in html
    assert "Dear 0, news for b. and 0 and 1." in " ".join(text.split())
    assert check_message(raw) == []

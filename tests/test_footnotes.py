"""Footnotes: numbered notes with links back in HTML, [^1] and a Notes section in the text."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.preview import archive_copy
from mailer.compose.report import load_report
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Reader
from tests.conftest import Invoke
from tests.message_checks import check_message

NEWS = NewsletterSettings(base_url="https://news.example.org")
LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
LINKS = Links("https://news.example.org/u/abc")
ADA = Reader(1, "ada@example.org", "Ada Lovelace", {"city": "Ashby"})
BODY = """# Phosphate below Millbrook

The median rose from 0.08 to 0.13 mg/l[^flow], the largest change since 2019[^2019].
When adjusted for flow[^flow], most of it disappears.

> Quoted from the operator[^op].

[^flow]: Adjusted with the regional authority's gauge data, which are published a month late
    and revised twice a year, so the adjusted series may change in the winter bulletin. See
    the [gauge page](https://example.org/gauges).
[^2019]: The survey began in 2019.

    A second paragraph of the note, for {{ subscriber.name }}.
[^op]: Letter of 3 October.
"""


def campaign(tmp_path: Path) -> CompiledCampaign:
    path = tmp_path / "report.md"
    path.write_text(f"---\nsubject: Phosphate\n---\n{BODY}", encoding="utf-8")
    return CompiledCampaign(load_report(path), NEWS, LIST)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def attr(tag: str, name: str) -> str:
    """An attribute of one start tag, wherever CSS inlining put it."""
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    assert found, (tag, name)
    return found.group(1)


def test_html_has_numbered_notes_at_the_end_with_links_back(tmp_path: Path) -> None:
    html, _ = campaign(tmp_path).parts(ADA, LINKS)
    refs = re.findall(r'<sup class="footnote-ref"><a ([^>]*)>\[(\d+)\]</a></sup>', html)
    shown = [(attr(a, "href"), attr(a, "id"), number) for a, number in refs]
    assert shown == [("#fn1", "fnref1", "1"), ("#fn2", "fnref2", "2"),
                     ("#fn1", "fnref1:1", "1"), ("#fn3", "fnref3", "3")]  # fmt: skip
    start = html.index('<section class="footnotes"')
    assert html.index("disappears") < start < html.index("Unsubscribe")  # notes end the report
    items = re.findall(r'<li ([^>]*class="footnote-item"[^>]*)>(.*?)</li>', html[start:], re.DOTALL)
    assert [attr(tag, "id") for tag, _ in items] == ["fn1", "fn2", "fn3"]
    first, second, third = (content for _, content in items)
    assert "gauge data" in first and 'href="https://example.org/gauges"' in first
    backs = [attr(a, "href") for a in re.findall(r"<a ([^>]*footnote-backref[^>]*)>", first)]
    assert backs == ["#fnref1", "#fnref1:1"]  # cited twice: a link back to each place
    assert "for Ada Lovelace." in second and "#fnref2" in second
    assert "Letter of 3 October." in third and "#fnref3" in third


def test_text_has_references_and_the_notes_at_the_end(tmp_path: Path) -> None:
    _, text = campaign(tmp_path).parts(ADA, LINKS)
    assert "0.13 mg/l[^1], the largest change since 2019[^2]." in " ".join(text.split())
    assert "When adjusted for flow[^1], most of it disappears." in text
    assert "> Quoted from the operator[^3]." in text
    notes = text[text.index("Notes\n-----\n") :]
    assert text.index("disappears") < text.index("Notes\n-----\n") < text.index("Links\n-----")
    lines = notes.splitlines()
    assert lines[2].startswith("[^1] Adjusted with the regional authority")
    first_note = lines[2 : lines.index("")]
    assert len(first_note) > 1 and all(line.startswith("     ") for line in first_note[1:])
    assert all(len(line) <= 72 for line in first_note)
    assert "the gauge page [1]." in " ".join(" ".join(first_note).split())
    assert "[^2] The survey began in 2019." in lines
    assert "     A second paragraph of the note, for Ada Lovelace." in lines
    assert "[^3] Letter of 3 October." in lines
    assert "[1] https://example.org/gauges" in lines


def test_messages_with_notes_pass_the_checks_and_keep_them_in_the_archive(
    tmp_path: Path,
) -> None:
    compiled = campaign(tmp_path)
    raw = compiled.message(ADA, LINKS)
    assert check_message(raw) == []
    plain = parse(raw).get_body(("plain",))
    assert plain is not None and "[^3] Letter of 3 October." in str(plain.get_content())
    copy = archive_copy(compiled, NEWS.base_url)
    assert 'id="fn1"' in copy and 'href="#fnref1"' in copy and 'href="#fn3"' in copy


def test_a_reference_without_a_note_is_a_warning_or_under_strict_an_error(
    mailer: Invoke, workspace: Path
) -> None:
    body = BODY.replace("When adjusted", "When adjusted[^nope]") + "\nWritten as is: \\[^1].\n"
    path = workspace / "report.md"
    path.write_text(f"---\nsubject: Phosphate\n---\n{body}", encoding="utf-8")
    line = next(n for n, text in enumerate(body.splitlines(), 4) if "[^nope]" in text)
    assert line == 7  # the second line of its paragraph
    said = (f"{path}:{line}: footnote [^nope] has no note, so readers see it as written: add a"
            " line '[^nope]: the note'")  # fmt: skip
    assert [str(notice) for notice in CompiledCampaign(load_report(path), NEWS, LIST).warnings] == [
        said
    ]
    done = mailer("render", str(path), "--out", str(workspace / "out"))
    assert done.exit_code == 0, done.output
    assert done.stderr == f"warning: {said}\n"  # the escaped \[^1] is meant as text: no warning
    strict = mailer("render", str(path), "--out", str(workspace / "o2"), "--strict")
    assert strict.exit_code == 1 and strict.stderr == f"error: {said} (--strict)\n"


def test_the_text_parts_own_words_speak_the_editions_language(tmp_path: Path) -> None:
    """Notes, Links and the images' stand-ins are the text part's own words: in a French or
    German edition they are French or German, underlined to their length, as its footer is."""
    said = {"fr": ("Liens", "[image : la carte]"), "de": ("Links", "[Bild: die Karte]"),
            "en": ("Links", "[image: the map]")}  # fmt: skip
    notes = {"fr": "Notes", "de": "Anmerkungen", "en": "Notes"}
    alt = {"fr": "la carte", "de": "die Karte", "en": "the map"}
    for lang, (links, image) in said.items():
        path = tmp_path / f"report.{lang}.md"
        img = f'<img src="https://example.org/m.png" alt="{alt[lang]}">'
        body = f"# T\n\nVoir [le site](https://example.org)[^1] {img}\n\n[^1]: Note.\n"
        path.write_text(f"---\nsubject: S\nlang: {lang}\n---\n{body}", encoding="utf-8")
        _, text = CompiledCampaign(load_report(path), NEWS, LIST).parts(ADA, LINKS)
        assert f"\n{notes[lang]}\n{'-' * len(notes[lang])}\n" in text, (lang, text)
        assert f"\n{links}\n{'-' * max(3, len(links))}\n" in text, (lang, text)
        assert image in text, (lang, text)

"""The byline (author and date under the title, the date in the edition's language) and the
"View in your browser" link at the top when the list's archive is public."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import Invoke
from tests.message_checks import check_message

REPORT = """---
subject: Autumn notes
author: Zoë Brontë
date: 2026-11-20
---
# Autumn notes

The weir was repaired.
"""


def sent(mailer: Invoke, workspace: Path, report: Path, slug: str) -> dict[str, EmailMessage]:
    result = mailer("send", str(report), "--list", slug, "--yes")
    assert result.exit_code == 0, result.output
    found = {}
    for path in (workspace / "outbox" / "new").iterdir():
        assert check_message(path.read_bytes()) == []
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found[message["To"].addresses[0].addr_spec] = message
    return found


def parts(message: EmailMessage) -> tuple[str, str]:
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return str(html.get_content()), str(text.get_content())


@pytest.fixture
def readers(mailer: Invoke) -> None:
    for slug, flags in (("open", ["--public-archive"]), ("closed", [])):
        assert mailer("lists", "create", slug, *flags).exit_code == 0
        for email, lang in (("ada@example.org", "en"), ("zoe@example.org", "fr"),
                            ("jonas@example.org", "de")):  # fmt: skip
            added = mailer("subscribers", "add", slug, email, "--language", lang)
            assert added.exit_code == 0


@pytest.mark.usefixtures("readers")
def test_author_and_date_show_under_the_title_with_the_date_in_the_editions_language(
    mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "notes.md"
    report.write_text(REPORT, encoding="utf-8")
    (workspace / "notes.fr.md").write_text(REPORT.replace("# Autumn", "# Notes d\u2019automne"))
    (workspace / "notes.de.md").write_text(REPORT.replace("author: Zoë Brontë\n", ""))
    messages = sent(mailer, workspace, report, "closed")
    bylines = {"ada@example.org": "By Zoë Brontë · November 20, 2026",
               "zoe@example.org": "Par Zoë Brontë · 20 novembre 2026",
               "jonas@example.org": "Von Zoë Brontë · 20. November 2026"}  # fmt: skip
    for email, byline in bylines.items():
        html, text = parts(messages[email])
        lines = text.splitlines()
        title = next(i for i, line in enumerate(lines) if line and set(line) == {"="})
        assert lines[title + 1 : title + 3] == ["", byline], email  # under the title
        assert lines[title + 3 : title + 5] == ["", "The weir was repaired."], email
        heading_end = html.index("</h1>")
        assert html.index('class="byline"', heading_end) < html.index("The weir", heading_end)
        assert byline in html
        assert "View in your browser" not in html + text  # a closed archive: no link


@pytest.mark.usefixtures("readers")
def test_a_date_that_is_no_date_is_shown_as_written_and_no_author_no_date_no_byline(
    mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "notes.md"
    report.write_text(REPORT.replace("date: 2026-11-20", "date: Autumn 2026"), encoding="utf-8")
    (workspace / "notes.fr.md").write_text("# Notes\n\nRien.\n", encoding="utf-8")
    messages = sent(mailer, workspace, report, "closed")
    html, text = parts(messages["ada@example.org"])
    assert "By Zoë Brontë · Autumn 2026" in text and "By Zoë Brontë · Autumn 2026" in html
    html, text = parts(messages["zoe@example.org"])  # the edition takes the default's byline
    assert "Par Zoë Brontë · Autumn 2026" in text
    report.write_text("# Plain\n\nNo front matter.\n", encoding="utf-8")
    (workspace / "notes.fr.md").unlink()
    for path in (workspace / "outbox" / "new").iterdir():
        path.unlink()
    html, text = parts(sent(mailer, workspace, report, "closed")["ada@example.org"])
    assert 'class="byline"' not in html and "By " not in text
    assert text.splitlines()[:4] == ["Plain", "=====", "", "No front matter."]


@pytest.mark.usefixtures("readers")
def test_view_in_your_browser_is_at_the_top_when_the_archive_is_public(
    mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "notes.md"
    report.write_text(REPORT, encoding="utf-8")
    (workspace / "notes.fr.md").write_text(REPORT.replace("# Autumn", "# Notes d\u2019automne"))
    messages = sent(mailer, workspace, report, "open")
    base = "http://127.0.0.1:8000/archive/1"
    for email, (words, url) in {
        "ada@example.org": ("View in your browser", base),
        "zoe@example.org": ("Voir dans votre navigateur", base + "/fr"),
        "jonas@example.org": ("View in your browser", base),  # no German edition
    }.items():
        html, text = parts(messages[email])
        assert text.splitlines()[0] in (f"{words}: {url}", f"{words}\u00a0: {url}")
        link = f'<a href="{url}"'
        assert html.index(link) < html.index('class="masthead"'), email
        assert words in html[html.index(link) : html.index('class="masthead"')]


@pytest.mark.usefixtures("readers")
def test_a_personal_title_has_the_byline_under_it_in_both_parts(
    mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "notes.md"
    body = REPORT.replace("# Autumn notes", "# Autumn notes for {{ subscriber.email }}")
    report.write_text(body + "\n# A second heading\n\nMore.\n", encoding="utf-8")
    messages = sent(mailer, workspace, report, "closed")
    html, text = parts(messages["ada@example.org"])
    lines = text.splitlines()
    title = lines.index("Autumn notes for ada@example.org")
    assert set(lines[title + 1]) == {"="}
    assert lines[title + 2 : title + 4] == ["", "By Zoë Brontë · November 20, 2026"]
    assert html.index('class="byline"') < html.index("A second heading")

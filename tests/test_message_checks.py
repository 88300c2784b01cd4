"""Rendered messages pass the checks: our own message checks, SpamAssassin, and a real browser."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from mailer.compose.preview import render_preview
from mailer.config import NewsletterSettings, Settings
from mailer.models import MailingList, Member
from tests.message_checks import check_paths

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "report.md"
LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
MEMBERS = [
    Member(1, "ada@example.org", "Ada Lovelace", {}, "confirmed", "active", False),
    Member(2, "zoe@example.org", "Zoë Brontë-Łukasiewicz", {}, "confirmed", "active", False),
    Member(3, "bob@example.org", 'Dr. "Bob" O\'Brien, Jr.', {}, "confirmed", "active", False),
    Member(
        4, "x@example.org", "<b>B</b> &\r\nBcc: x@example.net", {}, "confirmed", "active", False
    ),
]
STRESS = """---
subject: "Layout stress: long words, wide tables and code"
---

# A very long heading with a verylongwordthatdoesnotbreakanywhereatallinthisheading

Visit https://example.org/a/really/long/path/that/goes/on/and/on/without/any/break/at/all?x=1

| Column one | Column two | Column three | Column four | Column five | Column six |
|---|---|---|---|---|---|
| supercalifragilisticexpialidocious | 2 | 3 | 4 | 5 | 6 |

```
a code line that is much longer than any phone screen is wide, and never wraps by itself at all
```

> A quotation with a [link](https://example.org/q).
"""


def render(
    tmp_path: Path,
    member_email: str | None = None,
    report: Path = EXAMPLE,
    base_url: str = "http://127.0.0.1:8000",
) -> list[Path]:
    settings = Settings(workspace=tmp_path, newsletter=NewsletterSettings(base_url=base_url))
    out = tmp_path / (member_email or "placeholder")
    return render_preview(
        report, settings, out, mailing_list=LIST, members=MEMBERS, email=member_email
    )


def test_message_checks_find_no_problems(tmp_path: Path) -> None:
    messages = [render(tmp_path, member.email)[0] for member in MEMBERS]
    stress = tmp_path / "stress.md"
    stress.write_text(STRESS, encoding="utf-8")
    messages.append(render(tmp_path / "s", MEMBERS[1].email, stress, "https://news.example.org")[0])
    assert check_paths(messages) == (5, [])


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000", "https://news.example.org"])
def test_spamassassin_scores_the_example_low(tmp_path: Path, base_url: str) -> None:
    eml = render(tmp_path, MEMBERS[1].email, base_url=base_url)[0]
    # Local rules only (-L: no network tests); -t prints the report with its score.
    done = subprocess.run(
        ["spamassassin", "-L", "-t"],
        input=eml.read_bytes(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    report = done.stdout.decode(errors="replace")
    found = re.search(r"^Content analysis details: +\((-?[0-9.]+) points", report, re.MULTILINE)
    assert found, report[-2000:] + done.stderr.decode(errors="replace")
    assert float(found.group(1)) <= 1.0, report[-2000:]


def test_no_horizontal_scrolling_at_375_and_800_px(tmp_path: Path) -> None:
    stress = tmp_path / "stress.md"
    stress.write_text(STRESS, encoding="utf-8")
    pages = [
        render(tmp_path / "example", MEMBERS[1].email)[1],
        render(tmp_path / "stress", MEMBERS[1].email, stress)[1],
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            for html in pages:
                for width in (375, 800):
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    page.goto(html.as_uri())
                    scroll = page.evaluate("document.documentElement.scrollWidth")
                    assert scroll <= width, (html, width, scroll)
                    container = page.evaluate(
                        "document.querySelector('.container').getBoundingClientRect().width"
                    )
                    assert container <= 600
                    assert page.evaluate("document.documentElement.lang") == "en"
                    preheader = (
                        page.evaluate(
                            "getComputedStyle(document.querySelector('.preheader')).display"
                        )
                        if "preheader" in html.read_text(encoding="utf-8")
                        else "none"
                    )
                    assert preheader == "none"
                    page.close()
        finally:
            browser.close()

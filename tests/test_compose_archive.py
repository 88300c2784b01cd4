"""The archived copy: a campaign's HTML for nobody, with nothing in it that acts on a visitor."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.preview import archive_copy, strip_active
from mailer.compose.report import load_report, parse_report
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Reader

EXAMPLE = Path(__file__).parent.parent / "examples" / "report.md"
NEWS = NewsletterSettings(base_url="https://bulletin.example.org/")
LIST = MailingList(1, "survey", "Lower Vale Water Survey", False, public_archive=True)

# (what a report may hold, what must not be left of it, what must be)
ACTIVE = [
    ('<meta http-equiv="refresh" content="0;url=http://evil.example/">', "evil", ""),
    ('<META HTTP-EQUIV="Set-Cookie" CONTENT="a=b">', "a=b", ""),
    ('<meta http-equiv=content-security-policy content="script-src *">', "script-src", ""),
    ('<meta charset="utf-8"><meta name="x" content="y">', "http-equiv", '<meta name="x"'),
    ('<base href="http://evil.example/">', "evil", ""),
    ('<link rel="stylesheet" href="http://evil.example/x.css">', "evil", ""),
    ("<script>alert(1)</script><p>after</p>", "alert", "<p>after</p>"),
    ("<SCRIPT SRC=http://evil.example/x.js></SCRIPT>", "evil", ""),
    ('<iframe src="http://evil.example/"><p>inside</p></iframe><p>after</p>', "inside", "after"),
    ('<iframe srcdoc="<script>alert(1)</script>"></iframe>', "alert", ""),
    ('<object data="x.swf"><p>fallback</p></object><embed src="y.swf"><p>z</p>', "swf", "z"),
    ('<frameset><frame src="http://evil.example/"></frameset>', "evil", ""),
    ('<body onload="alert(1)"><p onclick="alert(2)" class="c">x</p>', "alert", 'class="c"'),
    ('<img src="x.png" ONERROR="alert(1)" alt="a">', "alert", 'alt="a"'),
    ('<a href="javascript:alert(1)">x</a>', "alert", "<a>x</a>"),
    ('<a href=" JaVa&#x09;Script&colon;alert(1)">x</a>', "alert", "<a>x</a>"),
    ('<a href="vbscript:msgbox(1)">x</a>', "msgbox", "<a>x</a>"),
    ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "alert", "<a>x</a>"),
    (
        '<form action="javascript:alert(1)"><button formaction="javascript:alert(2)">b</button>',
        "alert",
        "<button>b</button>",
    ),
    ('<p style="width: expression(alert(1))">x</p>', "alert", "<p>x</p>"),
    ('<a href="https://example.org/" ping="http://evil.example/">x</a>', "evil", "example.org"),
    ("<svg><script>alert(1)</script></svg><p>after</p>", "alert", "after"),
    ("<svg><style><img src=x onerror=alert(1)></style></svg><p>a</p>", "alert", "<p>a</p>"),
    ("<math><mtext><img src=x onerror=alert(1)></mtext></math>", "alert", ""),
    ('<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>', "alert", ""),
    ("<style></style/><img src=x onerror=alert(1)></style><p>b</p>", "<img", "<p>b</p>"),
    ("<style>a { color: red }</style x><img src=x onerror=alert(1)>", "<img", "<style>"),
    ("<!-- --!><img src=x onerror=alert(1)> --><p>c</p>", "alert", "<p>c</p>"),
    ("<!--[if mso]><script>alert(1)</script><![endif]--><p>d</p>", "alert", "<p>d</p>"),
    ("<xmp><img src=x onerror=alert(1)></xmp>", "alert", ""),
    ("<template><img src=x onerror=alert(1)></template>", "alert", ""),
    ('<style/><p title="</style><img src=x onerror=alert(1)>">e</p>', "<img", "e</p>"),
]


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


@pytest.mark.parametrize(("html", "gone", "kept"), ACTIVE)
def test_what_acts_on_a_visitor_is_stripped(html: str, gone: str, kept: str) -> None:
    stripped = strip_active(f"<p>before</p>{html}")
    assert gone not in stripped and gone.lower() not in stripped.lower()
    assert kept in stripped and stripped.startswith("<p>before</p>")
    parser = Elements()
    parser.feed(stripped)
    for tag, attrs in parser.found:
        assert tag not in ("script", "iframe", "object", "embed", "base", "frame", "svg")
        assert not any(name.startswith("on") for name, _ in attrs), (tag, attrs)
    assert strip_active(stripped) == stripped  # what is left reads the same once more


def test_text_entities_and_styles_are_kept_as_they_read() -> None:
    html = (
        "<!DOCTYPE html><html lang=en><head><style>@media (x) { a > b { color: red } }</style>"
        "</head><body><p class='x'>Fish &amp; chips &lt;3 “quoted” &nbsp;</p>"
        '<a href="https://example.org/?a=1&amp;b=2" title="it\'s">link</a><br/>'
        '<img src="data:image/png;base64,AAAA" alt=""><div/>text</body></html>'
    )
    assert strip_active(html) == (
        '<!DOCTYPE html><html lang="en"><head><style>@media (x) { a > b { color: red } }</style>'
        '</head><body><p class="x">Fish &amp; chips &lt;3 “quoted” \xa0</p>'
        '<a href="https://example.org/?a=1&amp;b=2" title="it&#x27;s">link</a><br>'
        '<img src="data:image/png;base64,AAAA" alt=""><div></div>text</body></html>'
    )


def test_the_archive_copy_is_a_page_for_a_visitor_with_its_date_and_the_archive() -> None:
    form = replace(LIST, public_form=True)
    campaign = CompiledCampaign(load_report(EXAMPLE), NEWS, form, campaign_id="c7")
    copy = archive_copy(campaign, NEWS.base_url, "2026-11-03")
    assert "Dear reader," in copy and "Volunteers collected 612 samples" in copy
    assert "<style>" in copy and "reader@example.org" not in copy
    # No reader's footer: nobody here is subscribed, and there is nothing to leave.
    for personal in ("is subscribed", "Unsubscribe", "/u/", "/p/", "Manage your"):
        assert personal not in copy, personal
    assert 'href="https://bulletin.example.org/s/survey"' in copy and "Subscribe to" in copy
    assert copy.count('href="https://bulletin.example.org/archive/"') == 2  # top and footer
    assert '<time datetime="2026-11-03"' in copy and "November 3, 2026" in copy
    assert "Results from forty sampling sites" not in copy  # a page has no inbox preview
    # A list without a public form is not offered to visitors.
    closed = archive_copy(CompiledCampaign(load_report(EXAMPLE), NEWS, LIST), NEWS.base_url)
    assert "/s/survey" not in closed and "Subscribe to" not in closed


def test_a_report_with_a_refresh_is_archived_without_it() -> None:
    text = "---\nsubject: R\n---\n# R\n\n" + ACTIVE[0][0] + "\n\nThe news.\n"
    campaign = CompiledCampaign(parse_report(text, Path("r.md")), NEWS, LIST)
    message_html = campaign.parts(Reader(1, "ada@example.org", "Ada"), Links("https://u"))[0]
    assert "http-equiv" in message_html  # the e-mail keeps what the editor wrote
    copy = archive_copy(campaign, NEWS.base_url)
    assert "http-equiv" not in copy and "evil.example" not in copy and "The news." in copy

"""What readers see, in Debian's Chromium: every email and page, light and dark, at 320, 375 and
800 px: axe-core finds nothing, nothing scrolls sideways, footer links are tap targets. The
screenshots are kept in test-artefacts/screens/."""

from __future__ import annotations

import hashlib
import html as html_module
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from mailer.audience import lists, members, subscriptions
from mailer.models import Candidate
from tests.conftest import EXAMPLE_REPORT, PUBLICATION, ROOT
from tests.smtp_servers import Mailbox, start
from tests.test_web import FORM, Live, confirm_link, http, post_form, smtp_environ, start_web
from tests.test_web_browser import run_mailer
from tests.test_web_preferences import link_in, post

AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
SCREENS = ROOT / "test-artefacts" / "screens"
WIDTHS = (320, 375, 800)
SCHEMES = ("light", "dark")
# Messages to one person about one thing, whose footers only say who sends them.
UNLINKED = {"confirmation", "address-confirmation", "address-notice"}
# The footer of an email (its contentinfo landmark) and of a page.
FOOTER_LINKS = "[role=contentinfo] a, footer a"


@dataclass
class Views:
    live: Live
    folder: Path
    unsubscribe: str  # a reader's links, from the message they were sent
    preferences: str
    confirm: str  # the link in the confirmation message
    address: str  # the link that confirms a new address


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Views]:
    """A served workspace that has sent the example report to a list with a public archive and
    form, and mailed a confirmation: each email kept as a file, each link at hand."""
    workspace = tmp_path_factory.mktemp("views")
    mailbox = Mailbox()
    controller = start(mailbox, enable_SMTPUTF8=True)
    publication = {k: v for k, v in PUBLICATION.items() if "BASE_URL" not in k}
    live = start_web(workspace, {**smtp_environ(controller.port), **publication})
    try:
        with live.store() as store:
            weekly = lists.create(store, "weekly", "Weekly report",
                                  public_archive=True, public_form=True)  # fmt: skip
            subscriptions.add(store, weekly, [Candidate("ada@example.org", False, "Ada Lovelace")])
            subscriptions.add(store, weekly, [Candidate("cy@example.org", False, "Cy")])
            ada = members.find(store, weekly, "ada@example.org")
        assert ada is not None
        env = {
            **smtp_environ(controller.port),
            **publication,
            "MAILER_NEWSLETTER_BASE_URL": live.url,
        }
        sent = run_mailer(workspace, "send", str(EXAMPLE_REPORT), "--list", "weekly", "--yes",
                          env=env)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        received = {r.recipient: r.message for r in mailbox.wait_for(2)}
        letter = html_part(received["ada@example.org"])
        folder = workspace / "emails"
        folder.mkdir()
        (folder / "newsletter.html").write_text(letter, encoding="utf-8")
        links = re.findall(r'href="([^"]+)"', letter)
        [unsubscribe] = [u for u in links if "/u/" in u]
        [preferences] = [u for u in links if "/p/" in u]
        # A new reader asks on the form: the confirmation is the first message they get.
        post_form(f"{live.url}/s/weekly", {"email": "bea@example.org", "name": "Bea"})
        [asked] = [r.message for r in mailbox.wait_for(3) if r.recipient == "bea@example.org"]
        (folder / "confirmation.html").write_text(html_part(asked), encoding="utf-8")
        # Another reader asks for a new address on their preferences page: two messages.
        [cy_page] = re.findall(r'href="([^"]+/p/[^"]+)"', html_part(received["cy@example.org"]))
        asking = post(cy_page, {"action": "address", "email": "cy.new@example.net"})
        assert asking.status == 200, asking.body
        mails = {r.recipient: r.message for r in mailbox.wait_for(5)}
        for name, to in (("address-confirmation", "cy.new@example.net"),
                         ("address-notice", "cy@example.org")):  # fmt: skip
            (folder / f"{name}.html").write_text(html_part(mails[to]), encoding="utf-8")
        address = link_in(mails["cy.new@example.net"], live.url, "a")
        # The list's welcome, sent to a reader the editor adds.
        welcome = ROOT / "examples" / "welcome.md"
        for command in (
            ("lists", "set", "weekly", "--welcome", str(welcome)),
            ("subscribers", "add", "weekly", "wel@example.org", "--welcome"),
        ):
            done = run_mailer(workspace, *command, env=env)
            assert done.returncode == 0, done.stderr
        [greeted] = [r.message for r in mailbox.wait_for(6) if r.recipient == "wel@example.org"]
        (folder / "welcome.html").write_text(html_part(greeted), encoding="utf-8")
        confirm = confirm_link(asked, live.url)
        yield Views(live, folder, unsubscribe, preferences, confirm, address)
    finally:
        live.stop()
        controller.stop()


def goto(url: str) -> Callable[[Page, Views], None]:
    return lambda page, views: _open(page, url.format(base=views.live.url))


def _open(page: Page, url: str) -> None:
    answer = page.goto(url)
    assert answer is not None


def email(name: str) -> Callable[[Page, Views], None]:
    return lambda page, views: _open(page, (views.folder / f"{name}.html").as_uri())


def answer(url: str, headers: dict[str, str]) -> Callable[[Page, Views], None]:
    """A page that a browser on another site gets: the form posted with its Origin."""

    def act(page: Page, views: Views) -> None:
        body = urllib.parse.urlencode({"email": "eve@example.org"}).encode()
        got = http("POST", url.format(base=views.live.url), body, {**FORM, **headers})
        assert got.status == 403, got.status
        page.set_content(got.body)

    return act


def submit(url: str, fields: dict[str, str], button: str) -> Callable[[Page, Views], None]:
    def act(page: Page, views: Views) -> None:
        _open(page, url.format(base=views.live.url, **vars(views)))
        for label, value in fields.items():
            page.get_by_label(label, exact=True).fill(value)
        with page.expect_navigation():
            page.get_by_role("button", name=button).click()

    return act


# Each email and page, how a reader comes to it, and its one heading. Order matters: the
# unsubscribe and confirm pages come before the buttons that change what they show.
VIEWS: dict[str, tuple[Callable[[Page, Views], None], str]] = {
    "newsletter": (email("newsletter"), "Lower Vale Water Survey: Autumn 2026 Quarterly Report"),
    "confirmation": (email("confirmation"), "Please confirm your subscription to Weekly report"),
    "welcome": (email("welcome"), "Welcome"),
    "subscribe": (goto("{base}/s/weekly"), "Subscribe to Weekly report"),
    "subscribe-error": (
        submit("{base}/s/weekly", {"Email address": "not an address"}, "Subscribe"),
        "Subscribe to Weekly report",
    ),
    "subscribed": (
        submit("{base}/s/weekly", {"Email address": "dee@example.org"}, "Subscribe"),
        "Subscribe to Weekly report",
    ),
    "unsubscribe": (lambda page, views: _open(page, views.unsubscribe), "Unsubscribe from"),
    "unsubscribed": (submit("{unsubscribe}", {}, "Unsubscribe"), "You have been unsubscribed"),
    "confirm": (lambda page, views: _open(page, views.confirm), "Confirm"),
    "confirmed": (
        submit("{confirm}", {}, "Confirm my subscription"),
        "Your subscription is confirmed",
    ),
    "preferences": (lambda page, views: _open(page, views.preferences), "preferences"),
    "preferences-saved": (submit("{preferences}", {}, "Save my preferences"), "preferences"),
    "address-confirmation": (email("address-confirmation"), "Please confirm your new address"),
    "address-notice": (email("address-notice"), "Your address for The Example Bulletin"),
    "address-confirm": (lambda page, views: _open(page, views.address), "Confirm your new address"),
    "address-changed": (submit("{address}", {}, "Confirm my new address"), "address is changed"),
    "archive-index": (goto("{base}/archive/"), "Archive"),
    "archive-issue": (goto("{base}/archive/1"), "Lower Vale Water Survey: Autumn 2026"),
    "invalid-link": (goto("{base}/u/not-a-token"), "This link is not valid"),
    "subscribe-refused": (
        answer("{base}/s/weekly", {"Origin": "http://evil.example"}),
        "our own page",
    ),
}


def test_axe_core_is_the_vendored_release() -> None:
    assert hashlib.sha256(AXE.read_bytes()).hexdigest() == AXE_SHA256


@pytest.mark.parametrize("name", list(VIEWS))
def test_every_view_is_accessible_fits_every_width_and_has_tap_targets(
    browser: Browser, views: Views, name: str
) -> None:
    # The pages forbid scripts (Content-Security-Policy); axe is a test's script, not theirs.
    context = browser.new_context(bypass_csp=True, viewport={"width": 800, "height": 900})
    page = context.new_page()
    try:
        come, heading = VIEWS[name]
        come(page, views)
        assert page.locator("h1").count() == 1, name
        assert heading.lower() in page.locator("h1").inner_text().lower(), name
        SCREENS.mkdir(parents=True, exist_ok=True)
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                where = f"{name} at {width} px, {scheme}"
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width, f"{where}: scrollWidth {scroll}"
                boxes = footer_links(page)
                assert boxes or name in UNLINKED, f"{where}: no link in the footer"
                for box in boxes:
                    assert box["width"] >= 24 and box["height"] >= 24, f"{where}: {box}"
                assert violations(page) == [], where
                page.screenshot(path=SCREENS / f"{name}-{width}-{scheme}.png", full_page=True)
    finally:
        context.close()


def footer_links(page: Page) -> list[dict[str, Any]]:
    """The size of each link in a footer, with its text."""
    boxes: list[dict[str, Any]] = page.evaluate(
        """selector => [...document.querySelectorAll(selector)].map(a => {
            const r = a.getBoundingClientRect();
            return {text: a.textContent, width: r.width, height: r.height};
        })""",
        FOOTER_LINKS,
    )
    return boxes


def violations(page: Page) -> list[str]:
    """axe-core's violations on the page, each as rule: the elements it names."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate("async () => (await axe.run()).violations")
    return [f"{v['id']}: {[n['target'] for n in v['nodes']][:5]}" for v in found]


def open_email(browser: Browser, views: Views, width: int, scheme: str = "light") -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    _open(page, (views.folder / "newsletter.html").as_uri())
    return page


@pytest.mark.parametrize("width", WIDTHS)
def test_on_a_phone_table_cells_keep_their_words_whole(
    browser: Browser, views: Views, width: int
) -> None:
    page = open_email(browser, views, width)
    try:
        # A word split across lines has two boxes: "Phosphat/e" in a narrow column.
        split: list[str] = page.evaluate(
            """() => {
                const split = [];
                for (const cell of document.querySelectorAll('.content td, .content th')) {
                    const text = cell.firstChild;
                    if (!text || text.nodeType !== Node.TEXT_NODE) continue;
                    for (const m of text.data.matchAll(/\\S+/g)) {
                        const range = document.createRange();
                        range.setStart(text, m.index);
                        range.setEnd(text, m.index + m[0].length);
                        if (range.getClientRects().length > 1) split.push(m[0]);
                    }
                }
                return split;
            }"""
        )
        cells = page.locator(".content td").count()
        assert cells >= 9 and split == [], split
    finally:
        page.close()


def test_on_a_phone_the_column_is_wide_and_the_title_short(browser: Browser, views: Views) -> None:
    page = open_email(browser, views, 375)
    try:
        column: dict[str, float] = page.evaluate(
            """() => {
                const p = document.querySelector('.content p');
                const style = getComputedStyle(p);
                const h1 = document.querySelector('h1');
                const line = parseFloat(getComputedStyle(h1).lineHeight);
                return {width: p.getBoundingClientRect().width,
                        size: parseFloat(style.fontSize),
                        lines: Math.round(h1.getBoundingClientRect().height / line)};
            }"""
        )
        # About 40 characters a line (a serif's average glyph is about half its size).
        assert column["width"] / (column["size"] * 0.5) >= 40, column
        assert column["lines"] <= 3, column
    finally:
        page.close()


def test_in_dark_mode_the_footer_has_no_bright_line(browser: Browser, views: Views) -> None:
    for scheme, bright in (("light", True), ("dark", False)):
        page = open_email(browser, views, 800, scheme)
        try:
            rgb: list[int] = page.evaluate(
                """() => getComputedStyle(document.querySelector('.footer')).borderTopColor
                    .match(/\\d+/g).slice(0, 3).map(Number)"""
            )
        finally:
            page.close()
        # Light mode: a pale line on white; dark mode: a dim one on the dark page.
        assert (sum(rgb) / 3 > 128) == bright, (scheme, rgb)


def test_the_preheader_is_followed_by_filler(views: Views) -> None:
    html = (views.folder / "newsletter.html").read_text(encoding="utf-8")
    found = re.search(r'<div class="preheader"[^>]*>([^<]*)</div>', html)
    assert found is not None
    preheader = (
        "Results from forty sampling sites, two methodology changes and the plan for winter."
    )
    text, _, filler = html_module.unescape(found.group(1)).partition(preheader)
    assert text == "" and len(filler) >= 150 and set(filler) <= {"\u034f", "\u200c", "\xa0"}

"""Every answer of `mailer serve` carries the security headers, whatever made it: a page, a
redirect, Starlette's own 405 and 413, the busy page, an unexpected 500."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import pytest

from mailer.audience import members, subscriptions
from mailer.models import Candidate
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Answer, Site, http, make_site, post_form


@pytest.fixture
def site(workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    pages = workspace / "templates" / "web"
    pages.mkdir(parents=True)
    # A workspace's broken pages: one that does not parse (a MailerError: the busy page, 503),
    # one that fails as it renders (anything else: Starlette's own 500).
    (pages / "unsubscribe.html.j2").write_text("{% if %}")
    (pages / "confirm.html.j2").write_text("{{ no_such_thing.at_all }}")
    made = make_site(workspace, smtp, ip_limit=(1, 3600.0))
    yield made
    made.live.stop()


def secured(answer: Answer) -> bool:
    headers = answer.headers
    policy = headers.get("content-security-policy", "")
    return (
        headers.get("x-content-type-options") == "nosniff"
        and headers.get("referrer-policy") in ("no-referrer", "same-origin")
        and "default-src 'none'" in policy
        and "frame-ancestors 'none'" in policy
    )


def test_every_status_carries_the_security_headers(site: Site) -> None:
    url = site.live.url
    with site.live.store() as store:
        subscriptions.add(store, site.double, [Candidate("bea@example.org", False)])
        member = members.find(store, site.double, "bea@example.org")
    assert member is not None
    bea = site.live.signer().make("c", member.id, site.double.id, int(time.time()))
    ada = site.token("u", site.ada, site.weekly)
    form = f"{url}/s/letters"
    answers = {
        200: http("GET", form),
        302: http("GET", f"{url}/"),
        400: post_form(form, {"email": "not an address"}),
        403: http(
            "POST", form, b"email=a%40example.org", {**FORM, "Origin": "http://evil.example"}
        ),
        404: http("GET", f"{url}/u/nope"),
        405: http("GET", f"{url}/u/{ada}/resubscribe"),
        413: http("POST", f"{url}/u/{ada}", b"x=" + b"y" * 20_000, FORM),
        500: http("GET", f"{url}/c/{bea}"),
        503: http("GET", f"{url}/u/{ada}"),
    }
    post_form(form, {"email": "b@example.org"}, ip="203.0.113.1")  # the one post an hour
    answers[429] = post_form(form, {"email": "c@example.org"}, ip="203.0.113.1")
    for status, answer in answers.items():
        assert answer.status == status
        assert secured(answer), (status, answer.headers)
    for path in ("/archive/", "/archive/feed.xml", "/archive/99"):  # and the archive's answers
        assert secured(http("GET", url + path)), path
        assert secured(http("POST", url + path, b"", FORM)), path  # 405
    assert answers[405].headers["allow"] == "POST"
    assert answers[429].headers["retry-after"] == "3600"
    assert answers[503].headers["retry-after"] == "60"
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"  # the 413 did nothing


def test_a_body_too_big_is_refused_even_when_it_comes_in_chunks(site: Site) -> None:
    """No Content-Length to check: the body is counted as it arrives."""
    ada = site.token("u", site.ada, site.weekly)
    address = site.live.url.removeprefix("http://")
    connection = HTTPConnection(address, timeout=10)
    chunks = (b"x=" + b"y" * 4096 for _ in range(8))  # 32 KiB, twice the limit
    connection.request("POST", f"/u/{ada}", body=chunks, headers=FORM, encode_chunked=True)
    answer = connection.getresponse()
    assert answer.status == 413 and answer.getheader("X-Content-Type-Options") == "nosniff"
    connection.close()
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"  # nothing changed

"""`mailer serve` when its database goes missing: 503 until it is back, never a new empty one."""

from __future__ import annotations

from pathlib import Path

from mailer.db.opening import open_database
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, http, make_site


def test_a_database_gone_while_serving_is_a_503_and_not_made_again(
    workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    site = make_site(workspace, smtp)
    try:
        path = site.live.settings.database_path
        link = f"{site.live.url}/u/{site.token('u', site.ada, site.weekly)}"
        assert http("GET", link).status == 200
        moved = path.with_name("moved.db")
        path.rename(moved)  # an unmounted volume, a file moved by hand
        answers = [http("GET", link), http("POST", link, b"List-Unsubscribe=One-Click", FORM),
                   http("GET", f"{site.live.url}/healthz")]  # fmt: skip
        assert [a.status for a in answers] == [503, 503, 503]
        assert all(a.headers.get("retry-after") for a in answers[:2])
        assert not path.exists()  # no empty database in its place
        moved.rename(path)
        assert http("GET", link).status == 200
        with open_database(site.live.settings) as store:  # the reader never left
            row = store.query_one("SELECT status FROM memberships")
        assert row is not None and row[0] == "confirmed"
    finally:
        site.live.stop()

"""A disk that fills up during a send: one line, the campaign paused, every message written
recorded, and a resume after freeing space that sends the rest exactly once. Real full disks:
small tmpfs mounts (the tests run as root)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from email import message_from_bytes
from pathlib import Path

from mailer import config
from mailer.compose.report import load_report
from mailer.db.reserve import Reserve
from mailer.db.sqlite import SqliteDatabase as Database
from mailer.models import Reply
from mailer.send import service
from mailer.send.campaigns import Campaigns
from mailer.send.outbox import OutboxTransport
from mailer.send.recipients import audience
from mailer.send.service import Overrides, Session
from tests.conftest import EXAMPLE_REPORT, fill

READERS = 400


def grow(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def mailer(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    command = [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)


def import_readers(workspace: Path) -> None:
    rows = "".join(f"r{i}@example.org,Reader {i}\n" for i in range(READERS))
    (workspace / "readers.csv").write_text("email,name\n" + rows)
    csv = str(workspace / "readers.csv")
    done = mailer(workspace, "subscribers", "import", "big", csv, "--create-list")
    assert done.returncode == 0, done.stderr


def delivered(outbox: Path) -> Counter[str]:
    return Counter(
        str(message_from_bytes(path.read_bytes())["To"]).rpartition("<")[2].rstrip(">")
        for path in (outbox / "new").iterdir()
    )


def recorded(workspace: Path) -> dict[str, int]:
    with sqlite3.connect(workspace / "subscribers" / "mailer.db") as db:
        return dict(db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))


def test_an_outbox_that_fills_the_disk_pauses_and_resume_sends_the_rest(
    small_disk: Path,
) -> None:
    import_readers(small_disk)
    sent = mailer(small_disk, "send", str(EXAMPLE_REPORT), "--list", "big", "--yes")
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "Traceback" not in sent.stderr
    last = sent.stderr.strip().splitlines()[-1]
    outbox = small_disk / "outbox"
    assert last == (
        f"error: disk full: outbox {outbox}; free space, then mailer campaigns resume 1"
    )
    written = delivered(outbox)
    assert 0 < sum(written.values()) < READERS
    assert recorded(small_disk)["sent"] == sum(written.values())  # nothing sent unrecorded
    assert list((outbox / "tmp").iterdir()) == []  # no half-written message left behind
    with sqlite3.connect(small_disk / "subscribers" / "mailer.db") as db:
        status, reason = db.execute("SELECT status, reason FROM campaigns").fetchone()
    assert (status, reason) == ("paused", f"disk full: outbox {outbox}")
    grow(small_disk, "64m")
    resumed = mailer(small_disk, "campaigns", "resume", "1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    everyone = delivered(outbox)
    assert len(everyone) == READERS and set(everyone.values()) == {1}
    assert recorded(small_disk) == {"sent": READERS}


class FillsTheDatabaseDisk:
    """An outbox on a roomy disk whose every delivery, from the 50th on, also fills the disk
    the database is on: the pipeline's writes are the first to find it full."""

    def __init__(self, outbox: Path, disk: Path) -> None:
        self.inner, self.disk, self.count = OutboxTransport(outbox), disk, 0

    @property
    def description(self) -> str:
        return self.inner.description

    async def connect(self) -> object:
        connection = await self.inner.connect()
        deliver = connection.send

        async def send(sender: str, recipient: str, message: bytes, smtputf8: bool) -> Reply:
            self.count += 1
            if self.count == 50:  # the filler takes every free byte of the database's disk
                fill(self.disk / "filler")
            return await deliver(sender, recipient, message, smtputf8)

        connection.send = send  # type: ignore[method-assign]
        return connection


def test_a_database_disk_that_fills_up_still_records_everything_sent(
    small_disk: Path, tmp_path: Path
) -> None:
    import_readers(small_disk)
    settings = config.load(small_disk, {})
    with Database(settings.database_path) as database:
        session = Session(settings, database)
        plan = service.plan_campaign(
            session, load_report(EXAMPLE_REPORT), audience(database, ["big"]), Overrides()
        )
        transport = FillsTheDatabaseDisk(tmp_path / "outbox", small_disk)
        plan = plan.__class__(**{**plan.__dict__, "transport": transport})
        result = asyncio.run(service.send_campaign(session, plan))
        info = Campaigns(database).get(result.campaign_id or 0)
    assert result.stop is not None and str(result.stop).startswith("disk full: database")
    written = delivered(tmp_path / "outbox")
    assert info.status == "paused" and info.counts["sent"] == sum(written.values()) >= 50
    (small_disk / "filler").unlink()
    resumed = mailer(small_disk, "campaigns", "resume", "1", "--outbox", str(tmp_path / "outbox"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    everyone = delivered(tmp_path / "outbox")
    assert len(everyone) == READERS and set(everyone.values()) == {1}


def test_a_reserve_that_cannot_be_removed_is_no_failure(tmp_path: Path) -> None:
    """Its folder made read-only during a send (here: a folder where the file should be):
    giving the space back says none was held, instead of ending the run in a traceback."""
    reserve = Reserve(tmp_path / "mailer.db")
    reserve.path.mkdir()
    (reserve.path / "x").write_text("x")
    assert reserve.release() is False
    assert reserve.hold() is False

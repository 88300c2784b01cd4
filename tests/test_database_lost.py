"""PostgreSQL going away in the middle of a send (a restart, a lost network): one line that
says what was left unrecorded and how to go on; the resume reaches everyone, within the bound."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import EXAMPLE_REPORT, PUBLICATION
from tests.smtp_servers import Mailbox, start

READERS = 2000
STOPPED = re.compile(
    r"(?:error: worker \d+ \(exit 1\): )?error: database postgresql://\S+: cannot reach it: .+?;"
    r" campaign 1 stopped \((\d+) results? not recorded, sent again on resume\): once it"
    r" answers, mailer campaigns resume 1"
)
FOLLOWED = re.compile(  # `send --workers`: after each worker's line, the sending process's
    r"error: database postgresql://\S+: cannot reach it: .+?; campaign 1: once it answers,"
    r" mailer campaigns resume 1"
)


@pytest.mark.parametrize("workers", [0, 2], ids=["send", "two-workers"])
def test_the_database_lost_mid_send_says_what_is_left_and_the_resume_reaches_everyone(
    workspace: Path, store_url: str, workers: int
) -> None:
    mailbox = Mailbox()
    controller = start(mailbox)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}, **PUBLICATION,
           "MAILER_DATABASE_URL": store_url, "MAILER_SMTP_HOST": "127.0.0.1",
           "MAILER_SMTP_PORT": str(controller.port), "MAILER_SMTP_SECURITY": "none"}  # fmt: skip
    command = [sys.executable, "-m", "mailer", "--workspace", str(workspace)]

    def mailer(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    readers = workspace / "readers.csv"
    readers.write_text("email\n" + "".join(f"reader{i}@example.org\n" for i in range(READERS)))
    assert mailer("subscribers", "import", "news", str(readers), "--create-list").returncode == 0
    try:
        send = [*command, "send", str(EXAMPLE_REPORT), "--list", "news", "--yes"]
        send += ["--workers", str(workers)] if workers else []
        sending = subprocess.Popen(send, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)  # fmt: skip
        mailbox.wait_for(READERS // 4)
        with psycopg.connect(store_url, autocommit=True) as admin:  # the send's connections go
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        _, stderr = sending.communicate(timeout=300)
        assert sending.returncode == 1, stderr
        lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
        if workers:
            assert FOLLOWED.fullmatch(lines.pop()), stderr
        found = [STOPPED.fullmatch(line) for line in lines]
        assert len(found) == max(workers, 1) and all(found), stderr
        unrecorded = sum(int(match.group(1)) for match in found if match)
        with psycopg.connect(store_url, autocommit=True) as admin:
            settings, sent = admin.execute(
                "SELECT c.settings, (SELECT COUNT(*) FROM deliveries d WHERE d.campaign_id = c.id"
                " AND d.status = 'sent') FROM campaigns c WHERE c.id = 1"
            ).fetchone()
        assert len(mailbox.received) == sent + unrecorded  # all the server took, and no more
        bound = json.loads(settings)["in_flight_limit"]  # each process's
        assert all(int(match.group(1)) <= bound for match in found if match)

        resumed = mailer("campaigns", "resume", "1")
        assert resumed.returncode == 0, resumed.stderr
    finally:
        controller.stop()
    counts = mailbox.counts()
    assert len(counts) == READERS
    assert sum(counts.values()) - READERS == unrecorded  # each of them twice, nobody else
    assert "status:   done" in mailer("campaigns", "show", "1").stdout

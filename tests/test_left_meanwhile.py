"""A reader who leaves while a send is under way is not mailed once they have left, though
their delivery was read a page ahead (each engine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_REPORT, store
from tests.smtp_servers import LoopbackController, Recorder
from tests.test_send_cli import cli, command, environment, populate, smtp_env, wait_for

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL


@pytest.mark.parametrize("workers", [0, 2])
def test_a_reader_who_leaves_mid_send_is_skipped_not_mailed(
    tmp_path: Path, smtp_server: tuple[LoopbackController, Recorder], workers: int
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    emails = populate(tmp_path, 60)
    args = ["send", str(EXAMPLE_REPORT), "--list", "big", "--yes", "--rate", "15"]
    args += ["--workers", str(workers)] if workers else []
    send = subprocess.Popen(command(tmp_path, *args),
                            env=environment(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: len(recorder.received) >= 10, send)  # every page read: all 60 at once
    leaving = [emails[45], emails[59]]
    for email in leaving:
        cli(tmp_path, "subscribers", "rm", "big", email)
    out, err = send.communicate(timeout=120)
    assert send.returncode == 0, out + err
    assert recorder.counts() == {e: 1 for e in emails if e not in leaving}  # before: all 60
    with store(tmp_path) as db:
        rows = db.query(
            "SELECT s.email, d.status, d.last_error FROM deliveries d JOIN subscribers s"
            " ON s.id = d.subscriber_id WHERE d.status != 'sent' ORDER BY s.email"
        )
    assert rows == [(e, "skipped", "no longer subscribed") for e in sorted(leaving)]


def sending(tmp_path: Path, env: dict[str, str], *lists: str) -> subprocess.Popen[str]:
    args = ["send", str(EXAMPLE_REPORT), "--yes", "--rate", "10"]
    return subprocess.Popen(command(tmp_path, *args, *[f"--list={slug}" for slug in lists]),
                            env=environment(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_one_who_comes_back_before_their_turn_is_sent_and_a_deleted_lists_are_not(
    tmp_path: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    emails = populate(tmp_path, 40)  # the list big
    only = tmp_path / "only.csv"
    only.write_text("email\n" + "".join(f"only{i}@example.org\n" for i in range(5)))
    cli(tmp_path, "subscribers", "import", "gone", str(only), "--create-list")
    send = sending(tmp_path, env, "big", "gone")
    wait_for(lambda: len(recorder.received) >= 5, send)
    cli(tmp_path, "subscribers", "rm", "big", emails[30])
    cli(tmp_path, "subscribers", "add", "big", emails[30], "--resubscribe")  # back at once
    cli(tmp_path, "lists", "rm", "gone", "--yes")
    out, err = send.communicate(timeout=120)
    assert send.returncode == 0, out + err
    assert recorder.counts() == dict.fromkeys(emails, 1)  # before: the five of gone too

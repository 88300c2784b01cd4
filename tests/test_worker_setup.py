"""A campaign's workers on other hosts: they refuse to send with another link secret or other
templates than the send that stored it, and one that cannot make a reader's message stops
there, leaving the reader queued (each engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from mailer.cli.send import summarise
from mailer.send.sessions import RunResult
from mailer.send.types import Progress, Stop, StopReason
from tests.conftest import store
from tests.smtp_servers import LoopbackController, Recorder
from tests.test_send_cli import cli, command, environment, populate, smtp_env

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL

REPORT = "---\nsubject: Cities\n---\n# Cities\n\nHello from {{ subscriber.attributes.city }}.\n"


def work(workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(workspace, "campaigns", "work", "1"), env=environment(env),
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def queued(workspace: Path) -> int:
    with store(workspace) as db:
        row = db.query_one("SELECT COUNT(*) FROM deliveries WHERE status = 'queued'")
    return int(row[0]) if row else 0


def test_a_worker_with_another_secret_or_other_templates_sends_nothing(
    tmp_path: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    emails = populate(tmp_path, 40)
    report = tmp_path / "report.md"
    report.write_text(REPORT.replace("{{ subscriber.attributes.city }}", "Oslo"))
    cli(tmp_path, "send", str(report), "--list", "big", "--yes", "--limit", "1", env=env)
    secret = tmp_path / ".mailer-secret"
    kept = secret.read_bytes()
    (tmp_path / "templates").mkdir()
    template = tmp_path / "templates" / "newsletter.txt.j2"
    template.write_text("{{ subscriber.attributes.zzz }}\n")  # this host's own, unlike the send's
    said = work(tmp_path, env)
    assert said.returncode == 1 and said.stdout == "", said.stdout
    assert said.stderr == (
        "error: campaign 1 was stored with other templates than this workspace's"
        " (newsletter.txt.j2): copy its templates/ from the workspace that stored it, or install"
        " the same mailer\n"
    )
    shutil.rmtree(tmp_path / "templates")
    secret.write_text("ab" * 32)  # another host's own secret
    said = work(tmp_path, env)
    assert said.returncode == 1 and said.stderr == (
        f"error: campaign 1 was stored with another .mailer-secret than {secret}: its readers'"
        " links would not work; copy it from the workspace that stored the campaign\n"
    )
    secret.unlink()  # none copied: it must not make one of its own
    said = work(tmp_path, env)
    assert said.returncode == 1 and "this workspace has no .mailer-secret" in said.stderr
    assert not secret.exists() and len(recorder.received) == 1 and queued(tmp_path) == 39
    secret.write_bytes(kept)
    (tmp_path / "templates").mkdir()  # an editor's backup beside the templates is none of them
    (tmp_path / "templates" / "newsletter.html.j2~").write_text("{{ old }}")
    assert work(tmp_path, env).returncode == 0
    assert recorder.counts() == dict.fromkeys(emails, 1)


def test_a_reader_a_worker_cannot_render_stops_it_and_stays_queued(
    tmp_path: Path, smtp_server: tuple[LoopbackController, Recorder]
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port)
    readers = tmp_path / "readers.csv"
    readers.write_text("email,city\n" + "".join(f"r{i}@example.org,Oslo\n" for i in range(30)))
    cli(tmp_path, "subscribers", "import", "big", str(readers), "--create-list")
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    cli(tmp_path, "send", str(report), "--list", "big", "--yes", "--limit", "1", env=env)
    with store(tmp_path) as db:  # changed since the send checked every reader
        db.execute("UPDATE subscribers SET attributes = '{}' WHERE email = 'r10@example.org'")
        (reader,) = db.query_one("SELECT id FROM subscribers WHERE email = 'r10@example.org'")
    said = work(tmp_path, env)
    assert said.returncode == 1, said.stdout + said.stderr
    assert f"stopped by an error: reader {reader}: not rendered: " in said.stderr
    with store(tmp_path) as db:
        status = db.query_one("SELECT status FROM deliveries WHERE subscriber_id = ?", (reader,))
        failed = db.query_one("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'")
    assert status == ("queued",) and failed == (0,)
    assert "r10@example.org" not in recorder.counts()
    with store(tmp_path) as db:  # mended: the rest goes, each reader once
        db.execute("""UPDATE subscribers SET attributes = '{"city": "Oslo"}'"""
                   " WHERE email = 'r10@example.org'")  # fmt: skip
    cli(tmp_path, "campaigns", "resume", "1", env=env)
    assert recorder.counts() == {f"r{i}@example.org": 1 for i in range(30)}


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("sending", "error: this worker stopped (stopped by an error: the relay refused);"
                    " campaign 7 goes on with its other workers\n"),
        ("paused", "error: campaign 7 paused (stopped by an error: the relay refused); resume"
                   " with: mailer campaigns resume 7\n"),
    ],
)  # fmt: skip
def test_a_worker_that_stops_while_others_send_says_so(
    status: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = Stop(StopReason.ERROR, "the relay refused")
    with pytest.raises(typer.Exit):
        summarise(RunResult(7, Progress(10, stop=stop), 5, status, 0))
    assert capsys.readouterr().err == says


def test_the_last_worker_says_to_retry_what_the_others_deferred(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summarise(RunResult(7, Progress(10), 0, "done", deferred=56))
    assert capsys.readouterr().out.endswith(
        "retry the deferred ones later with: mailer campaigns retry 7\n"
    )

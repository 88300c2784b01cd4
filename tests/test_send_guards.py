"""Guards on sending: a public http base_url, several lists, a resumed campaign's own rate,
marked and impersonated test sends, counts in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer import config
from mailer.config.default_file import render_default_file
from mailer.db.sqlite import SqliteDatabase as Database
from mailer.send import service
from mailer.send.campaigns import Campaigns
from mailer.send.service import Overrides, Session
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, Invoke
from tests.smtp_servers import LoopbackController, Recorder, closed_port

REAL = {
    "MAILER_NEWSLETTER_SENDER": "Vale Survey <news@vale.example>",
    "MAILER_NEWSLETTER_POSTAL_ADDRESS": "Vale Survey, 3 Mill Lane, Lower Vale",
    "MAILER_NEWSLETTER_BASE_URL": "https://news.vale.example",
}
Server = tuple[LoopbackController, Recorder]


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(port),
            "MAILER_SMTP_SECURITY": "none", **extra}  # fmt: skip


@pytest.fixture
def example(mailer: Invoke) -> str:
    imported = mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    assert imported.exit_code == 0, imported.output
    return "example"


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_smtp_send_refuses_placeholders_naming_each_and_where(
    mailer: Invoke, workspace: Path, example: str
) -> None:
    (workspace / "mailer.toml").write_text(
        '[newsletter]\nsender = "The Example Bulletin <bulletin@example.org>"\nname = "Vale"\n',
        encoding="utf-8",
    )
    port = closed_port()  # refused before connecting: no connection error can show
    env = smtp_env(
        port, MAILER_NEWSLETTER_POSTAL_ADDRESS=config.NewsletterSettings().postal_address
    )
    for args in (["--yes"], ["--test", "me@vale.example"]):
        refused = mailer("send", str(EXAMPLE_REPORT), "--list", example, *args, env=env)
        assert refused.exit_code == 1, refused.output
        line = one_error_line(refused.stderr)
        toml = workspace / "mailer.toml"  # named as it was found: the whole path
        assert f"newsletter.sender is still `mailer init`'s placeholder ({toml}:2)" in line
        assert "newsletter.postal_address" in line and "(MAILER_NEWSLETTER_POSTAL_ADDRESS)" in line
        assert "newsletter.base_url" in line and f"(not set in {toml})" in line
        assert "refused" not in line.lower().replace("refusing", "")
    assert "no campaigns yet" in mailer("campaigns", "ls").stderr
    outbox = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes",
                    "--outbox", str(workspace / "box"), env=env)  # fmt: skip
    assert outbox.exit_code == 0, outbox.output
    assert len(list((workspace / "box" / "new").iterdir())) == 20


URLS = [("http://news.vale.example", True), ("http://192.0.2.7:8000", True),
        ("http://localhost:8000", False), ("http://127.0.0.2", False),
        ("http://[::1]:8000", False), ("https://news.vale.example", False)]  # fmt: skip


def test_plain_http_base_url_is_refused_unless_loopback(
    mailer: Invoke, example: str, smtp_server: Server
) -> None:
    controller, recorder = smtp_server
    for base_url, refused in URLS:  # one test: the accepted ones alone passed before
        env = smtp_env(controller.port, **{**REAL, "MAILER_NEWSLETTER_BASE_URL": base_url})
        before = len(recorder.received)
        sent = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--test", "me@vale.example",
                      env=env)  # fmt: skip
        if refused:
            assert sent.exit_code == 1, base_url
            line = one_error_line(sent.stderr)
            assert f"newsletter.base_url is {base_url!r}, plain http" in line
            assert "(MAILER_NEWSLETTER_BASE_URL)" in line and "sender" not in line
            assert len(recorder.received) == before
        else:
            assert sent.exit_code == 0, sent.output
            assert len(recorder.received) == before + 1


def test_resume_and_retry_refuse_a_public_http_base_url_before_connecting(
    mailer: Invoke, example: str, smtp_server: Server
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port, **REAL)
    first = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", "--limit", "2", env=env)
    assert first.exit_code == 0, first.output
    public = {**REAL, "MAILER_NEWSLETTER_BASE_URL": "http://news.vale.example"}
    for command in ("resume", "retry"):
        refused = mailer("campaigns", command, "1", env=smtp_env(closed_port(), **public))
        assert refused.exit_code == 1, refused.output
        assert "newsletter.base_url is 'http://news.vale.example', plain http" in refused.stderr
    assert len(recorder.received) == 2
    assert mailer("campaigns", "resume", "1", env=env).exit_code == 0
    assert len(recorder.received) == 20


def test_resume_and_retry_refuse_placeholders_before_connecting(
    mailer: Invoke, example: str, smtp_server: Server
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port, **REAL)
    first = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", "--limit", "2", env=env)
    assert first.exit_code == 0, first.output
    for command in ("resume", "retry"):
        refused = mailer("campaigns", command, "1", env=smtp_env(closed_port()))
        assert refused.exit_code == 1, refused.output
        assert "newsletter.sender is still `mailer init`'s placeholder" in refused.stderr
    assert len(recorder.received) == 2
    assert mailer("campaigns", "resume", "1", env=env).exit_code == 0
    assert len(recorder.received) == 20


def test_init_says_base_url_must_be_the_public_https_address() -> None:
    [comment] = [line for line in render_default_file().splitlines() if "readers reach" in line]
    assert "must be the public https address readers reach" in comment.lower()


def test_the_same_report_to_the_same_list_twice_is_refused_unless_again(
    mailer: Invoke, workspace: Path, example: str, smtp_server: Server
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port, **REAL)
    assert mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", env=env).exit_code == 0
    with Database(workspace / "subscribers" / "mailer.db") as database:
        created = Campaigns(database).get(1).created_at[:10]
    copy = workspace / "same.md"  # the same source under another name is the same report
    copy.write_bytes(EXAMPLE_REPORT.read_bytes())
    again = mailer("send", str(copy), "--list", example, "--yes", env=env)
    assert again.exit_code == 1
    line = one_error_line(again.stderr)
    assert "campaign 1" in line and created in line and "--again" in line
    assert len(recorder.received) == 20
    for args in (["--dry-run"], ["--test", "me@vale.example"]):
        assert mailer("send", str(copy), "--list", example, *args, env=env).exit_code == 0
    assert len(recorder.received) == 21
    forced = mailer("send", str(copy), "--list", example, "--yes", "--again", env=env)
    assert forced.exit_code == 0, forced.output
    assert "campaign 2" in forced.stdout and len(recorder.received) == 41


def test_resume_and_retry_keep_the_campaigns_rate_and_concurrency(
    mailer: Invoke, workspace: Path, example: str, smtp_server: Server
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port, **REAL)
    first = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--yes", "--rate", "200",
                   "--concurrency", "3", "--limit", "4", env=env)  # fmt: skip
    assert first.exit_code == 0, first.output
    settings = config.load(workspace, env)
    with Database(settings.database_path) as database:
        session = Session(settings, database)
        info = Campaigns(database).get(1)
        kept = service.resume_options(session, info, Overrides())
        assert (kept.rate, kept.concurrency) == (200, 3)
        given = service.resume_options(session, info, Overrides(concurrency=1, rate=0))
        assert (given.rate, given.concurrency) == (0, 1)
    resumed = mailer("campaigns", "resume", "1", env=env)
    assert resumed.exit_code == 0, resumed.output
    assert len(recorder.received) == 20


def test_test_sends_are_marked_and_can_show_a_readers_message(
    mailer: Invoke, example: str, smtp_server: Server
) -> None:
    controller, recorder = smtp_server
    env = smtp_env(controller.port, **REAL)
    sent = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--test", "me@vale.example",
                  "--test-as", "Zoe.Bronte@example.org", env=env)  # fmt: skip
    assert sent.exit_code == 0, sent.output
    [received] = recorder.received
    assert received.recipient == "me@vale.example"
    message = received.message
    assert message["Subject"].startswith("[TEST] ")
    body = message.get_body(("plain",))
    assert body is not None and "Dear Zoë Brontë," in body.get_content()
    unknown = mailer("send", str(EXAMPLE_REPORT), "--list", example, "--test", "me@vale.example",
                     "--test-as", "nobody@vale.example", env=env)  # fmt: skip
    assert unknown.exit_code == 1
    assert "nobody@vale.example" in one_error_line(unknown.stderr)
    assert len(recorder.received) == 1


def test_send_counts_one_message_and_one_reader_in_the_singular(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("lists", "create", "solo", "--name", "Solo").exit_code == 0
    assert mailer("subscribers", "add", "solo", "ada@vale.example").exit_code == 0
    dry = mailer("send", str(EXAMPLE_REPORT), "--list", "solo", "--dry-run")
    assert "dry run: 1 message rendered and checked for solo" in dry.stdout
    sent = mailer("send", str(EXAMPLE_REPORT), "--list", "solo", "--yes",
                  "--outbox", str(workspace / "box"))  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert "list:      solo (1 reader)\n" in sent.stdout

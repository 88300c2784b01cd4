"""Shared fixtures: a temporary workspace and the real CLI invoked through Typer's CliRunner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mailer.cli import app
from tests.smtp_servers import LoopbackController, Mailbox, Recorder, start

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CSV = ROOT / "subscribers" / "example.csv"
EXAMPLE_REPORT = ROOT / "examples" / "report.md"

Invoke = Callable[..., Result]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(__import__("os").environ):
        if name.startswith("MAILER_"):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def mailer(workspace: Path) -> Invoke:
    """Run ``mailer --workspace <tmp> ARGS...`` in-process; returns click's Result."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, ["--workspace", str(workspace), *args], input=input, env=env)

    return invoke


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def smtp_server() -> Iterator[tuple[LoopbackController, Recorder]]:
    recorder = Recorder()
    controller = start(recorder, enable_SMTPUTF8=True)
    yield controller, recorder
    controller.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[LoopbackController, Mailbox]]:
    """A recording server that a test can wait on for the n-th message."""
    mailbox = Mailbox()
    controller = start(mailbox, enable_SMTPUTF8=True)
    yield controller, mailbox
    controller.stop()

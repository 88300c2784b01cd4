"""Front matter and what templates render are bounded: an excess is one line, in bounded time."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.compose.compiled import CompiledCampaign
from mailer.compose.report import load_report
from mailer.compose.templates import packaged_templates
from mailer.config import NewsletterSettings
from mailer.errors import FileInputError
from mailer.models import MailingList
from tests.conftest import EXAMPLE_CSV, Invoke

NEWS = NewsletterSettings(base_url="https://bulletin.example.org")
LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
MEMORY = 1 << 30  # the CLI runs in 1 GiB of address space: far more than a report needs
LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)
)  # nine levels of nine: 387,420,489 strings from 700 bytes
BILLION_LAUGHS = f'---\nsubject: Laughs\nl0: &l0 "lol"\n{LAUGHS}---\nHello.\n'
DEEP = "---\nsubject: Deep\nx: " + "[" * 100 + "]" * 100 + "\n---\nHello.\n"
HUGE_FRONT = "---\nsubject: Big\n" + "".join(f"k{i}: {'v' * 60}\n" for i in range(1200)) + "---\n"
BOMB = "---\nsubject: Bomb\n---\n# Bomb\n\nHello {{ 'a' * 4000000000 }}.\n"


def run_mailer(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process, in at most MEMORY bytes and 60 seconds."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    command = [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=60,
                          preexec_fn=limit)  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str], path: Path, reason: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: {path}"), done.stderr
    assert reason in done.stderr, done.stderr


@pytest.fixture
def listed(mailer: Invoke, workspace: Path) -> Path:
    assert (
        mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list").exit_code == 0
    )
    return workspace


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BILLION_LAUGHS, ":4: front matter may not use YAML aliases"),
        (DEEP, ":3: front matter is nested over 32 levels"),
        (HUGE_FRONT, ":1: front matter is longer than 64 KiB"),
        (BOMB, ":6: the repeated value (*) would be 4,000,000,000 characters long"),
    ],
    ids=["billion-laughs", "deep", "huge-front-matter", "4-GB-string"],
)
@pytest.mark.parametrize("command", ["render", "send --dry-run"])
def test_the_cli_says_one_line_in_bounded_memory_and_time(
    listed: Path, text: str, reason: str, command: str
) -> None:
    path = listed / "report.md"
    path.write_text(text, encoding="utf-8")
    extra = ["--out", str(listed / "out")] if command == "render" else ["--list", "example"]
    one_line(run_mailer(listed, *command.split(), str(path), *extra), path, reason)
    assert not (listed / "out").exists()


def test_a_bomb_in_a_workspace_template_is_one_line(listed: Path) -> None:
    own = listed / "templates"
    shutil.copytree(packaged_templates(), own)
    footer = own / "partials" / "footer.html.j2"
    lines = footer.read_text().splitlines()
    footer.write_text("\n".join([*lines, "<p>{{ 'a' * 4000000000 }}</p>"]) + "\n")
    report = listed / "report.md"
    report.write_text("---\nsubject: Fine\n---\nHello.\n")
    done = run_mailer(listed, "send", str(report), "--list", "example", "--dry-run")
    one_line(
        done,
        footer,
        f":{len(lines) + 1}: the repeated value (*) would be 4,000,000,000 characters long",
    )


def test_a_report_file_over_10_mib_is_refused(listed: Path) -> None:
    path = listed / "report.md"
    path.write_text("---\nsubject: Long\n---\n" + "word " * (2 * 1024 * 1024 + 1))
    one_line(run_mailer(listed, "render", str(path)), path, "larger than 10 MiB")


# Every way a template can grow a value past 10,000,000 characters (20 million here, so that
# code without the bounds renders them quickly, and this test fails rather than the machine).
GROWTHS = [
    "{{ 'a' * 20000000 }}",
    "{{ ['a'] * 20000000 }}",
    "{{ 'a'|center(20000000) }}",
    "{{ 'a'.rjust(20000000) }}",
    "{{ 'a'.zfill(20000000) }}",
    "{{ '\\t'.expandtabs(20000000) }}",
    "{{ '%20000000d'|format(1) }}",
    "{{ '%20000000d' % 1 }}",
    "{{ '{:>20000000}'.format(1) }}",
    "{{ '{0:>20000000}'.format_map([1]) }}",
    "{% set s = 'a' * 9000000 %}{{ s ~ s }}",
    "{% set s = 'a' * 9000000 %}{{ s + s }}",
    "{% set s = 'a' * 9000000 %}{{ [s, s]|join }}",
    "{% set s = 'a' * 9000000 %}{{ ''.join([s, s]) }}",
    "{% set s = 'a' * 5000000 %}{{ s|replace('a', 'aaaa') }}",
    "{% set s = 'a' * 5000000 %}{{ s.replace('a', 'aaaa') }}",
    "{% set s = 'a\\n' * 3000000 %}{{ s|indent(8) }}",
    "{% set s = 'a ' * 3000000 %}{{ s|wordwrap(1, wrapstring='----') }}",
    "{% set s = 'a' * 9000000 %}{{ [s, s] }}",
    "{% set s = 'a' * 9000000 %}{{ [s, s]|string }}",
    "{% set s = 'a' * 900000 %}{{ [s] * 20 }}",
    "{{ range(100000)|list|tojson(indent=200) }}",
    "{{ lipsum(100000) }}",
    "{% set x %}{% for i in range(100000) %}{{ 'a' * 201 }}{% endfor %}{% endset %}{{ x }}",
    "{{ 2 ** 3000000 > 1 }}",
    "{{ (2 ** 900000) * (2 ** 900000) > 1 }}",
]


@pytest.mark.parametrize("growth", GROWTHS)
def test_no_template_value_grows_past_the_limit(tmp_path: Path, growth: str) -> None:
    path = tmp_path / "report.md"
    path.write_text(f"---\nsubject: Growth\n---\n# Growth\n\n{growth}\n")
    with pytest.raises(FileInputError) as caught:
        CompiledCampaign(load_report(path), NEWS, LIST, campaign_id="c1")
    assert (caught.value.path, caught.value.line) == (path, 6)
    assert "limit is 10,000,000" in str(caught.value) or "bits is too large" in str(caught.value)

"""A paragraph just before a list that reads like that list's first item is a warning, from
`mailer render` and `mailer send --dry-run` alike, and an error under --strict."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CSV, Invoke

QUOTED = """# Demands

The strikers wrote:

"1. We want fair pay.

2. We want safe sites.
3. We want a voice."
"""
LOOKS = "this paragraph looks like the first item of the list after it"


def write(workspace: Path, body: str) -> Path:
    path = workspace / "report.md"
    path.write_text(f"---\nsubject: Demands\n---\n{body}", encoding="utf-8")
    return path


def line_of(report: Path, text: str) -> int:
    lines = report.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.startswith(text))


def warnings(mailer: Invoke, report: Path, out: Path) -> list[str]:
    done = mailer("render", str(report), "--out", str(out))
    assert done.exit_code == 0, done.output
    return done.stderr.splitlines()


def test_a_quoted_first_item_is_a_warning_with_its_line(mailer: Invoke, workspace: Path) -> None:
    report = write(workspace, QUOTED)
    line = line_of(report, '"1. We want')
    said = (f"{report}:{line}: {LOOKS} (the list starts at 2); remove '\"' before \"1.\" to make"
            ' it that item, or escape it as "1\\." if the paragraph is meant')  # fmt: skip
    assert warnings(mailer, report, workspace / "out") == [f"warning: {said}"]
    html = (workspace / "out" / "message.html").read_text(encoding="utf-8")
    assert '<ol start="2"' in html  # what CommonMark makes of it, and what the warning is for
    strict = mailer("render", str(report), "--out", str(workspace / "o2"), "--strict")
    assert strict.exit_code == 1 and strict.stderr == f"error: {said} (--strict)\n"
    assert not (workspace / "o2").exists()
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    dry = mailer("send", str(report), "--list", "example", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stderr.splitlines() == [f"warning: {said}"]
    refused = mailer("send", str(report), "--list", "example", "--dry-run", "--strict")
    assert refused.exit_code == 1 and refused.stderr == f"error: {said} (--strict)\n"


@pytest.mark.parametrize(
    ("marks", "number", "delimiter"),
    [
        ("“", 1, "."),  # English
        ("„", 1, "."),  # German
        ("« ", 1, "."),  # French, with its space
        ("\u2018", 1, "."),  # single
        ("'", 1, "."),
        ("\u2039", 1, "."),  # single guillemet
        ("「", 1, "."),  # Japanese
        ("\uff02", 1, "."),  # full-width
        ("(", 1, "."),
        ("[", 4, "."),
        ("*", 1, "."),
        ("_", 1, "."),
        ('**"', 1, "."),
        ('"', 1, ")"),
        ('"', 9, ")"),
    ],
)
def test_any_leading_quote_bracket_or_emphasis_before_the_number(
    mailer: Invoke, workspace: Path, marks: str, number: int, delimiter: str
) -> None:
    item = f"{number}{delimiter}"
    report = write(workspace, f"{marks}{item} First.\n\n{number + 1}{delimiter} Second.\n")
    line = line_of(report, marks)
    said = (f"warning: {report}:{line}: {LOOKS} (the list starts at {number + 1}); remove"
            f" {marks!r} before \"{item}\"")  # fmt: skip
    [warning] = warnings(mailer, report, workspace / "out")
    assert warning.startswith(said)
    assert warning.endswith(f'escape it as "{number}\\{delimiter}" if the paragraph is meant')


@pytest.mark.parametrize("bullet", ["-", "*", "+"])
def test_a_bullet_after_a_quote_before_a_bullet_list(
    mailer: Invoke, workspace: Path, bullet: str
) -> None:
    report = write(workspace, f"Intro.\n\n“{bullet} First.\n\n{bullet} Second.\n{bullet} Third.\n")
    line = line_of(report, "“")
    said = (f"warning: {report}:{line}: {LOOKS} (a \"{bullet}\" list); remove '“' before"
            f' "{bullet} " to make it that item, or escape it as "\\{bullet}" if the paragraph'
            " is meant")  # fmt: skip
    assert warnings(mailer, report, workspace / "out") == [said]


def test_inside_a_blockquote(mailer: Invoke, workspace: Path) -> None:
    body = "They wrote:\n\n> « 1. Nous voulons un salaire juste.\n>\n> 2. Des chantiers sûrs.\n"
    report = write(workspace, body + '\n> - one\n>\n> "- two\n>\n> - three\n')
    first, second = line_of(report, "> « 1."), line_of(report, '> "- two')
    assert warnings(mailer, report, workspace / "out") == [
        f"warning: {report}:{first}: {LOOKS} (the list starts at 2); remove '« ' before \"1.\""
        ' to make it that item, or escape it as "1\\." if the paragraph is meant',
        f"warning: {report}:{second}: {LOOKS} (a \"-\" list); remove '\"' before \"- \" to make"
        ' it that item, or escape it as "\\-" if the paragraph is meant',
    ]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        "The strikers wrote:\n\n2. We want safe sites.\n3. We want a voice.\n",  # ordinary
        '"0. Nothing yet.\n\n1. We want fair pay.\n',  # a list starting at 1
        '"1. We want fair pay.\n\n3. We want a voice.\n',  # not N-1
        '"2. We want fair pay.\n\n4. We want a voice.\n',
        '"1) We want fair pay.\n\n2. We want safe sites.\n',  # another delimiter
        '"1. We want fair pay.\n\n2) We want safe sites.\n',
        '"1\\. We want fair pay.\n\n2. We want safe sites.\n',  # escaped: meant
        '"1.5 million of us.\n\n2. We want safe sites.\n',  # a number, not an item
        '"- one\n\n* two\n',  # another bullet
        '"-one\n\n- two\n',
        "“Fair pay” was the first.\n\n- two\n",
        '"1. We want fair pay.\n\n> 2. We want safe sites.\n',  # the list is elsewhere
        '> "1. We want fair pay.\n\n2. We want safe sites.\n',
        '"1. We want fair pay.\n\nAnd more.\n\n2. We want safe sites.\n',  # not just before
    ],
)
def test_no_warning_for_what_is_not_a_lookalike(mailer: Invoke, workspace: Path, body: str) -> None:
    assert warnings(mailer, write(workspace, body), workspace / "out") == []

"""A paragraph just before a list that reads like that list's first item, and lines numbered
like a list run into one paragraph, are warnings, from `mailer render` and `mailer send
--dry-run` alike, and errors under --strict."""

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
ITEM_1 = (
    '(the list starts at 2); remove \'"\' before "1." to make it that item, or escape it as "1\\."'
)
RUN = "these lines look like a numbered list"
KEEP = 'end each line before a number with "\\" to keep the paragraph with its lines apart'


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


def everywhere(mailer: Invoke, workspace: Path, report: Path, said: str) -> str:
    """``said`` is the one warning of render and send --dry-run, and the error of --strict;
    the rendered HTML, for what readers get."""
    assert warnings(mailer, report, workspace / "out") == [f"warning: {said}"]
    strict = mailer("render", str(report), "--out", str(workspace / "o2"), "--strict")
    assert strict.exit_code == 1 and strict.stderr == f"error: {said} (--strict)\n"
    assert not (workspace / "o2").exists()
    mailer("subscribers", "import", "example", str(EXAMPLE_CSV), "--create-list")
    dry = mailer("send", str(report), "--list", "example", "--dry-run")
    assert dry.exit_code == 0 and dry.stderr.splitlines() == [f"warning: {said}"], dry.output
    refused = mailer("send", str(report), "--list", "example", "--dry-run", "--strict")
    assert refused.exit_code == 1 and refused.stderr == f"error: {said} (--strict)\n"
    return (workspace / "out" / "message.html").read_text(encoding="utf-8")


def test_a_quoted_first_item_is_a_warning_with_its_line(mailer: Invoke, workspace: Path) -> None:
    report = write(workspace, QUOTED)
    line = line_of(report, '"1. We want')
    said = (f"{report}:{line}: {LOOKS} (the list starts at 2); remove '\"' before \"1.\" to make"
            ' it that item, or escape it as "1\\." if the paragraph is meant')  # fmt: skip
    html = everywhere(mailer, workspace, report, said)
    assert '<ol start="2"' in html  # what CommonMark makes of it, and what the warning is for


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


def test_the_last_line_of_a_longer_paragraph(mailer: Invoke, workspace: Path) -> None:
    report = write(workspace, 'Our demands:\n"1. fair pay\n\n2. time off\n')
    line = line_of(report, '"1. fair')
    said = (f"{report}:{line}: {LOOKS} (the list starts at 2); remove"
            ' \'"\' before "1." to make it that item, or escape it as "1\\." if the paragraph'
            " is meant")  # fmt: skip
    html = everywhere(mailer, workspace, report, said)
    assert "fair pay</p>" in html and '<ol start="2"' in html


@pytest.mark.parametrize(
    ("body", "at", "said"),
    [
        ("Our list:\n“- bread\n\n- milk\n- eggs\n", "“- bread", '(a "-" list); remove \'“\''
         ' before "- " to make it that item, or escape it as "\\-"'),
        # "3." would not start a list after "Then:" without the blank line
        ('Then:\n"3. fair pay\n\n4. time off\n', '"3.', '(the list starts at 4); remove \'"\''
         ' before "3." and put a blank line before that line to make it that item, or escape it'
         ' as "3\\."'),
        ('> Our demands:\n> "1. fair pay\n>\n> 2. time off\n', '> "1.', ITEM_1),  # blockquote
        # the first item wrapped over lines: its first line
        ('"1. We want fair pay,\nand we want it now.\n\n2. We want safe sites.\n', '"1.', ITEM_1),
    ],
)  # fmt: skip
def test_which_line_looks_like_the_first_item(
    mailer: Invoke, workspace: Path, body: str, at: str, said: str
) -> None:
    report = write(workspace, body)
    expected = f"warning: {report}:{line_of(report, at)}: {LOOKS} {said} if the paragraph is meant"
    assert warnings(mailer, report, workspace / "out") == [expected]


def test_a_quoted_list_without_blank_lines_is_one_paragraph(
    mailer: Invoke, workspace: Path
) -> None:
    body = 'The strikers wrote:\n\n"1. We want fair pay.\n2. We want safe sites.\n3. A voice."\n'
    report = write(workspace, body)
    line = line_of(report, '"1. We')
    said = (f"{report}:{line}: {RUN} (1., 2., 3.) but are one paragraph,"
            ' because of \'"\' before "1."; remove it and \'"\' at the end of the paragraph to'
            f" make them a list, or {KEEP}")  # fmt: skip
    html = everywhere(mailer, workspace, report, said)
    assert "<ol" not in html and "fair pay.\n2. We want" in html  # run together


@pytest.mark.parametrize(
    ("body", "at", "said"),
    [
        ("“4) a\n5) b\n", "“4)", "(4), 5)) but are one paragraph, because of '“' before \"4)\";"
         " remove it to make them a list"),
        ('Intro:\n"1. a\nwrapped\n2. b\n', '"1.', "(1., 2.) but are one paragraph, because of"
         ' \'"\' before "1."; remove it to make them a list'),
        ("Intro:\n(3. a\n4. b\n", "(3.", "(3., 4.) but are one paragraph, because of '(' before"
         ' "3."; remove it and put a blank line before that line to make them a list'),
        ('"1. a"\n2. b\n', '"1.', "(1., 2.) but are one paragraph, because of '\"' before"
         " \"1.\"; remove it and '\"' at the end of the line to make them a list"),
        ('**"1. a\n2. b\n3. c\n4. d\n5. e"**\n', "**", "(1., 2., ..., 5.) but are one"
         " paragraph, because of '**\"' before \"1.\"; remove it and '\"**' at the end of the"
         " paragraph to make them a list"),
    ],
)  # fmt: skip
def test_numbered_lines_run_together(
    mailer: Invoke, workspace: Path, body: str, at: str, said: str
) -> None:
    report = write(workspace, body)
    expected = f"warning: {report}:{line_of(report, at)}: {RUN} {said}, or {KEEP}"
    assert warnings(mailer, report, workspace / "out") == [expected]


def test_a_quoted_bullet_list_is_split_not_run_together(mailer: Invoke, workspace: Path) -> None:
    # markdown-it: a bullet interrupts a paragraph, so only the first one is left out
    report = write(workspace, '"- bread\n- milk\n- eggs"\n')
    line = line_of(report, '"-')
    said = (f"warning: {report}:{line}: {LOOKS} (a \"-\" list); remove '\"'"
            ' before "- " to make it that item, or escape it as "\\-" if the paragraph is'
            " meant")  # fmt: skip
    assert warnings(mailer, report, workspace / "out") == [said]
    html = (workspace / "out" / "message.html").read_text(encoding="utf-8")
    assert ">milk</li>" in html and "<ul" in html


@pytest.mark.parametrize(
    ("marks", "text", "closing"),
    [
        ('"', '1. We want fair pay."', '"'),
        ("“", "1. We want fair pay.”", "”"),
        ("„", "1. Wir wollen gerechten Lohn.“", "“"),
        ("« ", "1. Un salaire juste. »", "»"),
        ('"', '1. We want fair pay".', '"'),  # the full stop stays
        ('**"', '1. We want fair pay."**', '"**'),
        ("(", "1. We want fair pay.)", ")"),
        ('"', '1. We want "fair" pay."', '"'),  # past the quote inside
        ("'", "1. We don't stop.'", "'"),  # past the apostrophe
    ],
)
def test_a_quote_closed_at_the_end_is_removed_with_the_opening_one(
    mailer: Invoke, workspace: Path, marks: str, text: str, closing: str
) -> None:
    report = write(workspace, f"{marks}{text}\n\n2. We want safe sites.\n")
    said = (f"warning: {report}:{line_of(report, marks)}: {LOOKS} (the list starts at 2);"
            f" remove {marks!r} before \"1.\" and {closing!r} at the end of the paragraph to make"
            ' it that item, or escape it as "1\\." if the paragraph is meant')  # fmt: skip
    assert warnings(mailer, report, workspace / "out") == [said]


@pytest.mark.parametrize(
    ("body", "marks"),
    [
        ('"1. We want "fair" pay.\n\n2. We want safe sites.\n', '"'),  # never closed
        ("'1. We don't stop.\n\n2. We want safe sites.\n", "'"),  # an apostrophe closes none
        ('"- Not now\n\n- Later.\n', '"'),
        ('Intro:\n"1. We want fair pay\n\n2. We want safe sites.\n', '"'),
    ],
)
def test_a_quote_never_closed_is_still_a_lookalike(
    mailer: Invoke, workspace: Path, body: str, marks: str
) -> None:
    report = write(workspace, body)
    [warning] = warnings(mailer, report, workspace / "out")
    assert warning.startswith(f"warning: {report}:{line_of(report, marks)}: {LOOKS}")
    assert f"remove {marks!r} before " in warning and "at the end of the" not in warning


@pytest.mark.parametrize(
    "body",
    [
        '"- Not now," she said.\n\n- Later.\n- Never.\n',  # dialogue: the quote ends mid-line
        '"1. Intro," he began.\n\n2. Then we ate.\n',
        "'1. Don't,' she said.\n\n2. Then we ate.\n",
        "« 1. Intro », dit-il.\n\n2. Puis.\n",
        "„1. Teil“, sagte er.\n\n2. Teil\n",
        "(1. see below) for more.\n\n2. Below.\n",
        'Intro:\n"1. Intro," he began.\n\n2. Then we ate.\n',
        '"1. Intro," he began.\n2. Then we ate.\n3. Then we slept.\n',
        '"1. a  \n2. b\n',  # a hard line break: the lines stay apart
        '"1. a\n3. b\n',  # not consecutive
        '"4. a\n5) b\n',  # another delimiter
        '"1. We want fair pay.\nAnd more.\n',  # one number
        "1. a\n2. b\n",  # a list
        '"1.5 million\n2.5 million\n',  # numbers, not items
        "Intro:\n2. a\n3. b\n",  # no mark in front
    ],
)
def test_no_warning_for_prose_or_lines_kept_apart(
    mailer: Invoke, workspace: Path, body: str
) -> None:
    assert warnings(mailer, write(workspace, body), workspace / "out") == []


@pytest.mark.parametrize(
    ("body", "html"),
    [
        ("Then:\n\n3. fair pay\n\n4. time off\n", '<ol start="3"'),  # a blank line before "3."
        ('"1. a\\\n2. b\\\n3. c"\n', "1. a<br>\n2. b<br>\n3. c"),  # the lines kept apart
    ],
)
def test_what_the_warnings_advise_is_no_warning(
    mailer: Invoke, workspace: Path, body: str, html: str
) -> None:
    assert warnings(mailer, write(workspace, body), workspace / "out") == []
    assert html in (workspace / "out" / "message.html").read_text(encoding="utf-8")

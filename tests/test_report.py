"""Reading a Markdown report: front matter, defaults, and errors that name file and line."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.compose.report import load_report, one_line
from mailer.errors import FileInputError

EXAMPLE = Path(__file__).parent.parent / "examples" / "report.md"


def write(tmp_path: Path, text: str, name: str = "report.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_report_front_matter() -> None:
    report = load_report(EXAMPLE)
    assert report.subject == "Lower Vale Water Survey: Autumn 2026 Quarterly Report"
    assert report.preheader.startswith("Results from forty sampling sites")
    assert report.author == "Zoë Brontë"
    assert report.date == "2026-11-20"  # unquoted YAML date -> ISO text
    assert report.lang == "en"
    assert report.meta["date"] == "2026-11-20"


def test_body_line_offset_matches_the_file() -> None:
    report = load_report(EXAMPLE)
    file_lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    body_lines = report.body_source.split("\n")
    for number, line in enumerate(body_lines, start=1):
        if line.strip():
            assert file_lines[report.body_line_offset + number - 1] == line
    assert report.padded_body.split("\n")[10] == file_lines[10]


def test_subject_defaults_to_first_heading_and_lang_to_en(tmp_path: Path) -> None:
    path = write(
        tmp_path, "---\nauthor: Ann\n---\n\n```\n# not this\n```\n\n#  The  real  title #\n"
    )
    report = load_report(path)
    assert report.subject == "The real title"
    assert report.lang == "en"
    assert report.author == "Ann"


def test_no_front_matter_at_all(tmp_path: Path) -> None:
    report = load_report(write(tmp_path, "# Hello\n\nBody.\n"))
    assert report.subject == "Hello"
    assert report.body_line_offset == 0
    assert report.meta == {}


def test_other_keys_reach_meta(tmp_path: Path) -> None:
    path = write(tmp_path, "---\nsubject: S\nissue: 12\ntags: [a, b]\nlang: de-CH\n---\nx\n")
    report = load_report(path)
    assert report.meta["issue"] == 12
    assert report.meta["tags"] == ["a", "b"]
    assert report.lang == "de-CH"


def test_crlf_and_bom_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "r.md"
    path.write_bytes("\ufeff---\r\nsubject: Hi\r\n---\r\nBody\r\n".encode())
    report = load_report(path)
    assert report.subject == "Hi"
    assert report.body_source.strip() == "Body"


def test_yaml_error_names_the_file_line(tmp_path: Path) -> None:
    path = write(tmp_path, "---\nsubject: fine\nauthor: [unclosed\nlang: en\n---\nBody\n")
    with pytest.raises(FileInputError) as caught:
        load_report(path)
    assert caught.value.path == path
    assert caught.value.line in (3, 4)
    assert str(caught.value).startswith(f"{path}:")


def test_unclosed_front_matter(tmp_path: Path) -> None:
    with pytest.raises(FileInputError, match="never closed"):
        load_report(write(tmp_path, "---\nsubject: x\n\nBody\n"))


def test_front_matter_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(FileInputError, match="key: value"):
        load_report(write(tmp_path, "---\n- a\n- b\n---\n# T\n"))


def test_no_subject_anywhere(tmp_path: Path) -> None:
    with pytest.raises(FileInputError, match="no subject"):
        load_report(write(tmp_path, "---\nauthor: A\n---\nJust text.\n"))


def test_bad_lang(tmp_path: Path) -> None:
    with pytest.raises(FileInputError, match="lang"):
        load_report(write(tmp_path, '---\nsubject: S\nlang: "en\\" onload=x"\n---\nx\n'))


def test_not_utf8_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "latin.md"
    path.write_bytes("# Caf\xe9\n".encode("latin-1"))
    with pytest.raises(FileInputError, match="not UTF-8"):
        load_report(path)
    with pytest.raises(FileInputError):
        load_report(tmp_path / "missing.md")


@settings(max_examples=60, deadline=None)
@given(subject=st.text(min_size=1, max_size=80).filter(lambda s: one_line(s)))
def test_front_matter_subject_round_trips(
    tmp_path_factory: pytest.TempPathFactory, subject: str
) -> None:
    folder = tmp_path_factory.mktemp("fm")
    front = yaml.safe_dump({"subject": subject}, allow_unicode=True)
    path = write(folder, f"---\n{front}---\nBody\n")
    report = load_report(path)
    assert report.subject == one_line(subject)  # whitespace collapsed, controls dropped
    assert not any(unicodedata.category(c) == "Cc" for c in report.subject)
    assert "\n" not in report.subject and "\r" not in report.subject


def test_front_matter_aliases_are_refused_on_their_line(tmp_path: Path) -> None:
    laughs = "a: &a [lol, lol, lol]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"
    path = write(tmp_path, f"---\nsubject: S\n{laughs}---\nBody\n")
    with pytest.raises(FileInputError) as caught:
        load_report(path)
    assert (caught.value.line, caught.value.reason) == (
        4, "front matter may not use YAML aliases (*name)")  # fmt: skip
    merged = write(tmp_path, "---\nsubject: S\nbase: &base {x: 1}\nmore:\n  <<: *base\n---\nB\n")
    with pytest.raises(FileInputError, match="aliases"):
        load_report(merged)
    anchored = load_report(write(tmp_path, "---\nsubject: S\nlist: &one [1, 2]\n---\nB\n"))
    assert anchored.meta["list"] == [1, 2]  # an anchor that nothing refers to is harmless


def test_front_matter_nesting_and_size_are_bounded(tmp_path: Path) -> None:
    def nested(levels: int) -> Path:
        value = "[" * levels + "1" + "]" * levels
        return write(tmp_path, f"---\nsubject: S\nx: {value}\n---\nB\n")

    assert load_report(nested(31)).meta["x"] is not None  # the mapping is the 32nd level
    with pytest.raises(FileInputError, match="nested over 32 levels") as caught:
        load_report(nested(32))
    assert caught.value.line == 3
    fits = "subject: S\nnote: " + "x" * (64 * 1024 - 30) + "\n"
    assert load_report(write(tmp_path, f"---\n{fits}---\nB\n")).subject == "S"
    with pytest.raises(FileInputError, match="longer than 64 KiB") as caught:
        load_report(write(tmp_path, f"---\n{fits}{'y' * 40}: z\n---\nB\n"))
    assert caught.value.line == 1


@pytest.mark.parametrize("day", ["2026-02-30", "2026-13-01"])
def test_an_impossible_date_is_one_line_naming_its_line(tmp_path: Path, day: str) -> None:
    path = write(tmp_path, f"---\nsubject: S\nauthor: A\ndate: {day}\n---\n# T\n")
    with pytest.raises(FileInputError, match="impossible date") as caught:
        load_report(path)
    assert caught.value.line == 4

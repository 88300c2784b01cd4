"""CSV rows that are not what they seem: unterminated quotes, overlong lines, control characters,
spreadsheet formulas; each bad row reported with its line, every good one imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Invoke
from tests.test_import import summary_line


@pytest.fixture
def weekly(mailer: Invoke) -> str:
    assert mailer("lists", "create", "weekly").exit_code == 0
    return "weekly"


def members(mailer: Invoke, slug: str = "weekly") -> dict[str, dict[str, Any]]:
    listed = json.loads(mailer("subscribers", "ls", slug, "--json").stdout)
    return {m["email"]: m for m in listed}


def one_clean_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_an_unterminated_quote_is_a_bad_row_and_the_rows_after_it_import(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = workspace / "quote.csv"
    path.write_text(
        "email,name,city\n"
        'a@example.org,"Ada, Countess",London\n'  # a legit quoted comma
        'b@example.org,"Bob,Paris\n'  # the quote never ends
        "c@example.org,Carl,Rome\n"
        'd@example.org,"Dan ""the man""",Oslo\n'
        'e@example.org,"Eve"x,Bern\n'  # text after a closing quote
        "f@example.org,Fay,Nice\n",
        encoding="utf-8",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    problems = result.stderr.strip().splitlines()
    assert problems == [
        f"{path}:3: unterminated quote: a quoted field must end on the line it starts on:"
        " 'b@example.org,\"Bob,Paris'",
        f"{path}:6: bad quoting (',' expected after '\"'): 'e@example.org,\"Eve\"x,Bern'",
    ]
    assert summary_line(result.stdout)["added"] == 4
    assert summary_line(result.stdout)["invalid"] == 2
    found = members(mailer)
    assert sorted(found) == ["a@example.org", "c@example.org", "d@example.org", "f@example.org"]
    assert found["a@example.org"]["name"] == "Ada, Countess"
    assert found["c@example.org"]["name"] == "Carl"  # not swallowed into Bob's name
    assert found["d@example.org"]["name"] == 'Dan "the man"'


def test_a_line_break_inside_a_quoted_cell_is_reported_not_merged(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = workspace / "multiline.csv"
    path.write_bytes(b'email,name\r\na@example.org,"Ada\r\nLovelace"\r\nb@example.org,Bob\r\n')
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    problems = result.stderr.strip().splitlines()
    assert problems[0].startswith(f"{path}:2: unterminated quote")
    assert problems[1] == f"{path}:3: 1 fields where the header has 2"
    assert list(members(mailer)) == ["b@example.org"]


def test_a_line_over_64_kib_is_a_bad_row(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = workspace / "long.csv"
    long_name = "x" * (64 * 1024)
    path.write_text(
        f"email,name\na@example.org,Ada\nb@example.org,{long_name}\nc@example.org,Cy\n",
        encoding="utf-8",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    assert one_clean_line(result.stderr) == f"{path}:3: line longer than 64 KiB"
    assert sorted(members(mailer)) == ["a@example.org", "c@example.org"]


def test_a_line_of_exactly_64_kib_imports(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = workspace / "edge.csv"
    prefix = "a@example.org,"
    path.write_text(f"email,name\n{prefix}{'y' * (64 * 1024 - len(prefix))}\n", encoding="utf-8")
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.stderr
    assert len(members(mailer)["a@example.org"]["name"]) == 64 * 1024 - len(prefix)


@pytest.mark.parametrize("source", ["/dev/zero", "long header"])
def test_a_header_over_64_kib_is_one_error(
    mailer: Invoke, workspace: Path, weekly: str, source: str
) -> None:
    path = Path(source)
    if source == "long header":
        path = workspace / "wide.csv"
        path.write_text("email," + "c" * (64 * 1024) + "\na@example.org,x\n", encoding="utf-8")
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    line = one_clean_line(result.stderr)
    assert line == f"error: {path}:1: the header is longer than 64 KiB"
    assert members(mailer) == {}


def test_control_characters_are_cleaned_from_names_and_attributes(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = workspace / "controls.csv"
    path.write_bytes(
        b"email,name,ci\x07ty,note\n"
        b"a@example.org,Ada\x00 Love\x1blace\x7f,Lon\tdon,\x01\n"
        b'b@example.org,"\tBob\x0b",Paris,plain\n'
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.stderr
    found = members(mailer)
    assert found["a@example.org"]["name"] == "Ada Lovelace"
    assert found["a@example.org"]["attributes"] == {"city": "Lon don"}  # an empty note is none
    assert found["b@example.org"]["name"] == "Bob"
    assert found["b@example.org"]["attributes"] == {"city": "Paris", "note": "plain"}


def test_an_address_with_a_control_character_is_invalid(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = workspace / "emails.csv"
    path.write_bytes(b'email\na\x00b@example.org\n"c@example.org\t"\nd@example.org\n')
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    problems = result.stderr.strip().splitlines()
    assert problems[0] == (
        f"{path}:2: invalid address: contains a line break or another control character:"
        " 'a\\x00b@example.org'"
    )
    assert problems[1].startswith(f"{path}:3: invalid address: contains a line break")
    assert list(members(mailer)) == ["d@example.org"]


def test_subscribers_add_cleans_name_and_attributes(mailer: Invoke, weekly: str) -> None:
    added = mailer(
        "subscribers", "add", weekly, "a@example.org", "--name", "Ada\r\nBcc: x@evil.example",
        "--attr", "ci\x1bty=Par\x00is", "--attr", "note=one\ttwo",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    member = members(mailer)["a@example.org"]
    assert member["name"] == "Ada Bcc: x@evil.example"
    assert member["attributes"] == {"city": "Paris", "note": "one two"}
    bad = mailer("subscribers", "add", weekly, "b@example.org\n")
    assert bad.exit_code == 1
    assert one_clean_line(bad.stderr).startswith("error: invalid address 'b@example.org\\n'")


def test_export_escapes_formulas_and_import_takes_the_escape_off(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    source = workspace / "formulas.csv"
    source.write_text(
        "email,name,+total\n"
        'a@example.org,"=HYPERLINK(""http://x.example"",""click"")",@SUM(1)\n'
        "b@example.org,'=quoted already,-1\n"
        "c@example.org,'plain quote,'\n",
        encoding="utf-8",
    )
    assert mailer("subscribers", "import", weekly, str(source)).exit_code == 0
    exported = mailer("subscribers", "export", weekly).stdout_bytes
    found = members(mailer)
    [joined] = {m["joined_at"] for m in found.values()}  # one import, one time
    consent = f"confirmed,,,import:formulas.csv,{joined},{joined},".encode()
    assert exported == (
        b"email,name,status,lang,tags,source,joined_at,confirmed_at,ip,'+total\r\n"
        b'a@example.org,"\'=HYPERLINK(""http://x.example"",""click"")",'
        + consent
        + b",'@SUM(1)\r\n"
        b"b@example.org,'=quoted already," + consent + b",'-1\r\n"
        b"c@example.org,'plain quote," + consent + b",'\r\n"
    )
    assert found["a@example.org"]["attributes"] == {"+total": "@SUM(1)"}
    assert found["b@example.org"]["name"] == "=quoted already"  # the escape was taken off
    assert found["c@example.org"]["name"] == "'plain quote"
    assert found["c@example.org"]["attributes"] == {"+total": "'"}
    again = workspace / "again.csv"
    again.write_bytes(exported)
    mailer("lists", "create", "copy")
    assert mailer("subscribers", "import", "copy", str(again)).exit_code == 0
    copied = members(mailer, "copy")  # the same readers; only the last change is this import
    assert {e: {**m, "changed_at": ""} for e, m in copied.items()} == {
        e: {**m, "changed_at": ""} for e, m in found.items()
    }
    assert mailer("subscribers", "export", "copy").stdout_bytes == exported

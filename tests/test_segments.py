"""Segments (`--where`): each operator picks exactly the right readers from a real database,
values are bound, and mistakes are one line that points at the column or names the fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.audience.members import KEYS
from mailer.audience.segments import SegmentError, compile_segment
from mailer.db.database import Database
from mailer.errors import InputError
from tests.conftest import store

# email, name, attributes, lang, membership status, joined_at, confirmed_at, source, tags
READERS = [
    ("ada@example.org", "Ada Lovelace", {"city": "Paris", "age": "36", "First Name": "Ada"},
     "en", "confirmed", "2024-06-01T10:00:00+00:00", "2024-06-01T10:05:00+00:00", "form",
     ["steward", "donor"]),
    ("zoe@haworth.example", "Zoë Brontë", {"city": "Haworth", "age": "9", "First Name": "Zoë"},
     "fr", "confirmed", "2025-01-01T00:00:00+00:00", "2025-01-01T23:59:59+00:00",
     "import:mailchimp.csv", ["steward"]),
    ("jose@sevilla.example", "José Álvarez", {"city": "Sevilla", "age": "120", "role": "editor"},
     "es", "unsubscribed", "2024-12-31T23:59:59+00:00", "2024-12-31T12:00:00+00:00", "cli",
     ["lapsed"]),
    ("li@example.org", "Li Wei", {"age": "unknown"},
     "", "unconfirmed", "2025-03-15T08:00:00+00:00", "", "api", []),
]  # fmt: skip
EVERYONE = {"ada", "zoe", "jose", "li"}
KNOWN = (
    "email, domain, name, lang, tag, status, source, subscribed, subscribed_before,"
    " subscribed_after, joined, confirmed, confirmed_before, confirmed_after, changed,"
    " changed_before, changed_after"
)


def add_list(database: Database, slug: str) -> int:
    database.execute(
        "INSERT INTO lists (slug, name, opt_in, created_at) VALUES (?, ?, 'single', ?)",
        (slug, slug.title(), "2024-01-01T00:00:00+00:00"),
    )
    row = database.query_one("SELECT id FROM lists WHERE slug = ?", (slug,))
    assert row is not None
    return int(row[0])


def add_reader(
    database: Database,
    list_id: int,
    email: str,
    name: str,
    attributes: dict[str, str],
    lang: str,
    status: str,
    joined: str,
    confirmed: str,
    source: str,
    tags: list[str],
) -> None:
    with database.transaction() as db:
        [(sid,)] = db.execute(
            "INSERT INTO subscribers (email, name, attributes, lang, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (email, name, json.dumps(attributes), lang, joined, joined),
        ).fetchall()
        db.execute(
            "INSERT INTO memberships (list_id, subscriber_id, status, updated_at, joined_at,"
            " confirmed_at, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (list_id, sid, status, joined, joined, confirmed, source),
        )
        if tags:
            db.executemany(
                "INSERT INTO tags (subscriber_id, tag) VALUES (?, ?)", [(sid, tag) for tag in tags]
            )


@pytest.fixture
def database(engine: str, tmp_path: Path) -> Iterator[Database]:
    """The readers above on `weekly`, and one on another list, on each engine in turn."""
    with store(tmp_path) as database:
        weekly = add_list(database, "weekly")
        for reader in READERS:
            add_reader(database, weekly, *reader)
        # On another list only: a segment of `weekly` never picks her, whatever she matches.
        other = add_list(database, "other")
        add_reader(database, other, "eve@example.org", "Eve", {"city": "Paris"}, "en",
                   "confirmed", "2024-01-01T00:00:00+00:00", "", "form", ["steward"])  # fmt: skip
        yield database


def attribute_keys(database: Database) -> list[str]:
    rows = database.query(f"SELECT DISTINCT j.key FROM subscribers s, {KEYS[database.engine]}")
    return sorted(row[0] for row in rows)


def pick(database: Database, text: str) -> set[str]:
    """The readers of `weekly` (by the part of their address before the @) that match."""
    segment = compile_segment(text, attribute_keys(database), database.engine)
    rows = database.query(
        "SELECT s.email FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
        f" WHERE m.list_id = (SELECT id FROM lists WHERE slug = 'weekly') AND ({segment.sql})",
        segment.params,
    )
    return {row[0].partition("@")[0] for row in rows}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("city = 'Paris'", {"ada"}),
        ('city == "Paris"', {"ada"}),
        ("city != 'Paris'", {"zoe", "jose", "li"}),  # li has no city: not Paris
        ("city <> 'Paris'", {"zoe", "jose", "li"}),
        ("city = 'paris'", set()),  # values compare exactly
        ("city < 'M'", {"zoe"}),
        ("city >= 'Paris'", {"ada", "jose"}),
        ("city in ('Paris', 'Sevilla', 'Oslo')", {"ada", "jose"}),
        ("city not in ('Paris', 'Sevilla')", {"zoe", "li"}),
        ("city contains 'AWOR'", {"zoe"}),
        ("not city contains 'a'", {"li"}),
        ("role = 'editor'", {"jose"}),
        ("attr('First Name') = 'Zoë'", {"zoe"}),
        ('attr("First Name") contains "d"', {"ada"}),
    ],
)
def test_text_attributes(database: Database, text: str, expected: set[str]) -> None:
    assert pick(database, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age > 10", {"ada", "jose"}),  # as text, '9' > '10' and 'unknown' > '10'
        ("age = 9", {"zoe"}),
        ("age = 9.0", {"zoe"}),
        ("age != 9", {"ada", "jose", "li"}),
        ("age <= 36", {"ada", "zoe"}),
        ("age < 1000 and age >= +36", {"ada", "jose"}),
        ("age in (9, 120)", {"zoe", "jose"}),
        ("age not in (9, 120)", {"ada", "li"}),
        ("age in (9, 'unknown')", {"zoe", "li"}),
        ("age = '9'", {"zoe"}),
        ("age < '5'", {"ada", "jose"}),  # quoted: text order, '36' < '5'
        ("age < 5", set()),
    ],
)
def test_numbers_compare_numerically(database: Database, text: str, expected: set[str]) -> None:
    assert pick(database, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email = 'ADA@Example.org'", {"ada"}),
        ("email contains 'example.org'", {"ada", "li"}),
        ("domain = 'example.org'", {"ada", "li"}),
        ("domain in ('Haworth.Example', 'sevilla.example')", {"zoe", "jose"}),
        ("domain != 'example.org'", {"zoe", "jose"}),
        ("name = 'Li Wei'", {"li"}),
        ("name contains 'LOVE'", {"ada"}),
        ("lang = 'FR'", {"zoe"}),
        ("lang in ('en', 'es')", {"ada", "jose"}),
        ("lang = ''", {"li"}),
        ("source = 'form'", {"ada"}),
        ("source contains 'import:'", {"zoe"}),
        ("status = 'unsubscribed'", {"jose"}),
        ("status != 'confirmed'", {"jose", "li"}),
        ("status in ('confirmed', 'Unconfirmed')", {"ada", "zoe", "li"}),
        ("status not in ('confirmed')", {"jose", "li"}),
    ],
)
def test_built_in_fields(database: Database, text: str, expected: set[str]) -> None:
    assert pick(database, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tag = 'steward'", {"ada", "zoe"}),
        ("tag = 'Steward'", set()),  # tags compare exactly, as stored
        ("tag != 'steward'", {"jose", "li"}),
        ("not tag = 'steward'", {"jose", "li"}),
        ("tag in ('donor', 'lapsed')", {"ada", "jose"}),
        ("tag not in ('steward', 'lapsed')", {"li"}),
        ("tag contains 'STEW'", {"ada", "zoe"}),
        ("tag = 'steward' and tag = 'donor'", {"ada"}),
    ],
)
def test_tags(database: Database, text: str, expected: set[str]) -> None:
    assert pick(database, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Joined: ada 2024-06-01, jose 2024-12-31 23:59:59, zoe 2025-01-01 00:00:00, li 2025-03-15.
        ("subscribed_before = 2025-01-01", {"ada", "jose"}),
        ("subscribed_before = '2025-01-01'", {"ada", "jose"}),
        ("subscribed_before != 2025-01-01", {"zoe", "li"}),
        ("subscribed_after = 2025-01-01", {"li"}),  # after the whole day
        ("subscribed_after = 2024-12-31", {"zoe", "li"}),
        ("subscribed = 2025-01-01", {"zoe"}),
        ("subscribed != 2025-01-01", {"ada", "jose", "li"}),
        ("subscribed < 2025-01-01", {"ada", "jose"}),
        ("joined <= 2025-01-01", {"ada", "jose", "zoe"}),
        ("joined > 2024-12-31", {"zoe", "li"}),
        ("joined >= 2025-01-01", {"zoe", "li"}),
        ("subscribed in (2024-06-01, 2025-03-15)", {"ada", "li"}),
        ("subscribed not in (2024-06-01, 2025-03-15)", {"zoe", "jose"}),
        # Confirmed: jose 2024-12-31, ada 2024-06-01, zoe 2025-01-01 23:59:59; li never.
        ("confirmed_before = 2025-06-01", {"ada", "zoe", "jose"}),
        ("not confirmed_before = 2025-06-01", {"li"}),
        ("confirmed_after = 2024-12-31", {"zoe"}),
        ("confirmed = 2025-01-01", {"zoe"}),
        ("confirmed >= 2000-01-01", {"ada", "zoe", "jose"}),
        ("confirmed < 9999-12-31", {"ada", "zoe", "jose"}),
        ("confirmed <= 9999-12-31", {"ada", "zoe", "jose"}),
        # The last change (here when each joined), of the membership or of the reader.
        ("changed_before = 2025-01-01", {"ada", "jose"}),
        ("changed_after = 2024-12-31", {"zoe", "li"}),
        ("changed = 2024-06-01", {"ada"}),
    ],
)
def test_dates_are_utc_days(database: Database, text: str, expected: set[str]) -> None:
    assert pick(database, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # `and` binds tighter than `or`: Haworth, or (Paris and lapsed).
        ("city = 'Haworth' or city = 'Paris' and tag = 'lapsed'", {"zoe"}),
        ("(city = 'Haworth' or city = 'Paris') and tag = 'donor'", {"ada"}),
        ("tag = 'lapsed' or city = 'Paris' and tag = 'donor'", {"ada", "jose"}),
        # `not` binds tighter than `and`.
        ("not city = 'Paris' and tag = 'steward'", {"zoe"}),
        ("not (city = 'Paris' and tag = 'steward')", {"zoe", "jose", "li"}),
        ("NOT city = 'Paris' AND Tag = 'steward' Or lang = 'es'", {"zoe", "jose"}),
        ("not not city = 'Paris'", {"ada"}),
        ("((((city = 'Paris'))))", {"ada"}),
    ],
)
def test_precedence(database: Database, text: str, expected: set[str]) -> None:
    assert pick(database, text) == expected


def test_values_are_bound_never_written_into_the_sql(database: Database) -> None:
    tricky = {"city": "x' OR 1=1 --", "a') OR 1=1 --": "y"}
    add_reader(database, 1, "mal@example.net", "Mal", tricky, "", "confirmed",
               "2025-01-01T00:00:00+00:00", "", "form", [])  # fmt: skip
    assert pick(database, "city = 'x'' OR 1=1 --'") == {"mal"}
    assert pick(database, "city = 'x\\' OR 1=1 --'") == {"mal"}
    assert pick(database, 'city = "x\' OR 1=1 --" or name = "\\" OR 1=1 --"') == {"mal"}
    assert pick(database, "tag in ('x'') OR 1=1 --')") == set()
    assert pick(database, "attr(\"a') OR 1=1 --\") = 'y'") == {"mal"}
    segment = compile_segment("city = 'Paris' and age > 3 and tag in ('a', \"b\")", ["city", "age"])
    assert segment.text == "city = 'Paris' and age > 3 and tag in ('a', \"b\")"
    assert segment.params == ["Paris", 3, "a", "b"]
    assert "Paris" not in segment.sql
    assert segment.sql.count("?") == 4


def test_an_attribute_named_with_a_double_quote_is_refused(database: Database) -> None:
    with pytest.raises(SegmentError, match="its name has a") as caught:
        compile_segment("city = 'x' or attr('say \"hi\"') = 'x'", ["city", 'say "hi"'])
    assert caught.value.column == 15


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("city = and tag = 'x'", 8, "expected a value (a 'quoted' text, a number or a date such"
         " as 2025-01-01) after '=', found 'and' in \"city = and tag = 'x'\""),
        ("city = 'Paris' tag = 'x'", 16,
         "expected 'and', 'or' or the end after 'Paris', found 'tag'"),
        ("(city = 'Paris'", 16, "expected 'and', 'or' or ')' after 'Paris' but the expression"
         " ends"),
        ("city 'Paris'", 6, "expected an operator (=, !=, <, <=, >, >=, in, not in, contains)"
         " after 'city', found 'Paris'"),
        ("city = 'Paris", 8, "a text opened with ' is never closed"),
        ("`First Name` = 'Ada'", 1, "write attr('First Name')"),
        ("city in 'Paris'", 9, "expected '(' and a list of values after 'in'"),
        ("city in ('a' 'b')", 14, "expected ',' or ')'"),
        ("city not 'Paris'", 10, "expected 'in' after 'not'"),
        ("city = 12abc", 8, "expected a value"),
        ("attr(city) = 'x'", 6, "expected an attribute name in quotes"),
        ("city = 'a' and", 15, "expected a field after 'and' but the expression ends"),
        ("", 1, "expected a field but the expression ends"),
        ("subscribed_before = 2025-02-30", 21, "subscribed_before takes a date such as"
         " 2025-01-01, not 2025-02-30"),
        ("subscribed = 'soon'", 14, "subscribed takes a date"),
        ("subscribed_before < 2025-01-01", 19, "subscribed_before takes = or != (write"
         " subscribed < 2025-01-01"),
        ("confirmed_after in (2025-01-01)", 1, "confirmed_after takes = or !="),
        ("joined contains '2025'", 1, "joined takes =, !=, <, <=, >, >=, in or not in, not"
         " contains"),
        ("tag > 'a'", 5, "tag takes =, !=, in, not in or contains, not '>'"),
        ("status = 'bounced'", 10, "status is one of confirmed, unconfirmed, unsubscribed, not"
         " 'bounced'"),
        ("status < 'x'", 8, "status takes =, !=, in or not in, not '<'"),
    ],
)  # fmt: skip
def test_mistakes_point_at_the_column(
    database: Database, text: str, column: int, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        compile_segment(text, attribute_keys(database))
    error = caught.value
    assert isinstance(error, SegmentError)
    assert error.column == column
    assert str(error).startswith(f"--where: column {column}: ")
    assert message in str(error)
    assert "\n" not in str(error)


def test_an_unknown_field_names_the_known_ones(database: Database) -> None:
    with pytest.raises(InputError) as caught:
        compile_segment("tag = 'x' and cty = 'Paris'", attribute_keys(database))
    assert str(caught.value) == (
        f"--where: unknown field 'cty' (known: {KNOWN}, and the list's attributes:"
        " attr('First Name'), age, city, role)"
    )
    assert isinstance(caught.value, SegmentError) and caught.value.column == 15


def test_an_unknown_attribute_in_attr_and_a_list_without_attributes() -> None:
    with pytest.raises(
        SegmentError, match=r"unknown field 'Last Name' \(known: .*attributes: city\)$"
    ):
        compile_segment("attr('Last Name') = 'x'", ["city"])
    with pytest.raises(SegmentError) as caught:
        compile_segment("city = 'Paris'", [])
    assert str(caught.value) == (
        f"--where: unknown field 'city' (known: {KNOWN}; the list's readers have no attributes)"
    )


def test_an_attribute_named_like_a_built_in_is_reached_with_attr(database: Database) -> None:
    add_reader(database, 1, "sam@example.net", "Sam", {"status": "vip", "lang": "x"}, "de",
               "confirmed", "2025-01-01T00:00:00+00:00", "", "form", [])  # fmt: skip
    assert pick(database, "attr('status') = 'vip'") == {"sam"}
    assert pick(database, "status = 'confirmed' and lang = 'de'") == {"sam"}
    with pytest.raises(SegmentError, match=r"attr\('lang'\), role, attr\('status'\)"):
        compile_segment("stats = 'x'", attribute_keys(database))


def test_nesting_has_a_limit() -> None:
    with pytest.raises(SegmentError, match="nested more than 40 levels deep"):
        compile_segment("not " * 60 + "city = 'x'", ["city"])
    assert compile_segment("not " * 20 + "city = 'x'", ["city"]).sql.count("NOT") == 20


@pytest.mark.parametrize("value", ["2025-01-01", "1 2", "n/a", "", "12abc", "0x10"])
def test_only_a_number_matches_a_number(database: Database, value: str) -> None:
    with database.transaction() as db:  # every reader has it: none of them is a number
        for sid, attributes in db.execute("SELECT id, attributes FROM subscribers").fetchall():
            since = json.dumps({**json.loads(attributes), "since": value})
            db.execute("UPDATE subscribers SET attributes = ? WHERE id = ?", (since, sid))
    for text in ("since > 2000", "since = 1", "since < 99999", "since >= -5", "since in (1, 2)"):
        assert pick(database, text) == set(), text


def test_too_many_conditions_is_one_clear_line() -> None:
    text = " or ".join(f"city = 'c{i}'" for i in range(501))
    with pytest.raises(SegmentError, match="501 conditions; at most 500"):
        compile_segment(text, ["city"])
    assert compile_segment(" or ".join(["city = 'x'"] * 500), ["city"]).sql

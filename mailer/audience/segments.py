"""Segments: a --where expression compiled to one SQL condition over readers, values bound."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from lark import Token, Tree

from mailer.audience.members import CHANGED
from mailer.audience.segment_grammar import SegmentError, parse, unquote

__all__ = ["BUILT_IN", "Segment", "SegmentError", "compile_segment"]

Value = str | int | float
Fragment = tuple[str, list[Value]]
MAX_DEPTH = 40  # of nested parentheses and `not`s: far past what an editor writes
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
BARE = re.compile(r"[^\W\d][\w.-]*")
KEYWORDS = {"and", "or", "not", "in", "contains", "attr"}
STATUSES = ("confirmed", "unconfirmed", "unsubscribed")
TAKES = {
    "date": "=, !=, <, <=, >, >=, in or not in",
    "status": "=, !=, in or not in",
    "tag": "=, !=, in, not in or contains",
}
# A value that reads as a JSON number (-2.5, 30, 1e3), as an attribute compared numerically
# must be; anything else (a date, "1 2", "n/a") never matches a number.
NUMERIC = {
    "sqlite": "(CASE WHEN json_valid({v}) THEN json_type({v}) IN ('integer', 'real')"
    " AND CAST({v} AS REAL) {op} ? ELSE FALSE END)",
    "postgresql": "(CASE WHEN {v} ~ '^\\s*-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?\\s*$'"
    " THEN CAST({v} AS DOUBLE PRECISION) {op} ? ELSE FALSE END)",
}
# An attribute's value: SQLite's JSON path, PostgreSQL's ->> (a name is quoted as a literal).
ATTRIBUTE = {
    "sqlite": "json_extract(s.attributes, '$.\"{}\"')",
    "postgresql": "(CAST(s.attributes AS jsonb) ->> '{}')",
}
MAX_TERMS = 500  # comparisons in one expression: SQLite's expression tree has a limit


@dataclass(frozen=True)
class Segment:
    """A compiled ``--where``: ``sql`` is a condition over ``s`` (subscribers) and ``m``
    (memberships) to AND into a WHERE clause, with ``params`` bound in order."""

    text: str
    sql: str
    params: list[Value]


@dataclass(frozen=True)
class Field:
    """How one field reads: its kind, its SQL over ``s`` and ``m``, and for the ``_before`` and
    ``_after`` forms of a date the comparison that ``=`` stands for."""

    kind: Literal["text", "tag", "status", "date", "attribute"]
    sql: str = ""
    case: Literal["", "nocase", "lower"] = ""  # compared ignoring case; stored lower-case
    bound: str = ""


BUILT_IN = {
    "email": Field("text", "s.email", case="lower"),
    "domain": Field("text", "substr(s.email, instr(s.email, '@') + 1)", case="lower"),
    "name": Field("text", "s.name"),
    "lang": Field("text", "s.lang", case="nocase"),
    "tag": Field("tag"),
    "status": Field("status", "m.status"),
    "source": Field("text", "m.source"),
    "subscribed": Field("date", "m.joined_at"),
    "subscribed_before": Field("date", "m.joined_at", bound="<"),
    "subscribed_after": Field("date", "m.joined_at", bound=">"),
    "joined": Field("date", "m.joined_at"),
    "confirmed": Field("date", "m.confirmed_at"),
    "confirmed_before": Field("date", "m.confirmed_at", bound="<"),
    "confirmed_after": Field("date", "m.confirmed_at", bound=">"),
    "changed": Field("date", CHANGED),
    "changed_before": Field("date", CHANGED, bound="<"),
    "changed_after": Field("date", CHANGED, bound=">"),
}
ALIASES = {"language": "lang"}  # other names of built-in fields, as the import takes them
# The readers with a tag, as a set the index tags(tag, subscriber_id) builds once.
TAGGED = "s.id IN (SELECT t.subscriber_id FROM tags t WHERE {})"


def compile_segment(text: str, attributes: Collection[str], engine: str = "sqlite") -> Segment:
    """The expression as SQL over ``s`` and ``m`` with its values bound, for the ``engine``'s
    dialect. ``attributes`` are the attribute keys the list's readers have: any other name that
    is not a built-in field is an error naming the known ones, as is a syntax error (with its
    column)."""
    sql, params = _Compiler(text, attributes, engine).node(parse(text), 0)
    return Segment(text, sql, params)


def _known(attributes: Collection[str]) -> str:
    built_in = ", ".join(BUILT_IN)
    shown = [_written(key) for key in sorted(attributes)]
    if not shown:
        return f"{built_in}; the list's readers have no attributes"
    return f"{built_in}, and the list's attributes: {', '.join(shown)}"


def _written(key: str) -> str:
    """How to write an attribute's name in an expression."""
    lower = key.lower()
    plain = BARE.fullmatch(key) and lower not in KEYWORDS and lower not in {*BUILT_IN, *ALIASES}
    return key if plain else "attr('{}')".format(key.replace("\\", "\\\\").replace("'", "\\'"))


def _day_after(day: str) -> str:
    try:
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    except OverflowError:  # 9999-12-31: a bound past every stamp of that day
        return "9999-12-32"


class _Compiler:
    def __init__(self, text: str, attributes: Collection[str], engine: str) -> None:
        self.text, self.attributes, self.engine = text, attributes, engine

    def fail(self, reason: str, token: Token | None) -> SegmentError:
        column = token.column if token is not None else None
        return SegmentError(self.text, f'{reason} in "{self.text}"', column)

    def node(self, tree: Tree[Token], depth: int) -> Fragment:
        if depth > MAX_DEPTH:
            raise SegmentError(self.text, f"nested more than {MAX_DEPTH} levels deep")
        kind, children = tree.data, tree.children
        if depth == 0:
            terms = sum(1 for _ in tree.find_data("field"))
            if terms > MAX_TERMS:
                raise SegmentError(self.text, f"{terms} conditions; at most {MAX_TERMS}")
        if kind in ("disjunction", "conjunction"):
            parts = [self.node(child, depth + 1) for child in children if isinstance(child, Tree)]
            joiner = " OR " if kind == "disjunction" else " AND "
            return joiner.join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]
        if kind == "negate":
            assert isinstance(children[0], Tree)
            sql, params = self.node(children[0], depth + 1)
            return f"NOT ({sql})", params
        assert isinstance(children[0], Tree)
        name, field, at = self.field(children[0])
        if kind == "compare":
            operator, value = children[1], children[2]
            assert isinstance(operator, Token) and isinstance(value, Token)
            op = {"==": "=", "<>": "!="}.get(str(operator), str(operator))
            return self.compare(name, field, op, operator, value)
        if kind == "contains":
            assert isinstance(children[2], Token)
            return self.contains(name, field, at, children[2])
        assert isinstance(children[1], Tree)
        values = [v for v in children[1].children if isinstance(v, Token)]
        sql, params = self.within(name, field, at, values)
        return (f"NOT ({sql})" if kind == "outside" else sql), params

    def field(self, tree: Tree[Token]) -> tuple[str, Field, Token]:
        """The field's name, how it reads, and its token (for the column of errors)."""
        first = tree.children[0]
        assert isinstance(first, Token)
        built_in = ALIASES.get(first.lower(), first.lower())
        if first.type == "NAME" and built_in in BUILT_IN:
            return built_in, BUILT_IN[built_in], first
        key = tree.children[-1]  # the NAME, or attr('…')'s STRING
        assert isinstance(key, Token)
        name = str(key) if key.type == "NAME" else unquote(key)
        if name not in self.attributes:
            known = _known(self.attributes)
            reason = f"unknown field {name!r} (known: {known})"
            raise SegmentError(self.text, reason, first.column, shown=False)
        if '"' in name:
            raise self.fail(f"the attribute {name!r} cannot be used: its name has a '\"'", first)
        sql = ATTRIBUTE[self.engine].format(name.replace("'", "''"))
        return name, Field("attribute", sql), first

    def compare(self, name: str, field: Field, op: str, at: Token, value: Token) -> Fragment:
        if field.kind == "date":
            day = self.day(name, value)
            if field.bound:
                if op not in ("=", "!="):
                    verb = name.rpartition("_")[0]
                    hint = f"write {verb} {op} {day} to compare the date itself"
                    raise self.fail(f"{name} takes = or != ({hint})", at)
                sql, params = self.dated(field.sql, field.bound, day)
                return (f"NOT ({sql})" if op == "!=" else sql), params
            return self.dated(field.sql, op, day)
        if field.kind in ("tag", "status") and op not in ("=", "!="):
            raise self.fail(f"{name} takes {TAKES[field.kind]}, not '{op}'", at)
        if field.kind == "tag":
            sql = TAGGED.format("t.tag = ?")
            return (f"NOT ({sql})" if op == "!=" else sql), [self.text_of(value)]
        if field.kind == "status":
            return f"m.status {op} ?", [self.status(value)]
        if field.kind == "attribute":
            if value.type == "NUMBER":
                numeric = NUMERIC[self.engine].format(v=field.sql, op="=" if op == "!=" else op)
                sql = f"COALESCE({numeric}, FALSE)"
                return (f"NOT {sql}" if op == "!=" else sql), [self.number(value)]
            if op == "!=":
                return f"{field.sql} IS NOT ?", [self.text_of(value)]
            return f"COALESCE({field.sql} {op} ?, FALSE)", [self.text_of(value)]
        collate = " COLLATE NOCASE" if field.case == "nocase" else ""
        return f"{field.sql} {op} ?{collate}", [self.text_of(value, field)]

    def within(self, name: str, field: Field, at: Token, values: list[Token]) -> Fragment:
        marks = ", ".join("?" * len(values))
        if field.kind == "date" or (
            field.kind == "attribute" and {v.type for v in values} & {"NUMBER"}
        ):
            if field.bound:
                hint = f"write {name.rpartition('_')[0]} in (…) for whole days"
                raise self.fail(f"{name} takes = or != ({hint})", at)
            parts = [self.compare(name, field, "=", at, value) for value in values]
            sql = " OR ".join(f"({part})" for part, _ in parts)
            return f"({sql})", [p for _, ps in parts for p in ps]
        if field.kind == "status":
            return f"m.status IN ({marks})", [self.status(v) for v in values]
        texts: list[Value] = [self.text_of(v, field) for v in values]
        if field.kind == "tag":
            return TAGGED.format(f"t.tag IN ({marks})"), texts
        if field.kind == "attribute":
            return f"COALESCE({field.sql} IN ({marks}), FALSE)", texts
        collate = " COLLATE NOCASE" if field.case == "nocase" else ""
        return f"{field.sql}{collate} IN ({marks})", texts

    def contains(self, name: str, field: Field, at: Token, value: Token) -> Fragment:
        if field.kind in ("date", "status"):
            raise self.fail(f"{name} takes {TAKES[field.kind]}, not contains", at)
        found = "instr(lower({}), lower(?)) > 0"
        if field.kind == "tag":
            return TAGGED.format(found.format("t.tag")), [self.text_of(value)]
        sql = found.format(field.sql)
        found_sql = f"COALESCE({sql}, FALSE)" if field.kind == "attribute" else sql
        return found_sql, [self.text_of(value)]

    def dated(self, column: str, op: str, day: str) -> Fragment:
        """A stamp compared with a UTC day: ``<`` is before it, ``<=`` up to its end, ``=``
        within it. Stamps are ISO 8601 text, so a day's bounds are its date and the next one."""
        after = _day_after(day)
        if op in ("<", "<="):
            return f"({column} != '' AND {column} < ?)", [day if op == "<" else after]
        if op in (">", ">="):
            return f"{column} >= ?", [after if op == ">" else day]
        within = f"({column} >= ? AND {column} < ?)"
        return (f"NOT {within}" if op == "!=" else within), [day, after]

    def day(self, name: str, value: Token) -> str:
        text = unquote(value) if value.type == "STRING" else str(value)
        try:
            if DAY.fullmatch(text):
                return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        raise self.fail(f"{name} takes a date such as 2025-01-01, not {value}", value)

    def status(self, value: Token) -> str:
        status = self.text_of(value).lower()
        if status not in STATUSES:
            raise self.fail(f"status is one of {', '.join(STATUSES)}, not {value}", value)
        return status

    def text_of(self, value: Token, field: Field | None = None) -> str:
        text = unquote(value) if value.type == "STRING" else str(value)
        return text.lower() if field is not None and field.case == "lower" else text

    def number(self, value: Token) -> Value:
        """A number as the store binds it: a whole one in 64 bits, else a finite real."""
        text = str(value)
        if "." in text and math.isfinite(real := float(text)):
            return real
        if "." not in text and len(text.lstrip("+-")) <= 19 and abs(whole := int(text)) < 2**63:
            return whole  # 19 digits first: int() of thousands of them is refused, and slow
        shown = text if len(text) <= 24 else f"{text[:12]}… ({len(text)} characters)"
        most = 2**63 - 1
        bounds = "at most 308 digits before the point" if "." in text else f"-{most} to {most}"
        raise self.fail(f"the number {shown} is out of range ({bounds})", value)

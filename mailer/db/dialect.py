"""The SQLite SQL the store is written in, translated once per statement for PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# The store's statements are SQLite's; the few idioms PostgreSQL spells otherwise are
# rewritten here, outside quoted text. A list bound as one JSON parameter for
# `IN (SELECT value FROM json_each(?))` becomes an array bound to `= ANY(%s)`.
_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")
_NOT_IN_LIST = re.compile(r"\bNOT\s+IN\s*\(\s*SELECT\s+value\s+FROM\s+json_each\(\?\)\s*\)", re.I)
_LEFT_OVER = re.compile(r"\bjson_each\(|\bOR\s+IGNORE\b", re.I)  # not said in PostgreSQL
_IN_LIST = re.compile(r"\bIN\s*\(\s*SELECT\s+value\s+FROM\s+json_each\(\?\)\s*\)", re.I)
_LIST = re.compile(r"\bSELECT\s+value\s+FROM\s+json_each\(\?\)", re.I)
# An insert that gives the id itself, as SQLite's INTEGER PRIMARY KEY allows: the table's
# identity must then move past it, as SQLite's next rowid does.
_EXPLICIT_ID = re.compile(r"^\s*INSERT\s+(?:OR\s+IGNORE\s+)?INTO\s+(\w+)\s*\(\s*id\s*,", re.I)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_GREATEST = re.compile(r"\bMAX\(([^(),]+),([^(),]+)\)", re.I)
_SIMPLE = [
    (re.compile(r"\bIS\s+NOT\s+\?", re.I), "IS DISTINCT FROM ?"),
    (re.compile(r"\bIS\s+\?", re.I), "IS NOT DISTINCT FROM ?"),
    (re.compile(r"\bjson_group_object\(", re.I), "json_object_agg("),
    (re.compile(r"\bjson_group_array\(", re.I), "json_agg("),
    (re.compile(r"\bCOLLATE\s+NOCASE\b", re.I), 'COLLATE "nocase"'),
    (re.compile(r"\bWITHOUT\s+ROWID\b", re.I), ""),
    (re.compile(r"\binstr\(", re.I), "strpos("),
]
_MARK = re.compile(r"\?(\d*)")


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement in PostgreSQL's form, and how to bind the SQLite-style parameters to it."""

    sql: str
    lists: frozenset[int]  # positions of parameters given as JSON arrays, bound as arrays
    numbered: bool  # ?1 … ?N: bound by name
    gives_id_of: str = ""  # a table whose id this insert gives

    def bind(self, params: Sequence[Any]) -> Sequence[Any] | dict[str, Any]:
        values = [
            _array(value) if index in self.lists else value for index, value in enumerate(params)
        ]
        if self.numbered:
            return {f"p{index}": value for index, value in enumerate(values, start=1)}
        return values


def _array(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else list(value)


@lru_cache(maxsize=2048)
def to_postgres(sql: str) -> Statement:
    """``sql`` (SQLite's dialect, ``?`` or ``?N`` marks) as PostgreSQL reads it through psycopg."""
    parts = _QUOTED.split(sql)
    lists: set[int] = set()
    numbered = plain = False
    marks = 0
    out: list[str] = []
    ignore = bool(_OR_IGNORE.match(sql))
    for index, part in enumerate(parts):
        if index % 2:  # a quoted literal or name: only psycopg's own % needs escaping
            out.append(part.replace("%", "%%"))
            continue
        part = part.replace("%", "%%")
        if index == 0 and ignore:
            part = _OR_IGNORE.sub("INSERT INTO", part, count=1)
        part = _NOT_IN_LIST.sub("<> ALL(?LIST)", part)
        part = _IN_LIST.sub("= ANY(?LIST)", part)
        part = _LIST.sub("SELECT unnest(CAST(?LIST AS text[]))", part)
        part = _GREATEST.sub(r"GREATEST(\1,\2)", part)
        for pattern, replacement in _SIMPLE:
            part = pattern.sub(replacement, part)
        if _LEFT_OVER.search(part):
            raise ValueError(f"no PostgreSQL for this statement's SQLite idiom: {sql}")
        pieces = []
        position = 0
        for found in _MARK.finditer(part):
            pieces.append(part[position : found.start()])
            position = found.end()
            if part.startswith("LIST", found.end()):
                lists.add(int(found.group(1)) - 1 if found.group(1) else marks)
                position += len("LIST")
            if found.group(1):
                numbered = True
                pieces.append(f"%(p{found.group(1)})s")
            else:
                plain = True
                pieces.append("%s")
            marks += 1
        pieces.append(part[position:])
        out.append("".join(pieces))
    if numbered and plain:
        raise ValueError(f"no PostgreSQL for ? and ?N marks in one statement: {sql}")
    text = "".join(out)
    if ignore:
        returning = _RETURNING.search(text)
        at = returning.start() if returning else len(text.rstrip().rstrip(";"))
        text = f"{text[:at].rstrip()} ON CONFLICT DO NOTHING {text[at:]}".rstrip()
    explicit = _EXPLICIT_ID.match(sql)
    return Statement(text, frozenset(lists), numbered, explicit.group(1) if explicit else "")

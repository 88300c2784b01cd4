"""The --where language's LALR grammar (lark) and its parse, whose errors point at a column."""

from __future__ import annotations

from functools import cache

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from mailer.errors import InputError

# Keywords are words (`\b`) of any case and outrank names, so `notes` is a name and `NOT` is not.
GRAMMAR = r"""
?start: disjunction
?disjunction: conjunction (_OR conjunction)*
?conjunction: negation (_AND negation)*
?negation: _NOT negation -> negate
         | "(" disjunction ")"
         | comparison
comparison: field CMP value          -> compare
          | field _IN values         -> within
          | field _NOT _IN values    -> outside
          | field CONTAINS value     -> contains
field: NAME | ATTR "(" STRING ")"
values: "(" value ("," value)* ","? ")"
?value: STRING | NUMBER | DATE

_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
_IN.2: /in\b/i
CONTAINS.2: /contains\b/i
ATTR.2: /attr(?=\s*\()/i
CMP: /<=|>=|!=|<>|==|=|<|>/
STRING: /'(?:[^'\\]|\\.|'')*'/ | /"(?:[^"\\]|\\.|"")*"/
DATE.3: /\d{4}-\d{2}-\d{2}(?![\w:.-])/
NUMBER: /[+-]?\d+(?:\.\d+)?(?![\w.-])/
NAME: /[^\W\d][\w.-]*/
%ignore /\s+/
"""

VALUES = {"STRING", "NUMBER", "DATE"}
OPERATORS = "an operator (=, !=, <, <=, >, >=, in, not in, contains)"
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


class SegmentError(InputError):
    """A --where expression that cannot be read or names what is not there, with the column
    (1-based; one past the end when the expression stops too soon) where it goes wrong."""

    def __init__(
        self, text: str, reason: str, column: int | None = None, *, shown: bool = True
    ) -> None:
        self.text, self.reason, self.column = text, reason, column
        where = f"column {column}: " if column is not None and shown else ""
        super().__init__(f"--where: {where}{reason}")


@cache
def parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False)


def parse(text: str) -> Tree[Token]:
    """The syntax tree of an expression, or a SegmentError naming the column and what was
    expected there."""
    interactive = parser().parse_interactive(text)
    seen: list[Token] = []
    try:
        for token in interactive.iter_parse():
            seen.append(token)
        tree = interactive.feed_eof(seen[-1] if seen else None)  # type: ignore[no-untyped-call]
    except UnexpectedInput as error:
        accepted = set(interactive.accepts())  # type: ignore[no-untyped-call]
        raise _syntax_error(text, error, seen, accepted) from None
    assert isinstance(tree, Tree)
    return tree


def _syntax_error(
    text: str, error: UnexpectedInput, seen: list[Token], accepted: set[str]
) -> SegmentError:
    quoted = f' in "{text}"'
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        column, char = error.column, text[position]
        if char in "'\"":
            return SegmentError(text, f"a text opened with {char} is never closed{quoted}", column)
        if char == "`":
            hint = "write attr('First Name') for an attribute whose name has spaces"
            return SegmentError(text, f"unexpected '`' ({hint}){quoted}", column)
        word = text[position:].split()[0]
        before, ending = (seen[-1] if seen else None), f", found {word!r}"
    else:
        assert isinstance(error, UnexpectedToken)
        at_end = error.token.type == "$END"
        column = len(text) + 1 if at_end else error.column
        earlier = [t for t in seen if at_end or t.start_pos < error.token.start_pos]
        before = earlier[-1] if earlier else None
        ending = " but the expression ends" if at_end else f", found {_shown(error.token)}"
    wanted = _wanted(accepted)
    return SegmentError(text, f"expected {wanted}{_after(before)}{ending}{quoted}", column)


def _wanted(expected: set[str]) -> str:
    """What a parser state accepts, in an editor's words."""
    if expected == {"STRING"}:
        return "an attribute name in quotes, as in attr('First Name')"
    if expected & VALUES:
        return "a value (a 'quoted' text, a number or a date such as 2025-01-01)"
    if "NAME" in expected:
        return "a field"
    if "CMP" in expected:
        return OPERATORS
    if expected == {"_IN"}:
        return "'in'"
    if expected == {"LPAR"}:
        return "'(' and a list of values"
    if "COMMA" in expected:
        return "',' or ')'"
    joiners = ["'and'", "'or'"] + (["')'"] if "RPAR" in expected else [])
    if "$END" in expected:
        joiners.append("the end")
    return ", ".join(joiners[:-1]) + f" or {joiners[-1]}"


def _shown(token: Token) -> str:
    return str(token) if str(token)[:1] in "'\"" else f"'{token}'"


def _after(token: Token | None) -> str:
    return "" if token is None else f" after {_shown(token)}"


def unquote(token: Token) -> str:
    """The text of a STRING token: the quotes off, backslash escapes and doubled quotes read."""
    body, quote = str(token)[1:-1], str(token)[0]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(ESCAPES.get(body[index + 1], body[index + 1]))
            index += 2
        elif char == quote:  # the grammar lets a quote inside only as a doubled pair
            out.append(quote)
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)

"""Personal Jinja spans kept as opaque tokens while shared parts render once; per-reader parts."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import jinja2
from markupsafe import Markup

from mailer.compose.mime import Shared
from mailer.compose.plaintext import WRAP_OPEN, WrapSpec, rewrap
from mailer.compose.relaxed import relaxed_lines
from mailer.compose.templates import check_size, weight
from mailer.errors import FileInputError

PERSONAL_NAMES = frozenset({"subscriber", "links"})
TOKEN = "XQZPH{:04d}QZX"
PLACEHOLDER = re.compile(r"XQZPH(\d{4,})QZX")
SPAN = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}"
    r"""|\{\{(?:[^'"}]|'[^']*'|"[^"]*"|\}(?!\}))*\}\}"""
    r"""|\{%(?:[^'"%]|'[^']*'|"[^"]*"|%(?!\}))*%\}"""
    r"|\{#.*?#\}",
    re.DOTALL,
)
STRINGS = re.compile(r"""'[^']*'|"[^"]*\"""")
NAMES = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OPENERS = {"if", "for", "with", "macro", "call", "filter", "block", "autoescape", "trans", "set"}
SENTINEL = "\x00"
CONTROLS = dict.fromkeys([*range(0, 9), *range(11, 32), 127])
PART_FILE = "<personal part>"


class Lit(str):
    """Text that finalize leaves alone: literals and shared text, never reader data."""

    __slots__ = ()


def finalize(value: Any) -> Any:
    """Drop control characters from every text printed, escaped or not (not from literals);
    refuse a list or dict whose text would be too long."""
    if isinstance(value, str):
        if value.isprintable() or type(value) is Lit:
            return value
        return value.translate(CONTROLS)
    if isinstance(value, list | tuple | dict | set | frozenset):
        check_size("the printed value", weight(value))
    return value


@dataclass(frozen=True)
class Span:
    """A Jinja tag or expression kept for later, with where it was written."""

    source: str
    path: str
    line: int


class Spans:
    """The campaign's registry of protected spans; each has a token of letters and digits."""

    def __init__(self) -> None:
        self.items: list[Span] = []

    def token(self, source: str, path: str, line: int) -> str:
        self.items.append(Span(source, path, line))
        return TOKEN.format(len(self.items) - 1)

    def protect(self, source: str, path: str, first_line: int = 1, every: bool = True) -> str:
        """Replace Jinja spans by tokens: all of them, or only those that touch a reader."""
        if "XQZPH" in source:
            raise FileInputError(path, "contains the reserved word XQZPH", None)
        found = list(SPAN.finditer(source))
        chosen = [True] * len(found) if every else _personal(found)
        out: list[str] = []
        pos, strip_next = 0, False
        for match, protect in zip(found, chosen, strict=True):
            text = match.group()
            if not protect and not (every and text.startswith("{#")):
                continue
            literal = _trimmed(source[pos : match.start()], strip_next, text[2:3] == "-", every)
            out.append(literal)
            newlines = text.count("\n")
            if text.startswith("{#"):
                out.append("\n" * newlines)
            else:
                line = first_line + source.count("\n", 0, match.start())
                out.append(self.token(text, path, line))
                out.append("{#" + "\n" * newlines + "#}" if newlines and not every else "")
                out.append("\n" * newlines if every else "")
            strip_next, pos = text[-3:-2] == "-", match.end()
        out.append(_trimmed(source[pos:], strip_next, False, every))
        return "".join(out)


def _trimmed(literal: str, left: bool, right: bool, every: bool) -> str:
    """Text between spans, trimmed as the tags beside it ask; in a template (not ``every``)
    comments hold the line breaks trimmed, so that Jinja still counts the file's lines."""
    head = literal.lstrip() if left else literal
    kept = head.rstrip() if right else head
    if every or literal.count("\n") == kept.count("\n"):
        return kept
    before, after = literal.count("\n") - head.count("\n"), head.count("\n") - kept.count("\n")
    return "{#" + "\n" * before + "#}" + kept + "{#" + "\n" * after + "#}"


def _personal(found: list[re.Match[str]]) -> list[bool]:
    """Mark the spans that read a reader's data, with every tag of a block that does."""
    names = set(PERSONAL_NAMES)
    marks = [False] * len(found)
    stack: list[list[int]] = []
    for index, match in enumerate(found):
        text = match.group()
        if text.startswith("{#"):
            continue
        inner = STRINGS.sub("", text[2:-2].strip("-+ \t\n"))
        words = NAMES.findall(inner)
        marks[index] = any(word in names for word in words)
        keyword = words[0] if words and text.startswith("{%") else ""
        if keyword in OPENERS and not (keyword == "set" and "=" in inner):
            stack.append([index])
        elif keyword in ("elif", "else") and stack:
            stack[-1].append(index)
        elif keyword.startswith("end") and stack:
            block = [*stack.pop(), index]
            if any(marks[i] for i in block):
                for i in block:
                    marks[i] = True
                names.update(_targets(found[block[0]].group()))
        if marks[index] and keyword in ("set", "for", "with"):
            names.update(_targets(text))
    return marks


def _targets(tag: str) -> set[str]:
    """Names a for/set/with tag assigns (so later uses of them are personal too)."""
    words = NAMES.findall(STRINGS.sub("", tag[2:-2]))
    if not words or words[0] not in ("for", "set", "with"):
        return set()
    head = tag.split(" in ", 1)[0] if words[0] == "for" else tag.split("=", 1)[0]
    return set(NAMES.findall(head)) - {"for", "set", "with"}


class Part:
    """One MIME part as shared, pre-encoded chunks and a small template for the personal lines."""

    def __init__(
        self, output: str, spans: Spans, env: jinja2.Environment, specs: list[WrapSpec], name: str
    ) -> None:
        self.name = name  # the global holding this part's literals: "_html" or "_text"
        output = output.replace(SENTINEL, "\ufffd")
        output = output if output.endswith("\n") else output + "\n"
        html = bool(env.autoescape)
        source: list[str] = []
        literals: list[str] = []
        self.statics: list[str] = []
        self.origins: list[tuple[int, Span]] = []
        self.specs = specs
        run: list[str] = []
        line = 1
        for text in (piece + "\n" for piece in output.split("\n")[:-1]):
            if PLACEHOLDER.search(text) is None:
                run.append(text)
                continue
            if run:
                self.statics.append("".join(run))
                source.append(f"{SENTINEL}{len(self.statics) - 1}{SENTINEL}")
                run = []
            pos, after = 0, ""
            for found in [*PLACEHOLDER.finditer(text), None]:
                end = len(text) if found is None else found.start()
                span = None if found is None else spans.items[int(found.group(1))]
                literal = text[pos:end]
                if literal and _plain_data(literal, after, span.source if span else ""):
                    source.append(literal)  # template data: yielded as a constant
                    line += literal.count("\n")
                elif literal:
                    literals.append(Markup(literal) if html else Lit(literal))
                    source.append(f"{{{{ {self.name}[{len(literals) - 1}] }}}}")
                if span is not None and found is not None:
                    source.append("{#\n#}")
                    line += 1
                    self.origins.append((line, span))
                    source.append(span.source.replace(SENTINEL, "\ufffd"))
                    line += span.source.count("\n")
                    pos, after = found.end(), span.source
        if run:
            self.statics.append("".join(run))
            source.append(f"{SENTINEL}{len(self.statics) - 1}{SENTINEL}")
        self.encoded = [Shared(qp(text)) for text in self.statics]
        self.canonical = [relaxed_lines(chunk) for chunk in self.encoded]  # each ends in CRLF
        # Each personal piece's last text and encoding, by its place: a piece that reads the
        # reader only in a condition (the preheader, shown unless on the web) is the same for
        # every reader, and is encoded once.
        self.recent: dict[int, tuple[str, bytes, bytes | None]] = {}
        try:
            code = env.compile("".join(source), PART_FILE, PART_FILE)
        except jinja2.TemplateSyntaxError as error:
            raise self.error(error, error.lineno) from None
        self.env = env
        self.literals = literals
        self.template = env.template_class.from_code(env, code, env.make_globals(None))
        self.render_func = self.template.root_render_func

    def error(self, error: Exception, line: int | None, who: str = "") -> FileInputError:
        """Name the file and line of the span behind ``line`` of the part template."""
        message = getattr(error, "message", None) or str(error)
        message = " ".join(message.split())
        suffix = f" (for {who})" if who else ""
        if line is None or not self.origins:
            return FileInputError("template", f"{message}{suffix}")
        start, span = next(
            ((at, span) for at, span in reversed(self.origins) if at <= line), self.origins[0]
        )
        return FileInputError(span.path, f"{message}{suffix}", span.line + max(0, line - start))

    def run(self, context: dict[str, Any], who: str = "") -> list[str]:
        """Render the personal template; raise FileInputError naming the span's file and line.

        ``context`` must hold every global (see ``globals``): it is used as is, not copied.
        """
        try:
            out = self.env.concat(self.render_func(self.template.new_context(context, True)))
        except Exception:
            try:
                self.env.handle_exception()  # re-raises with the template's line numbers
            except Exception as error:  # any failure of the author's expression
                line = traceback_line(error.__traceback__, PART_FILE)
                raise self.error(error, line, who) from None
        return out.split(SENTINEL)

    def globals(self) -> dict[str, Any]:
        """Names this part's template needs besides the caller's variables."""
        return {**self.env.globals, self.name: self.literals}

    def render(self, context: dict[str, Any], who: str = "") -> str:
        """Return the decoded part for one reader."""
        pieces = self.run(context, who)
        for i in range(0, len(pieces), 2):
            pieces[i] = self._wrapped(pieces[i])
        for i in range(1, len(pieces), 2):
            pieces[i] = self.statics[int(pieces[i])]
        return "".join(pieces)

    def _wrapped(self, piece: str) -> str:
        """A reader's piece of text, its wrapped paragraphs wrapped for them."""
        return rewrap(piece, self.specs) if self.specs and WRAP_OPEN in piece else piece

    def chunks(
        self, context: dict[str, Any], who: str = "", canonical: bool = False
    ) -> tuple[list[bytes], list[bytes] | None]:
        """Return the encoded chunks of the part for one reader and, if asked, their DKIM
        relaxed forms (None when a personal chunk does not end a line: relaxed body
        canonicalisation is line-local, so only whole lines can be canonicalised apart)."""
        pieces = self.run(context, who)
        chunks: list[bytes] = []
        relaxed: list[bytes] | None = [] if canonical else None
        encoded, recent = self.encoded, self.recent
        for i, piece in enumerate(pieces):
            if i & 1:
                chunks.append(encoded[int(piece)])
                if relaxed is not None:
                    relaxed.append(self.canonical[int(piece)])
            elif piece:
                known = recent.get(i)
                if known is None or known[0] != piece:  # else the last reader's, as it was
                    known = recent[i] = (piece, qp(self._wrapped(piece)), None)
                elif type(known[1]) is not Shared:  # a second reader's too: likely everyone's
                    known = recent[i] = (piece, Shared(known[1]), known[2])
                chunk = known[1]
                chunks.append(chunk)
                if relaxed is not None and chunk.endswith(b"\n"):
                    lines = known[2]
                    if lines is None:  # its DKIM form, made once too
                        lines = relaxed_lines(chunk)
                        recent[i] = (piece, chunk, lines)
                    relaxed.append(lines)
                else:
                    relaxed = None
        return chunks, relaxed


def _plain_data(literal: str, before: str, after: str) -> bool:
    """Whether ``literal`` can sit in the template as data: no delimiters, no trimming."""
    trimmed = before[-3:-2] == "-" or after[2:3] == "-"
    return "{" not in literal and not trimmed


def qp(text: str) -> bytes:
    """Quoted-printable encode whole lines of text; lines end in CRLF, none over 76 octets."""
    return binascii.b2a_qp(text.encode("utf-8")).replace(b"\n", b"\r\n")


def traceback_line(tb: TracebackType | None, filename: str | set[str]) -> int | None:
    """Return the last line of ``filename`` (a template) in the traceback, if any."""
    names = {filename} if isinstance(filename, str) else filename
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in names:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line

"""Markdown tokens to plain text: wrapped at 72 columns, links as numbered references, notes."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.footnote import footnote_plugin

from mailer.compose import translations
from mailer.compose.html_images import as_text, image_text
from mailer.compose.text_width import SPACES, center, fill_wide, has_wide, ljust, rjust
from mailer.compose.text_width import width as columns
from mailer.compose.translations import N_

WIDTH = 72
# A paragraph holding personal values is wrapped per reader: "\x01{spec}\x02{text}\x03" marks it,
# and "\x04" stands for a hard line break inside it (so the marked region stays one line).
# "\x05" glues a link label to its reference number so that "[3]" never starts a line.
WRAP_OPEN, WRAP_MID, WRAP_CLOSE, HARD_BREAK, GLUE = "\x01", "\x02", "\x03", "\x04", "\x05"
WRAP_REGION = re.compile("\x01(\\d+)=?\x02([^\x03]*)\x03")  # "=": a level-one heading
TAG = re.compile(r"<[^>]*>")


def markdown() -> MarkdownIt:
    """Return the parser: CommonMark, tables, bare-URL autolinks, typographic quotes, [^1]
    footnotes (numbered notes at the end, with links back)."""
    parser = MarkdownIt("commonmark", {"typographer": True, "linkify": True}).enable(
        ["table", "replacements", "smartquotes", "linkify"]
    )
    if parser.linkify is not None:  # link http(s):// URLs and e-mail addresses, not "e.g"
        parser.linkify.set({"fuzzy_link": False})
    parser.use(footnote_plugin)
    parser.add_render_rule("footnote_caption", _caption)
    parser.add_render_rule("table_open", _table_open)
    parser.add_render_rule("table_close", _table_close)
    return parser


def _table_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A table scrolls inside its own box when it is wider than a phone, not the whole page."""
    return '<div class="table-scroll">\n' + self.renderToken(tokens, idx, options, env)


def _table_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return self.renderToken(tokens, idx, options, env) + "</div>\n"


def _caption(
    self: object, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A note's number as readers see it: [1] wherever it is cited (not the plugin's [1:1])."""
    return f"[{tokens[idx].meta['id'] + 1}]"


@dataclass(frozen=True)
class WrapSpec:
    """How to wrap one personal paragraph: prefixes of the first and later lines, underline."""

    first: str
    rest: str
    underline: str = ""


@dataclass
class PlainText:
    """The text rendering of a body: text (maybe with wrap regions) and their specs."""

    text: str
    specs: list[WrapSpec] = field(default_factory=list)


def wrap(text: str, first: str = "", rest: str = "", width: int = WIDTH) -> list[str]:
    """Fill words greedily into lines of ``width`` columns; never break a word (so never a
    URL), but a run of CJK letters between its letters (``text_width.units``)."""
    lines: list[str] = []
    for segment in text.split(HARD_BREAK):
        current, filled = (rest if lines else first), False
        if has_wide(segment):  # measured in columns, breakable between letters
            lines.append(fill_wide(segment, current, rest, width, lines))
            continue
        for word in SPACES.split(segment):
            if not word:
                continue
            if filled and len(current) + 1 + len(word) > width:
                lines.append(current)
                current = rest + word
            else:
                current = f"{current} {word}" if filled else current + word
            filled = True
        lines.append(current if filled else current.rstrip())
    return [line.replace(GLUE, " ") for line in lines]


def wrap_block(text: str, spec: WrapSpec, width: int = WIDTH) -> list[str]:
    """Wrap ``text`` as ``spec`` says, underlining it when the spec asks."""
    lines = wrap(text, spec.first, spec.rest, width)
    if spec.underline:
        longest = max(columns(line) - len(spec.rest) for line in lines)
        lines.append(spec.rest + spec.underline * max(3, min(longest, width - len(spec.rest))))
    return lines


def rewrap(text: str, specs: list[WrapSpec]) -> str:
    """Replace every marked region in ``text`` by its wrapped lines."""
    return WRAP_REGION.sub(
        lambda found: "\n".join(wrap_block(found.group(2), specs[int(found.group(1))])), text
    )


def to_text(
    source: str | Sequence[Token],
    parser: MarkdownIt,
    dynamic: re.Pattern[str] | None,
    lang: str = "",
) -> PlainText:
    """Render Markdown (or its tokens) to text; paragraphs matching ``dynamic`` become wrap
    regions. Footnotes end the text under Notes, then the links under Links, both said in
    ``lang``, as images are."""
    tokens = parser.parse(source) if isinstance(source, str) else source
    renderer = _Renderer(dynamic, lang)
    lines = renderer.blocks(SyntaxTreeNode(tokens).children, "", "")
    if renderer.links:
        lines += ["", *heading(translations.text(lang, N_("Links")), "")]
        lines += [f"[{number}] {url}" for url, number in renderer.links.items()]
    return PlainText("\n".join(lines).strip("\n") + "\n", renderer.specs)


def heading(label: str, rest: str) -> list[str]:
    """A label of the text part's own (Notes, Links), underlined to its length."""
    return [label, rest + "-" * max(3, len(label))]


class _Renderer:
    def __init__(self, dynamic: re.Pattern[str] | None, lang: str = "") -> None:
        self.dynamic, self.lang = dynamic, lang
        self.links: dict[str, int] = {}
        self.specs: list[WrapSpec] = []

    def blocks(
        self, nodes: list[SyntaxTreeNode], first: str, rest: str, tight: bool = False
    ) -> list[str]:
        lines: list[str] = []
        for node in nodes:
            rendered = self.block(node, rest if lines else first, rest)
            if not rendered:
                continue
            if lines and not tight:
                lines.append(rest.rstrip())
            lines += rendered
        return lines

    def block(self, node: SyntaxTreeNode, first: str, rest: str) -> list[str]:
        kind = node.type
        if kind == "paragraph":
            return self.paragraph(self.inline(node.children[0]), first, rest)
        if kind == "heading":
            underline = {"h1": "=", "h2": "-"}.get(node.tag, "")
            return self.paragraph(self.inline(node.children[0]), first, rest, underline)
        if kind == "blockquote":
            return self.blocks(node.children, first + "> ", rest + "> ")
        if kind in ("bullet_list", "ordered_list"):
            return self.list_block(node, first, rest)
        if kind in ("code_block", "fence"):
            code = node.content.rstrip("\n").split("\n")
            return [(first if i == 0 else rest) + "    " + line for i, line in enumerate(code)]
        if kind == "hr":
            return [first + "* * *"]
        if kind == "table":
            return self.table(node, first, rest)
        if kind == "html_block":
            told = as_text(node.content, self.lang)
            text = " ".join(html.unescape(TAG.sub(" ", told)).split())
            return self.paragraph(text, first, rest) if text else []
        if kind == "footnote_block":
            notes = heading(translations.text(self.lang, N_("Notes")), rest)
            return [first + notes[0], notes[1], *self.notes(node, rest)]
        if kind == "footnote_anchor":
            return []
        return self.blocks(node.children, first, rest)

    def notes(self, block: SyntaxTreeNode, rest: str) -> list[str]:
        """Each note as ``[^N] text``, its later lines indented under the text."""
        lines: list[str] = []
        for note in block.children:
            marker = f"[^{note.meta['id'] + 1}] "
            if lines:
                lines.append(rest.rstrip())
            lines += self.blocks(note.children, rest + marker, rest + " " * len(marker))
        return lines

    def paragraph(self, text: str, first: str, rest: str, underline: str = "") -> list[str]:
        spec = WrapSpec(first, rest, underline)
        if self.dynamic is not None and self.dynamic.search(text):
            self.specs.append(spec)
            title = "=" if underline == "=" else ""  # so that the byline finds the title
            return [f"{WRAP_OPEN}{len(self.specs) - 1}{title}{WRAP_MID}{text}{WRAP_CLOSE}"]
        return wrap_block(text, spec)

    def list_block(self, node: SyntaxTreeNode, first: str, rest: str) -> list[str]:
        ordered = node.type == "ordered_list"
        start = int(str(node.attrs.get("start", 1))) if ordered else 1
        count = len(node.children)
        width = len(f"{start + count - 1}. ") if ordered else 2
        tight = any(
            child.type == "paragraph" and child.hidden
            for item in node.children
            for child in item.children
        )
        lines: list[str] = []
        for number, item in enumerate(node.children, start):
            marker = f"{number}. ".ljust(width) if ordered else "- "
            lead = rest if lines else first
            if lines and not tight:
                lines.append(rest.rstrip())
            body = self.blocks(item.children, lead + marker, rest + " " * width, tight)
            lines += body or [(lead + marker).rstrip()]
        return lines

    def table(self, node: SyntaxTreeNode, first: str, rest: str) -> list[str]:
        rows: list[list[str]] = []
        aligns: list[str] = []
        for section in node.children:
            for tr in section.children:
                cells = [
                    " ".join(self.inline(cell.children[0]).split()) if cell.children else ""
                    for cell in tr.children
                ]
                rows.append(cells)
                if not aligns:
                    aligns = [str(cell.attrs.get("style", "")) for cell in tr.children]
        count = max(len(row) for row in rows)
        rows = [row + [""] * (count - len(row)) for row in rows]
        widths = [max(columns(row[i]) for row in rows) for i in range(count)]
        if len(rest) + sum(widths) + 2 * (count - 1) > WIDTH:
            return self.records(rows, first, rest)
        lines: list[str] = []
        for index, row in enumerate(rows):
            cells = [
                rjust(cell, w) if "right" in align else center(cell, w) if "center" in align
                else ljust(cell, w)
                for cell, w, align in zip(row, widths, aligns + [""] * count, strict=False)
            ]  # fmt: skip
            lines.append(((rest if lines else first) + "  ".join(cells)).rstrip())
            if index == 0:
                lines.append(rest + "  ".join("-" * w for w in widths))
        return lines

    def records(self, rows: list[list[str]], first: str, rest: str) -> list[str]:
        header, *body = rows
        lines: list[str] = []
        for row in body:
            if lines:
                lines.append(rest.rstrip())
            for name, value in zip(header, row, strict=False):
                lines += wrap(f"{name}: {value}", rest if lines else first, rest + "    ")
        return lines

    def inline(self, node: SyntaxTreeNode) -> str:
        parts: list[str] = []
        for child in node.children:
            kind = child.type
            if kind in ("text", "code_inline"):
                parts.append(child.content)
            elif kind == "softbreak":
                parts.append(" ")
            elif kind == "hardbreak":
                parts.append(HARD_BREAK)
            elif kind == "link":
                parts.append(self.link(self.inline(child), str(child.attrs.get("href", ""))))
            elif kind == "image":
                parts.append(image_text(" ".join(self.inline(child).split()), self.lang))
            elif kind == "footnote_ref":
                parts.append(f"[^{child.meta['id'] + 1}]")
            elif kind == "html_inline":  # an <img> is told by its alt text, other tags dropped
                parts.append(html.unescape(TAG.sub("", as_text(child.content, self.lang))))
            else:
                parts.append(self.inline(child))
        return "".join(parts)

    def link(self, label: str, href: str) -> str:
        if not href or label in (href, href.removeprefix("mailto:")):
            return label or href
        number = self.links.setdefault(href, len(self.links) + 1)
        return f"{label}{GLUE}[{number}]"

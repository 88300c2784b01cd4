"""The <img> tags of a report's raw HTML: found with their attributes, rewritten, told as text."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from markdown_it.common.utils import escapeHtml

from mailer.compose import translations
from mailer.compose.translations import N_

# An <img> tag; a quoted value may hold ">" (alt="a > b").
IMG = re.compile(r"<img(?=[\s/>])(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)  # what it holds is no tag
ATTRIBUTE = re.compile(
    r"([^\s\"'>/=]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'=<>`]+)))?", re.DOTALL
)


@dataclass(frozen=True)
class Tag:
    """One <img> tag in an HTML string: where it is, and its attributes (values unescaped;
    None for one written without a value)."""

    start: int
    end: int
    text: str
    attributes: Mapping[str, str | None]

    @property
    def src(self) -> str:
        return (self.attributes.get("src") or "").strip()

    @property
    def alt(self) -> str:
        return " ".join((self.attributes.get("alt") or "").split())

    def spans(self) -> Iterator[tuple[str, int, int]]:
        """Each attribute's lower-case name and where it is written in ``text``."""
        body = self.text[4:-1]  # past "<img", before ">"
        for found in ATTRIBUTE.finditer(body):
            yield found.group(1).lower(), found.start() + 4, found.end() + 4


def tags(content: str) -> list[Tag]:
    """Every <img> tag in ``content``, but those inside a comment."""
    found = []
    hidden = [comment.span() for comment in COMMENT.finditer(content)]
    for match in IMG.finditer(content):
        if any(start <= match.start() < end for start, end in hidden):
            continue
        attributes: dict[str, str | None] = {}
        for attribute in ATTRIBUTE.finditer(match.group()[4:-1]):
            name = attribute.group(1).lower()
            values = [v for v in attribute.group(2, 3, 4) if v is not None]
            attributes.setdefault(name, html.unescape(values[0]) if values else None)
        found.append(Tag(match.start(), match.end(), match.group(), attributes))
    return found


def rewrite(tag: Tag, src: str, added: Mapping[str, str]) -> str:
    """``tag`` with ``src`` as its source and each attribute of ``added`` it does not have."""
    text = tag.text
    for name, start, end in tag.spans():
        if name == "src":
            text = f'{text[:start]}src="{escapeHtml(src)}"{text[end:]}'
            break
    extra = "".join(f' {name}="{escapeHtml(value)}"' for name, value in added.items()
                    if name not in tag.attributes)  # fmt: skip
    body = text[:-1].rstrip()
    closed = body.endswith("/")
    return body.removesuffix("/").rstrip() + extra + (" />" if closed else ">")


def as_text(content: str, lang: str = "") -> str:
    """``content`` with each <img> told by its alt text: ``[image: ALT]``, or ``[image]``, in
    ``lang``. The alt text is left escaped, as the HTML around it is."""
    told = {tag.start: tag for tag in tags(content)}
    return IMG.sub(
        lambda found: (
            image_text(escapeHtml(told[found.start()].alt), lang) if found.start() in told else ""
        ),
        content,
    )


def image_text(alt: str, lang: str) -> str:
    """What the text part says of an image: its alt text, in the edition's language."""
    if alt:
        return translations.text(lang, N_("[image: %(alt)s]"), alt=alt)
    return translations.text(lang, N_("[image]"))

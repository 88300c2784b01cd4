"""Where the byline goes: a report's rendered body split just after its title."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

HTML_TITLE_END = re.compile(r"</h1\s*>", re.IGNORECASE)
# The text part's "# title": underlined, or (personal) a wrap region marked "=" (plaintext.py)
TEXT_UNDERLINE = re.compile(r"^(?:[^\n]+\n=+\n|\x01\d+=\x02[^\x03]*\x03\n)", re.MULTILINE)


def split_title(body: Any) -> tuple[Any, Any]:
    """``{% set title, rest = report.html | split_title %}``: (the body up to the end of its
    first level-one heading, the rest); ('', body) when it has none. Both halves keep the type
    of ``body`` (Markup in HTML, the text part's own type in text), so nothing is escaped or
    cleaned twice."""
    text = str(body)
    found = HTML_TITLE_END.search(text) if isinstance(body, Markup) else TEXT_UNDERLINE.search(text)
    if found is None:
        return type(body)(""), body
    return type(body)(text[: found.end()]), type(body)(text[found.end() :])

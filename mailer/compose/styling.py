"""A template's <style> put into style attributes, as mail clients need; @media rules stay."""

from __future__ import annotations

import css_inline

from mailer.errors import FileInputError


def inline_css(html: str, template: str) -> str:
    """``html`` with its CSS inlined; ``template`` names the file in the error."""
    try:
        inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        return str(inliner.inline(html))
    except (css_inline.InlineError, ValueError) as error:
        raise FileInputError(template, f"CSS cannot be inlined: {error}") from None

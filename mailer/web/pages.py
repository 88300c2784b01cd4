"""The readers' pages: templates/web/NAME.html.j2 (a workspace may override them), translated."""

from __future__ import annotations

from typing import Any

import jinja2

from mailer.compose.templates import Loader, sandbox, template_dirs
from mailer.config import Settings
from mailer.errors import FileInputError


class Pages:
    """Renders templates/web/NAME.html.j2 (a workspace may override them file by file)."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        dirs = [str(d) for d in template_dirs(settings.templates_dir)]
        self.env = sandbox(Loader(dirs), html=True)
        self.globals = {"newsletter": settings.newsletter, "prefix": prefix}

    def render(self, name: str, lang: str, /, **context: Any) -> str:
        """The page ``name`` in ``lang``, one of compose.translations.languages()."""
        try:
            template = self.env.get_template(f"web/{name}.html.j2")
        except jinja2.TemplateNotFound:
            raise FileInputError(f"web/{name}.html.j2", "template not found") from None
        except jinja2.TemplateSyntaxError as error:
            where = error.filename or name
            raise FileInputError(where, error.message or "", error.lineno) from None
        return template.render({**self.globals, **context, "lang": lang})

"""What readers see in their language: gettext catalogs (mailer/locale), Jinja's i18n, Babel."""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from babel.core import Locale, UnknownLocaleError, negotiate_locale
from babel.dates import format_date as babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2.runtime import Context

import mailer

SOURCE = "en"  # the language the templates are written in: its catalog is the msgids
DOMAIN = "messages"
MAX_PREFERRED = 20  # languages of an Accept-Language header looked at


def locale_dir() -> Path:
    """The catalogs shipped with mailer: mailer/locale/LANG/LC_MESSAGES/messages.po."""
    return Path(mailer.__file__).parent / "locale"


@functools.cache
def languages() -> tuple[str, ...]:
    """Every language readers' pages and mail can be shown in (BCP 47 tags), sorted."""
    found = {SOURCE}
    root = locale_dir()
    if root.is_dir():
        found |= {d.name.replace("_", "-") for d in root.iterdir() if _po(d.name).is_file()}
    return tuple(sorted(found))


def _po(folder: str) -> Path:
    return locale_dir() / folder / "LC_MESSAGES" / f"{DOMAIN}.po"


def best_language(wanted: Iterable[str], available: Iterable[str] | None = None) -> str | None:
    """The first of ``wanted`` (in order of preference) that one of ``available`` (our
    catalogs by default) serves: the same tag, any case, else its primary subtag (fr-CA: fr)."""
    offered = list(languages() if available is None else available)
    wanted = [tag.replace("_", "-") for tag in wanted if tag and tag != "*"]
    found = negotiate_locale(wanted, offered, sep="-", aliases={})
    if found is None:
        return None
    return next((tag for tag in offered if tag.lower() == found.lower()), None)


def accepted(header: str) -> list[str]:
    """The languages of an Accept-Language header, most wanted first (q=0 left out)."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:MAX_PREFERRED]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.strip() and 0 < quality <= 1:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def page_language(accept_language: str, reader: str = "") -> str:
    """The language of a page: the reader's own when we have it, else the browser's best
    (Accept-Language, through Babel's negotiation), else English."""
    return best_language([reader] if reader else []) or (
        best_language(accepted(accept_language)) or SOURCE
    )


@functools.cache
def translation(lang: str) -> gettext.NullTranslations:
    """The catalog for ``lang`` (or its primary subtag), compiled from its .po file on first
    use; English (the msgids themselves) when there is none."""
    found = best_language([lang]) if lang else None
    if found is None or found == SOURCE:
        return gettext.NullTranslations()
    with _po(found.replace("-", "_")).open("rb") as file:
        catalog = read_po(file, locale=found.replace("-", "_"), domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs where it is translated later, by ``text``."""
    return message


def text(lang: str, message: str, **values: Any) -> str:
    """``message`` in ``lang``, with %(name)s values filled in: for text made outside templates."""
    translated = translation(lang).gettext(message)
    return translated % values if values else translated


def language_of(context: Mapping[str, Any] | Context) -> str:
    """The language a template renders in: its ``lang``, else its report's (newsletters)."""
    lang = context.get("lang")
    if isinstance(lang, str) and lang:
        return lang
    report = context.get("report")
    found = report.get("lang") if isinstance(report, Mapping) else getattr(report, "lang", "")
    return found if isinstance(found, str) else ""


@jinja2.pass_context
def _gettext(context: Context, message: str) -> str:
    return translation(language_of(context)).gettext(message)


@jinja2.pass_context
def _ngettext(context: Context, singular: str, plural: str, number: int) -> str:
    return translation(language_of(context)).ngettext(singular, plural, number)


def babel_locale(lang: str) -> Locale:
    """Babel's locale for a tag, else for its primary subtag, else English."""
    for tag in (lang, lang.split("-")[0]):
        try:
            return Locale.parse(tag.replace("_", "-"), sep="-")
        except (ValueError, TypeError, UnknownLocaleError):
            continue
    return Locale.parse(SOURCE)


@jinja2.pass_context
def format_date(context: Context, value: Any, lang: str | None = None) -> str:
    """``{{ report.date | format_date }}``: an ISO date (or date and time) written out in the
    template's language, as Babel's long format does (20 novembre 2026); other text as is."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value).strip()[:10])
        except ValueError:
            return str(value)
    where = babel_locale(lang or language_of(context) or SOURCE)
    return str(babel_format_date(value, format="long", locale=where))


def language_name(tag: str) -> str:
    """``{{ 'fr' | language_name }}``: a language's name in itself (Français, Deutsch)."""
    name = babel_locale(tag).get_display_name() or tag
    return name[:1].upper() + name[1:]


def direction(tag: str) -> str:
    """``{{ report.lang | direction }}``: ltr, or rtl for a language written right to left."""
    return "rtl" if babel_locale(tag).character_order == "right-to-left" else "ltr"


def install(environment: jinja2.Environment) -> None:
    """Give a sandbox ``_()``, ``{% trans %}`` and the Babel filters, in the language of what
    it renders (see ``language_of``). The environment must have jinja2.ext.i18n."""
    environment.policies["ext.i18n.trimmed"] = True
    install_callables = getattr(environment, "install_gettext_callables")  # noqa: B009
    install_callables(_gettext, _ngettext, newstyle=True)
    environment.filters["format_date"] = format_date
    environment.filters["language_name"] = language_name
    environment.filters["direction"] = direction

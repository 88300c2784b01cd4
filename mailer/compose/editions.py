"""One issue in several languages (issue.md, issue.fr.md) as one campaign; each reader's edition."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from babel.core import Locale, UnknownLocaleError

from mailer.compose.assets import inspect_report
from mailer.compose.compiled import CompiledCampaign, compile_campaign
from mailer.compose.notices import Notice
from mailer.compose.report import LANG, Report, front_matter_line, parse_report, read_source
from mailer.compose.report_files import ReportFiles
from mailer.config import Settings
from mailer.errors import FileInputError, InputError
from mailer.models import MailingList, Member, Reader

# Front matter an edition takes from the default when it gives none (attachments: the same
# files, beside the report, as an edition sits beside it).
INHERITED = ("author", "date", "attachments")


@dataclass(frozen=True)
class Edition:
    """One language's report and the text it was read from (a campaign stores both)."""

    lang: str
    report: Report
    source: str


def primary(tag: str) -> str:
    """The primary language subtag, lower case: fr-CA -> fr."""
    return tag.split("-", 1)[0].lower()


def edition_tag(path: Path, base: Path) -> str | None:
    """``fr`` for ``issue.fr.md`` beside ``issue.md`` (a language Babel knows), else None."""
    if path.suffix != base.suffix or not path.name.startswith(base.stem + "."):
        return None
    tag = path.name[len(base.stem) + 1 : len(path.name) - len(path.suffix)]
    # Two-letter languages (ISO 639-1) only: issue.bak.md, .old, .fin are copies, not Bashkir.
    if not LANG.fullmatch(tag) or not re.fullmatch(r"[A-Za-z]{2}(?:-.+)?", tag):
        return None
    try:
        Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError):
        return None
    return tag


def read_editions(report: Report) -> list[Edition]:
    """The report and the editions beside it (issue.fr.md...), each read now."""
    return find_editions(report, read_source(report.path))


def find_editions(report: Report, source: str) -> list[Edition]:
    """The report (the default edition) and every edition beside it, default first, then by
    language. An edition's ``lang`` is its file's; its front matter may repeat it, not change
    it; it takes the default's author, date and attachments when it gives none."""
    editions = [Edition(report.lang, report, source)]
    seen = {report.lang.lower(): report.path}
    folder = report.path.parent
    candidates = sorted(folder.glob(f"{_glob_escape(report.path.stem)}.*{report.path.suffix}"))
    for path in candidates:
        tag = edition_tag(path, report.path)
        if tag is None or path == report.path:
            continue
        if tag.lower() in seen:
            raise FileInputError(path, f"a second edition in {tag}: {seen[tag.lower()]} is one")
        seen[tag.lower()] = path
        text = read_source(path)
        editions.append(_edition(parse_report(text, path), tag, report, text))
    return editions


def inspect_editions(
    editions: Sequence[Edition], settings: Settings, *, strict: bool = False
) -> Iterator[list[Notice]]:
    """Each edition's warnings in turn, its images and attachments checked (``inspect_report``).
    The attachments an edition takes from the default were checked with the default: they are
    not named again under the edition's file, with the default's lines."""
    default = editions[0].report.attachments
    for edition in editions:
        own = edition is editions[0] or edition.report.attachments is not default
        yield inspect_report(edition.report, settings, strict=strict, with_attachments=own)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _edition(found: Report, tag: str, default: Report, source: str) -> Edition:
    written = found.meta.get("lang")
    if written is not None and str(written).strip().lower() != tag.lower():
        line = front_matter_line(source, "lang")
        why = f"lang {written!r} differs from the file name's {tag!r}"
        raise FileInputError(found.path, why, line)
    kept = {key: getattr(default, key) for key in INHERITED
            if key not in found.meta and not getattr(found, key)}  # fmt: skip
    return Edition(tag, replace(found, lang=tag, **kept), source)


def stored_editions(rows: Iterable[tuple[str, str, str]]) -> list[Edition]:
    """Editions read back from a campaign: (lang, report path, source), default first; from
    the stored text, never the files (they may have changed since)."""
    editions: list[Edition] = []
    for lang, path, source in rows:
        report = parse_report(source, Path(path))
        if not editions:
            report = replace(report, lang=lang or report.lang)  # '': stored before editions
            editions.append(Edition(report.lang, report, source))
        else:  # as a fresh send read it: what it takes from the default included
            editions.append(_edition(report, lang, editions[0].report, source))
    return editions


def edition_for(editions: Sequence[Edition], language: str) -> Report:
    """The edition a reader of ``language`` gets, chosen as a send chooses it."""
    wanted = Chooser([edition.lang for edition in editions]).pick(language)
    return next(edition.report for edition in editions if edition.lang == wanted)


def choose_edition(editions: Sequence[Edition], language: str) -> Report:
    """``mailer render --language fr``: the edition a reader of ``language`` gets, which must
    be in that language."""
    found = edition_for(editions, language)
    if primary(found.lang) != primary(language):
        shown = ", ".join(edition.lang for edition in editions)
        raise InputError(f"no edition in {language!r} beside {editions[0].report.path}: {shown}")
    return found


class Chooser:
    """Which edition a reader of a language gets: the one with that very tag (any case), else
    one with its primary subtag (the edition ``fr`` before ``fr-CA``), else the default."""

    def __init__(self, tags: Sequence[str]) -> None:
        self.default = tags[0]
        self.exact = {tag.lower(): tag for tag in tags}
        self.primary: dict[str, str] = {}
        for tag in tags:
            if tag.lower() == primary(tag) or primary(tag) not in self.primary:
                self.primary[primary(tag)] = tag

    def pick(self, language: str) -> str:
        lowered = language.lower()
        if not lowered:
            return self.default
        return self.exact.get(lowered) or self.primary.get(primary(lowered), self.default)

    def sql(self, column: str = "s.lang") -> tuple[str, list[str]]:
        """The same choice as an SQL expression of ``column``, with its parameters."""
        if len(self.exact) == 1:
            return "?", [self.default]
        exact = " ".join("WHEN ? THEN ?" for _ in self.exact)
        first = f"CASE WHEN instr({column}, '-') THEN substr({column}, 1, instr({column}, '-') - 1)"
        head = f"lower({first} ELSE {column} END)"
        by_primary = " ".join("WHEN ? THEN ?" for _ in self.primary)
        sql = f"CASE lower({column}) {exact} ELSE CASE {head} {by_primary} ELSE ? END END"
        values = [v for pair in self.exact.items() for v in pair]
        values += [v for pair in self.primary.items() for v in pair]
        return sql, [*values, self.default]


@dataclass(frozen=True)
class Compiled:
    """An edition compiled: its campaign, its language and its path in the archive."""

    lang: str
    campaign: CompiledCampaign
    archive_path: str  # '' for the default edition, /fr for the others


class CompiledEditions:
    """Every edition of a campaign compiled (and checked with the stand-in reader); the one
    for each reader."""

    def __init__(self, reports: Sequence[Report], compile: Compiler) -> None:
        tags = [report.lang for report in reports]
        self.chooser = Chooser(tags)
        self.editions = {
            r.lang: Compiled(r.lang, compile(r), "" if i == 0 else f"/{r.lang}")
            for i, r in enumerate(reports)
        }
        self.default = self.editions[tags[0]]
        self.by_language: dict[str, Compiled] = {"": self.default}

    def __len__(self) -> int:
        return len(self.editions)

    def for_reader(self, reader: Reader) -> Compiled:
        found = self.by_language.get(reader.lang)
        if found is None:
            found = self.editions[self.chooser.pick(reader.lang)]
            if len(self.by_language) < 1000:
                self.by_language[reader.lang] = found
        return found

    def check(self, readers: Iterable[Reader | Member]) -> int:
        """Render every reader's personal parts in their edition; raise on the first error
        (it names the edition's file and line, and the reader)."""
        if len(self.editions) == 1:
            return self.default.campaign.check(readers)
        count = 0
        for item in readers:
            reader = item if isinstance(item, Reader) else item.reader
            count += self.for_reader(reader).campaign.check((reader,))
        return count


class Compiler:
    """Compiles one edition's report for a campaign: the workspace's templates, its list."""

    def __init__(
        self,
        settings: Settings,
        mailing_list: MailingList,
        key: str,
        files: ReportFiles | None = None,
        *,
        publish: bool = True,
    ) -> None:
        self.settings, self.list, self.key = settings, mailing_list, key
        self.files = files or ReportFiles()  # shared by the editions: each file read once
        self.publish = publish  # False for a preview: nothing written into the media folder

    def __call__(self, report: Report) -> CompiledCampaign:
        return compile_campaign(self.settings, report, self.list, self.key, self.publish,
                                self.files)  # fmt: skip

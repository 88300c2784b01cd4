"""What every command shares: the root app and its error edge, the consoles, settings, database."""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import logging
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from mailer import __version__, config
from mailer.cli.consoles import err as err  # re-exported: every command writes through them
from mailer.cli.consoles import out as out
from mailer.cli.consoles import reader_went_away
from mailer.config.loading import find_workspace
from mailer.config.private import write_private
from mailer.db.database import Database, NoDatabaseError
from mailer.db.opening import open_database
from mailer.errors import FileInputError, InputError, MailerError
from mailer.models import heard

# psycopg_pool writes its own lines to stderr when it drops a broken connection; the store's
# errors reach the user once, as one line (StoreError), so the pool's are not shown.
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)


class _Several(TyperArgument):
    """An argument that takes one or more values: its type is one value's (``<str>``, where
    typer says ``<list[str]>``); its name (``EMAIL...``) says there may be several."""

    def display_type_rich(self, ctx: Any) -> str | None:
        shown = super().display_type_rich(ctx)
        return None if shown is None else re.sub(r"^<list\[(.*)\]>$", r"<\1>", shown)

    def _usage_display_name(self) -> str:  # typer adds "..." to a name that has it already
        return super()._usage_display_name().replace("...}...", "}...").replace("...]...", "]...")


class _PlainFlags:
    """Help that shows flags as flags (typer labels them ``<bool>``, which makes
    ``--double-opt-in true`` look right), names arguments in capitals, never labels a value
    ``<list[str]>``, and prints its text as written: typer reads it as Rich markup, where
    "(default: [dkim] domain)" loses its "[dkim]"."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperArgument) and param.nargs != 1:
                param.__class__ = _Several
            if param.metavar is not None:
                continue
            if isinstance(param, TyperOption) and param.is_flag:
                param.metavar = ""
            elif isinstance(param, TyperArgument) or getattr(param, "multiple", False):
                param.metavar = param.name.upper()  # a repeatable option: one value's name
        return params

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with literal_help([self, *self.get_params(ctx)], subcommands(self, ctx)):
            super().format_help(ctx, formatter)  # type: ignore[misc]


def subcommands(command: Any, ctx: Any) -> list[Any]:
    """A group's commands, whose help its page lists; none for a command."""
    if not isinstance(command, TyperGroup):
        return []
    found = (command.get_command(ctx, name) for name in command.list_commands(ctx))
    return [c for c in found if c is not None]


@contextmanager
def literal_help(items: list[Any], listed: list[Any]) -> Iterator[None]:
    """While one help page is printed: the help, short help and epilog of ``items`` and of the
    ``listed`` commands escaped as Rich markup, so that "[dkim] domain" shows as written, and
    each listed command's help in the group's table joined on one line (typer keeps the line
    breaks of a docstring there)."""
    kept = [(item, name, getattr(item, name)) for item in (*items, *listed)
            for name in ("help", "short_help", "epilog") if hasattr(item, name)]  # fmt: skip
    for item, name, text in kept:
        if isinstance(text, str):
            setattr(item, name, escape(text))
    for command in listed:
        if command.short_help is None and command.help:
            command.short_help = " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split())
    try:
        yield
    finally:
        for item, name, text in kept:
            setattr(item, name, text)


class Command(_PlainFlags, TyperCommand):
    pass


class Group(_PlainFlags, TyperGroup):
    pass


class Typer(typer.Typer):
    """``typer.Typer`` whose groups and commands show their flags as flags."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(**kwargs)

    def command(
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", Command)
        return super().command(name, **kwargs)


class MailerGroup(Group):
    """Root group: the one place where a MailerError becomes one line on stderr and exit 1."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Every argument, checked first: one that is not UTF-8 (a file name from another
        system, as the shell hands it on) is one line here, not a traceback where it is
        stored or printed (shell completion, parsing leniently, is left alone). And what a
        terminal's encoding lacks is written escaped; data on stdout (an export, JSON) going
        to a file or a pipe is never changed so."""
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper) and (stream is sys.stderr or stream.isatty()):
                stream.reconfigure(errors="backslashreplace")
        for arg in () if ctx.resilient_parsing else args:
            if not arg.isprintable() and not _utf8(arg):
                err.print(f"error: {heard(arg)}: not UTF-8 (a name from another system?);"
                          " rename it, or give it in UTF-8", markup=False)  # fmt: skip
                raise typer.Exit(1)
        return list(super().parse_args(ctx, args))

    def invoke(self, ctx: Any) -> Any:  # click's Context; typer may vendor click
        if sys.stdout is None:  # closed (>&-): nothing is done that could not be told
            err.print("error: standard output is closed; send it somewhere (>/dev/null)")
            raise typer.Exit(1)
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a reader gone away (`| head -1`) is found here, not at exit
            if reader_went_away():  # the work is done; its reader left before the end
                raise typer.Exit(PIPE_CLOSED)
            return result
        except BrokenPipeError as error:
            reader_gone(error)
            raise typer.Exit(PIPE_CLOSED) from None
        except MailerError as error:
            err.print(f"error: {error}", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except UnicodeEncodeError as error:
            if error.encoding.lower().replace("-", "") == "utf8":
                raise  # not the output's: every text mailer keeps is UTF-8
            shown = error.object[error.start : error.end]
            err.print(f"error: the output's encoding ({error.encoding}) cannot hold {shown!a}:"
                      " set a UTF-8 locale (LANG=C.UTF-8) or PYTHONIOENCODING=utf-8",
                      markup=False)  # fmt: skip
            raise typer.Exit(1) from None


PIPE_CLOSED = 141  # as a shell reports a command that SIGPIPE ended: 128 + 13


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the bytes Python could not decode
        return False
    return True


def reader_gone(error: BrokenPipeError) -> None:
    """What stdout's reader stopped reading (`mailer subscribers ls weekly | head -1`) leaves:
    nothing more goes to stdout (flushed again at exit), and the work it left half done, a
    database stream among it, ends here in silence: no traceback, nothing on stderr."""
    with contextlib.suppress(OSError, ValueError):  # not a real file: nothing to redirect
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        traceback.clear_frames(error.__traceback__)  # their generators are closed now
        gc.collect()
    finally:
        sys.unraisablehook = hook


# -h as well as --help, on every command (sub-apps take it from their parent's context).
HELP = {"help_option_names": ["-h", "--help"]}
app = Typer(
    cls=MailerGroup,
    help="Self-hosted newsletters: subscriber lists, Markdown reports, SMTP delivery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings=HELP,
)


class State:
    workspace: Path = Path(".")
    chosen: bool = False  # given with -w, not found from the current folder
    settings: config.Settings | None = None  # loaded once per command


state = State()


def _version(value: bool) -> None:
    if value:
        out.print(f"mailer {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (default: the nearest folder, from the current one up, with"
            " mailer.toml or subscribers/mailer.db; else the current one).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Self-hosted newsletters: subscriber lists, Markdown reports, SMTP delivery."""
    state.chosen, state.settings = workspace is not None, None
    state.workspace = workspace if workspace is not None else here()


def here() -> Path:
    """The workspace the current folder is in, or the current folder (``.``) if none."""
    found = find_workspace(Path("."))
    return Path(".") if found is None or found == Path(".").absolute() else found


def settings() -> config.Settings:
    if state.settings is None:
        state.settings = config.load(state.workspace)
    return state.settings


@contextmanager
def open_db(create: bool = True) -> Iterator[Database]:
    """The workspace's database; with ``create=False`` (commands that only read) a workspace
    without one is an error instead of a new, empty database."""
    current = settings()
    try:
        database = open_database(current, create=create)
    except NoDatabaseError as error:
        raise InputError(no_workspace(error)) from None
    with database:
        yield database


def no_workspace(error: NoDatabaseError) -> str:
    """The one line for a read-only command where there is no database."""
    if (state.workspace / config.CONFIG_NAME).is_file():
        return f"{error}: nothing was created in workspace {state.workspace} yet"
    if not state.chosen:
        return "no workspace here: run `mailer init`, or use -w PATH"
    return f"{error}: no workspace at {state.workspace} (run `mailer -w PATH init` to make one)"


def finite(value: float | None) -> float | None:
    """A number option's check: nan and infinity are not numbers of anything."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def confirm(question: str, yes: bool, refusal: str) -> None:
    """Ask on a terminal; without one, refuse unless --yes was given."""
    if yes:
        return
    if sys.stdin is None or not sys.stdin.isatty():  # None: closed (<&-)
        raise InputError(f"{refusal} (no terminal to ask)")
    typer.confirm(question, abort=True)


@app.command(epilog="Example: mailer init")
def init(
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing mailer.toml.")
    ] = False,
) -> None:
    """Write a commented mailer.toml with every setting and create the database."""
    if not state.chosen:  # as `git init`: here, even inside another workspace
        state.workspace, state.settings = Path("."), None
    path = state.workspace / config.CONFIG_NAME
    if path.exists() and not force:
        raise InputError(f"{path} already exists (use --force to overwrite it)")
    try:  # 0600: it may come to hold a password
        state.workspace.mkdir(parents=True, exist_ok=True)
        write_private(path, config.render_default_file().encode("utf-8"))
    except OSError as error:
        raise FileInputError(path, f"cannot write: {error.strerror}") from None
    with open_db() as database:
        out.print(f"wrote {path}\ndatabase {database.where}")

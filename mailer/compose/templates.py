"""Where templates come from (the workspace's, file by file, then mailer's) and their sandbox."""

from __future__ import annotations

import functools
import os
import posixpath
import re
import string
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

import mailer
from mailer.compose import translations
from mailer.compose.byline import split_title
from mailer.compose.template_cache import template_cache
from mailer.errors import FileInputError

MAX_SIZE = 10_000_000  # characters (or items) of any value a template makes, and of any part
MAX_BITS = 1_000_000  # bits of any integer a template computes
PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
METHODS = (types.MethodType, types.BuiltinMethodType)
MISSING = object()
GROWING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join"})


def packaged_templates() -> Path:
    """The templates shipped with mailer (in the wheel, or the source checkout)."""
    inside = Path(mailer.__file__).parent / "templates"
    return inside if inside.is_dir() else Path(mailer.__file__).parent.parent / "templates"


def template_dirs(workspace_templates: Path | None) -> list[Path]:
    """Workspace templates first (file by file), then the packaged ones."""
    dirs = [workspace_templates] if workspace_templates and workspace_templates.is_dir() else []
    return [*dirs, packaged_templates()]


class Loader(jinja2.FileSystemLoader):
    """Each template from the first folder that has it; one there that cannot be read (not
    UTF-8, a link to nothing, no permission) is a FileInputError naming it, never skipped."""

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        for folder in self.searchpath:
            path = os.path.normpath(posixpath.join(folder, *split_template_path(template)))
            if os.path.isfile(path):
                break
            if os.path.lexists(path) and not os.path.isdir(path):  # a link to nothing, a FIFO
                gone = os.path.islink(path) and not os.path.exists(path)
                why = f"a link to {os.readlink(path)}, which does not exist" if gone else ""
                raise FileInputError(path, why or "not a regular file")
        try:
            return super().get_source(environment, template)
        except OSError as error:
            raise FileInputError(path, f"cannot read: {error.strerror or error}") from None
        except UnicodeDecodeError as error:  # decoded whole: start counts from the file's
            line = error.object.count(b"\n", 0, error.start) + 1
            raise FileInputError(path, f"not UTF-8 text ({error.reason})", line) from None


def sandbox(
    loader: jinja2.BaseLoader | None, html: bool, finalize: Callable[[Any], Any] | None = None
) -> Sandbox:
    """The environment every report and newsletter template is parsed and rendered in, with
    ``_()`` and ``{% trans %}`` in the language of what it renders (compose.translations)."""
    environment = Sandbox(
        loader=loader,
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=finalize,
        auto_reload=False,
        extensions=["jinja2.ext.i18n"],
        bytecode_cache=template_cache(html, finalize),
    )
    translations.install(environment)
    environment.filters["split_title"] = split_title
    return environment


def check_size(what: str, size: int) -> None:
    """Raise SecurityError when ``what`` would be longer than MAX_SIZE characters."""
    if size > MAX_SIZE:
        raise SecurityError(f"{what} would be {size:,} characters long; the limit is {MAX_SIZE:,}")


def joined(pieces: Iterable[str]) -> str:
    """``"".join`` that refuses a text over MAX_SIZE before making it (the pieces exist
    already; only their sum is new)."""
    kept = list(pieces)
    check_size("the rendered text", sum(map(len, kept)))
    return "".join(kept)


def weight(value: Any, indent: int = 0) -> int:
    """About how many characters ``value`` takes as text (``indent`` more per nesting level
    and item); counting stops once past MAX_SIZE."""
    if isinstance(value, str | bytes):
        return len(value)
    total, stack = 0, [(value, 1)]
    while stack and total <= MAX_SIZE:
        item, depth = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset | dict):
            total += 2 + (4 + indent * depth) * len(item)
            if total <= MAX_SIZE:
                children = item.items() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)
        else:
            total += 24  # numbers and records print short (an int of 4,300+ digits cannot)
    return total


def _printf(text: str | bytes, args: Any) -> int:
    """At most how long ``text % args`` is: every field as wide as the widest argument."""
    fields = PRINTF.findall(text.decode("latin-1") if isinstance(text, bytes) else text)
    if any("*" in (width, precision) for width, precision, _ in fields):
        raise SecurityError("widths taken from the arguments (%*d) are not allowed")
    values = (
        args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else [args]
    )
    widest = max((weight(value) for value in values), default=0)
    padding = max((int(w or 0) + int(p or 0) for w, p, _ in fields), default=0)
    return len(text) + len(fields) * (widest + padding)


def _format(text: str, values: list[Any]) -> int:
    """At most how long ``text.format(*values)`` is, as for ``_printf``."""
    specs = [spec or "" for _, name, spec, _ in string.Formatter().parse(text) if name is not None]
    if any("{" in spec for spec in specs):
        raise SecurityError("widths taken from the arguments ({:{}}) are not allowed")
    widest = max((weight(value) for value in values), default=0)
    padding = max((sum(map(int, re.findall(r"\d+", spec))) for spec in specs), default=0)
    return len(text) + len(specs) * (widest + padding)


def _method(name: str, text: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """At most how long ``text.name(*args, **kwargs)`` is, for the str methods that grow."""
    size = len(text)
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(size, int(args[0] if args else kwargs.get("width", 0)))
    if name == "expandtabs":
        tabs: int = text.count("\t" if isinstance(text, str) else b"\t")
        return size + tabs * int(args[0] if args else kwargs.get("tabsize", 8))
    if name == "replace":
        old, new = args[0], args[1]
        found = text.count(old) if old else size + 1
        limit = int(args[2] if len(args) > 2 else kwargs.get("count", -1))
        return size + (min(found, limit) if limit >= 0 else found) * len(new)
    items = args[0]  # join, of a list
    return sum(weight(item) for item in items) + max(len(items) - 1, 0) * size


def _indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> int:
    per_line = width if isinstance(width, int) else weight(width)
    return weight(s) + (str(s).count("\n") + 1) * per_line


def _tojson(value: Any, indent: Any = None) -> int:
    return 6 * weight(value, weight(indent) if isinstance(indent, str) else int(indent or 0))


# At most how long the output of the filters that can multiply their input is.
ESTIMATES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80, *_, **__: max(weight(value), int(width)),
    "indent": _indent,
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, *_, **__: (
        weight(s) + (weight(s) + 1) * weight(wrapstring or "\n")
    ),
    "replace": lambda s, old, new, count=None: _method(
        "replace", str(s), (old, new, -1 if count is None else count), {}
    ),
    "join": lambda value, d="", attribute=None: _method("join", str(d), (value,), {}),
    "format": lambda value, *args, **kwargs: _printf(str(value), kwargs or args),
    "batch": lambda value, linecount, fill_with=None: weight(value) + int(linecount),
    "slice": lambda value, slices, fill_with=None: weight(value) + int(slices),
    "tojson": _tojson,
    "urlize": lambda value, trim_url_limit=None, nofollow=False, target=None, rel=None, *_, **__: (
        3 * weight(value) + (weight(value) // 4 + 1) * (60 + weight(target) + weight(rel))
    ),
    "pprint": lambda value: 2 * weight(value, 1),
    "sum": lambda iterable, attribute=None, start=0: weight(iterable) + weight(start),
}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passed = int(getattr(function, "jinja_pass_arg", None) is not None)
    estimate = ESTIMATES.get(name)

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > passed:
            value = args[passed]
            if name == "join":
                value = list(value)
                args = (*args[:passed], value, *args[passed + 1 :])
            if not isinstance(value, str):
                check_size(f"the value given to |{name}", weight(value))
            if estimate is not None:
                try:
                    size = estimate(*args[passed:], **kwargs)
                except (TypeError, ValueError):
                    size = 0  # the filter itself will say what is wrong
                check_size(f"the result of |{name}", size)
        result = function(*args, **kwargs)
        if isinstance(result, str):
            check_size(f"the result of |{name}", len(result))
        return result

    return bounded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    check_size("lipsum()", n * max * 15)
    return str(generate_lorem_ipsum(n, html, min, max))


class _Generator(CodeGenerator):
    """Jinja's code generator, with the parts of ``a ~ b`` measured before they are joined."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"{join}(environment.joinable((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write(")))")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox (no attribute that starts with _, no method that changes a list, dict
    or set, no range() of more than 100,000) where no value or output grows past MAX_SIZE."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%", "+"})
    concat = staticmethod(joined)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.safe: dict[tuple[type, str], bool] = {}
        for name in list(self.filters):
            self.filters[name] = _bounded_filter(name, self.filters[name])
        self.globals["lipsum"] = _lipsum

    def getattr(self, obj: Any, attribute: str) -> Any:
        """The sandbox's getattr, quicker for an attribute that is no method and was found
        safe before on the same type."""
        if self.safe.get((type(obj), attribute)):
            value = getattr(obj, attribute, MISSING)
            if value is not MISSING and not isinstance(value, METHODS):
                return value
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """As the sandbox says, which depends on the type and the name only: remembered."""
        key = (type(obj), attr)
        safe = self.safe.get(key)
        if safe is None:
            if len(self.safe) > 10_000:
                self.safe.clear()
            safe = self.safe[key] = super().is_safe_attribute(obj, attr, value)
        return safe

    @staticmethod
    def joinable(items: tuple[Any, ...]) -> tuple[Any, ...]:
        check_size("the joined text (~)", sum(weight(item) for item in items))
        return items

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        numbers = isinstance(left, int) and isinstance(right, int)
        if numbers and operator in ("*", "**"):
            bits = left.bit_length() + right.bit_length()
            if operator == "**":
                bits = right * abs(left).bit_length() if right > 0 and abs(left) > 1 else 0
            if bits > MAX_BITS:
                raise SecurityError(f"a number of {bits:,} bits is too large")
        elif operator == "*":
            times, value = (right, left) if isinstance(right, int) else (left, right)
            if isinstance(times, int) and isinstance(value, str | bytes | list | tuple):
                check_size("the repeated value (*)", weight(value) * times)
        elif operator == "+":
            check_size("the sum (+)", weight(left) + weight(right))
        elif operator == "%" and isinstance(left, str | bytes):
            check_size("the formatted text (%)", _printf(left, right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped
        owner = getattr(method, "__self__", None)
        if isinstance(method, types.BuiltinMethodType) and isinstance(owner, str | bytes):
            name = method.__name__
            if name == "join" and args:
                args = (list(args[0]), *args[1:])
            if name in ("format", "format_map") and isinstance(owner, str):
                check_size(f"the result of .{name}()", _format(owner, [*args, *kwargs.values()]))
            elif name in GROWING:
                try:
                    size = _method(name, owner, args, kwargs)
                except (TypeError, ValueError, IndexError):
                    size = 0  # the call itself will say what is wrong
                check_size(f"the result of .{name}()", size)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str):
            check_size("the result of a call", len(result))
        return result

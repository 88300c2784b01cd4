"""Compiled templates kept on disk between runs, so that a new process has them at once."""

from __future__ import annotations

import functools
import hashlib
import pickle
from collections.abc import Callable
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
from jinja2.bccache import Bucket

import mailer

# Beyond its own text (part of each entry's key), a template's compiled code depends on Jinja
# and on everything Jinja may run while it compiles: the sandbox and its code generator, the
# i18n settings, and the filters it folds into constants (mailer's compose package, Babel's
# data, MarkupSafe's escaping); and on its environment's kind.
PACKAGES = ("jinja2", "babel", "markupsafe")


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """Jinja's cache of compiled templates; one that cannot be read or written is none."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError):  # cut short
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with suppress(OSError):  # a full disk, a read-only folder: compiled again next time
            super().dump_bytecode(bucket)


@functools.cache
def _shape() -> str:
    """What shapes the compiled code besides the template; OSError or PackageNotFoundError
    when it cannot be known (no sources beside the installed package)."""
    digest = hashlib.sha256(mailer.__version__.encode())
    for package in PACKAGES:
        digest.update(f" {package} {metadata.version(package)}".encode())
    sources = sorted(Path(__file__).parent.glob("*.py"))
    if not sources:
        raise FileNotFoundError(f"no sources beside {__file__}")
    for source in sources:
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()


def template_cache(
    html: bool, finalize: Callable[[Any], Any] | None
) -> jinja2.BytecodeCache | None:
    """The cache of environments of one kind (escaping HTML or not, with this ``finalize``):
    in Jinja's own folder for it, the user's, mode 0700; None where none is safe."""
    named = f"{finalize.__module__}.{finalize.__qualname__}" if finalize else ""
    return _cache(html, named)


@functools.cache
def _cache(html: bool, finalize: str) -> jinja2.BytecodeCache | None:
    try:
        kind = hashlib.sha256(f"{_shape()} {html} {finalize}".encode()).hexdigest()[:16]
        return TemplateCache(None, f"mailer-{kind}-%s.cache")
    except (OSError, RuntimeError, metadata.PackageNotFoundError):
        return None  # no temporary folder, one another user could write, or no sources

"""Compiled templates kept between runs: used when they fit, never for another kind of page."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest

from mailer.compose import template_cache
from mailer.compose.templates import sandbox

PAGE = "{{ value }} {% trans %}Unsubscribe{% endtrans %}\n"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Jinja's cache folder for this test alone (it lives in the temporary directory)."""
    home = tmp_path / "tmp"
    home.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(home))
    template_cache._cache.cache_clear()
    template_cache._shape.cache_clear()
    yield home
    template_cache._cache.cache_clear()
    template_cache._shape.cache_clear()


def render(folder: Path, html: bool) -> str:
    """The page, by a new environment (nothing of an earlier one's memory)."""
    environment = sandbox(jinja2.FileSystemLoader(str(folder)), html)
    return environment.get_template("page.j2").render(value="<b>&</b>")


def cache_files(home: Path) -> list[Path]:
    return sorted(home.glob("_jinja2-cache-*/mailer-*.cache"))


def test_a_warm_cache_compiles_nothing_and_keeps_each_kind_its_own(
    cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "page.j2").write_text(PAGE, encoding="utf-8")
    first = render(tmp_path, html=True), render(tmp_path, html=False)
    assert first == ("&lt;b&gt;&amp;&lt;/b&gt; Unsubscribe\n", "<b>&</b> Unsubscribe\n")
    assert len(cache_files(cache_home)) == 2  # one entry for each kind

    def compile_again(*_: object, **__: object) -> None:
        raise AssertionError("compiled again: the cache was not used")

    monkeypatch.setattr(jinja2.Environment, "compile", compile_again)
    assert (render(tmp_path, html=True), render(tmp_path, html=False)) == first


def test_a_changed_template_is_compiled_again(cache_home: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.j2"
    page.write_text(PAGE, encoding="utf-8")
    render(tmp_path, html=False)
    page.write_text("changed: {{ value }}", encoding="utf-8")
    assert render(tmp_path, html=False) == "changed: <b>&</b>"


@pytest.mark.parametrize("kept", [40, -20], ids=["in its checksum", "in its code"])
def test_a_damaged_cache_is_no_cache(cache_home: Path, tmp_path: Path, kept: int) -> None:
    (tmp_path / "page.j2").write_text(PAGE, encoding="utf-8")
    expected = render(tmp_path, html=True)
    for entry in cache_files(cache_home):
        entry.write_bytes(entry.read_bytes()[:kept])  # cut short
    assert render(tmp_path, html=True) == expected


@pytest.mark.parametrize("missing", ["sources", "package"])
def test_what_cannot_be_known_is_not_cached(
    cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """Without mailer's .py files (an install of bytecode only), or without a package's
    version, what shapes the compiled code is unknown: it renders, uncached."""
    if missing == "sources":
        monkeypatch.setattr(template_cache, "__file__", str(tmp_path / "template_cache.pyc"))
    else:
        monkeypatch.setattr(template_cache, "PACKAGES", ("no-such-package-here",))
    assert template_cache.template_cache(True, None) is None
    (tmp_path / "page.j2").write_text(PAGE, encoding="utf-8")
    assert render(tmp_path, html=True).startswith("&lt;b&gt;")


def test_no_safe_folder_means_no_cache(cache_home: Path, tmp_path: Path) -> None:
    (cache_home / f"_jinja2-cache-{os.getuid()}").write_text("a file, not a folder")
    assert template_cache.template_cache(True, None) is None
    (tmp_path / "page.j2").write_text(PAGE, encoding="utf-8")
    assert render(tmp_path, html=True).startswith("&lt;b&gt;")

"""The package map holds: imports run one way between layers, no module imports in a cycle, the
edges stay thin and the core stays quiet, and modules stay small."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "mailer"
# Lower layers never import higher ones; a package may import itself.
LAYERS = {
    "mailer.errors": 0,
    "mailer.models": 0,
    "mailer.times": 1,
    "mailer.config": 2,
    "mailer.tokens": 2,
    "mailer.db": 3,
    "mailer.audience": 4,
    "mailer.compose": 4,
    "mailer.send": 5,
    "mailer.bounces": 5,
    "mailer.schedule": 6,
    "mailer.web": 7,
    "mailer.cli": 8,
}
# What each capability is for, so a newcomer finds it from the names alone.
FINDABLE = {
    "unsubscribe": "mailer/web/unsubscribe.py",
    "double opt-in": "mailer/web/confirm.py",
    "the status transitions": "mailer/audience/status/table.py",
    "bounce processing": "mailer/bounces/apply.py",
    "retry": "mailer/send/retry.py",
    "dkim signing": "mailer/send/dkim.py",
    "bounce parsing": "mailer/bounces/parse.py",
    "csv import": "mailer/audience/csv_import.py",
    "rate limit": "mailer/send/rate.py",
    "sending service": "mailer/send/service.py",
    "scheduler": "mailer/schedule/scheduler.py",
    "welcome mail": "mailer/send/welcome.py",
    "preferences page": "mailer/web/preferences.py",
    "health check": "mailer/web/health.py",
}
MAX_LINES = 330


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports(name: str, path: Path) -> set[str]:
    """Every mailer module this one imports, at any depth of the file."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    known = dict(modules())
    return {m for m in found if m in known and m != name}


def layer(module: str) -> tuple[str, int] | None:
    for prefix, number in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return prefix, number
    return None


GRAPH = {name: imports(name, path) for name, path in modules()}


def test_imports_run_one_way_between_layers() -> None:
    wrong = []
    for name, targets in GRAPH.items():
        here = layer(name)
        if here is None:
            continue
        for target in targets:
            there = layer(target)
            if there is not None and there[0] != here[0] and there[1] >= here[1]:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_every_module_belongs_to_a_layer() -> None:
    loose = [n for n in GRAPH if layer(n) is None and n not in ("mailer", "mailer.__main__")]
    assert loose == []


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert cycles == []


def third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}  # fmt: skip
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and not n.level}  # fmt: skip
    return names


def test_the_cli_is_a_thin_edge() -> None:
    for path in (PACKAGE / "cli").glob("*.py"):
        heavy = third_party(path) & {"aiosmtplib", "jinja2", "email_validator", "csv", "sqlite3"}
        assert heavy == set(), path


def test_the_core_never_prints_prompts_or_exits() -> None:
    for name, path in modules():
        if name.startswith("mailer.cli") or name == "mailer.__main__":
            continue
        assert third_party(path) & {"typer", "rich", "click"} == set(), path
        calls = [
            n.func.id
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
        assert {"print", "input", "exit"} & set(calls) == set(), path


def test_the_send_engine_knows_neither_sql_nor_aiosmtplib() -> None:
    engine = PACKAGE / "send" / "engine.py"
    assert third_party(engine) & {"sqlite3", "aiosmtplib", "psycopg"} == set()
    assert not {t for t in GRAPH["mailer.send.engine"] if t.startswith("mailer.db")}
    assert "mailer.send.smtp" not in GRAPH["mailer.send.engine"]


@pytest.mark.parametrize("what", sorted(FINDABLE))
def test_a_newcomer_finds_it_by_name(what: str) -> None:
    assert (ROOT / FINDABLE[what]).is_file()


def test_modules_stay_small() -> None:
    big = {
        str(path.relative_to(ROOT)): lines
        for _, path in modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert big == {}


def test_every_module_says_what_it_is_in_one_docstring() -> None:
    missing = [n for n, p in modules() if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def test_every_module_has_a_one_line_docstring() -> None:
    wrong = {}
    for name, path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstring = ast.get_docstring(tree, clean=False)
        if docstring is None or "\n" in docstring:
            wrong[name] = docstring
    assert wrong == {}


def test_every_template_renders_in_the_sandbox() -> None:
    """Reports, newsletters, confirmations and pages: one factory, the sandboxed one."""
    plain = [
        name
        for name, path in modules()
        if "Environment(" in path.read_text(encoding="utf-8") and name != "mailer.compose.templates"
    ]
    assert plain == []

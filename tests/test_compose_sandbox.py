"""Reports and templates render in a sandbox: known escapes are one error and run nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.report import load_report
from mailer.compose.templates import packaged_templates, template_dirs
from mailer.config import NewsletterSettings
from mailer.errors import FileInputError
from mailer.models import MailingList, Reader
from tests.conftest import Invoke

NEWS = NewsletterSettings(base_url="https://bulletin.example.org")
LIST = MailingList(1, "survey", "Lower Vale Water Survey", False)
READER = Reader(1, "ada@example.org", "Ada", {"city": "Ashby"})
TOUCH = "popen('touch MARKER').read()"
OS = "['__builtins__']['__import__']('os')."
ESCAPES = [
    f"{{{{ cycler.__init__.__globals__.os.{TOUCH} }}}}",
    f"{{{{ joiner.__init__.__globals__.os.{TOUCH} }}}}",
    f"{{{{ namespace.__init__.__globals__.os.{TOUCH} }}}}",
    f"{{{{ lipsum.__globals__['os'].{TOUCH} }}}}",
    f"{{{{ (lipsum|attr('__globals__'))['os'].{TOUCH} }}}}",
    f"{{{{ lipsum.func_globals['os'].{TOUCH} }}}}",
    f"{{{{ self.__init__.__globals__{OS}{TOUCH} }}}}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ =="
    f" 'catch_warnings' %}}{{{{ c()._module.__builtins__['__import__']('os').{TOUCH} }}}}"
    "{% endif %}{% endfor %}",
    f"{{{{ subscriber.__class__.__init__.__globals__{OS}{TOUCH} }}}}",
    f"{{{{ report.meta.__class__.__base__.__subclasses__() }}}} {{{{ ''.join.{TOUCH} }}}}",
    "{{ '{0.__class__.__base__.__subclasses__}'.format('') }}",
    "{{ range(10**9)|length }}",
]


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # `touch MARKER` would land here
    return tmp_path / "MARKER"


def report_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "report.md"
    path.write_text(
        f"---\nsubject: Escape\n---\n# Escape\n\nDear {{{{ subscriber.name }}}},\n\n{body}\n"
    )
    return path


@pytest.mark.parametrize("escape", ESCAPES)
def test_escapes_in_the_body_fail_on_their_line_and_run_nothing(
    tmp_path: Path, marker: Path, escape: str
) -> None:
    path = report_file(tmp_path, escape)
    with pytest.raises(FileInputError) as caught:
        CompiledCampaign(load_report(path), NEWS, LIST, campaign_id="c1")
    assert (caught.value.path, caught.value.line) == (path, 8)
    assert len(str(caught.value).splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("escape", ESCAPES[:4] + ESCAPES[6:8])
@pytest.mark.parametrize(
    "name", ["newsletter.html.j2", "newsletter.txt.j2", "partials/footer.html.j2"]
)
def test_escapes_in_workspace_templates_fail_on_their_line_and_run_nothing(
    tmp_path: Path, marker: Path, escape: str, name: str
) -> None:
    own = tmp_path / "templates"
    shutil.copytree(packaged_templates(), own)
    template = own / name
    template.write_text(template.read_text() + f"\n{escape}\n")
    line = template.read_text().count("\n")
    with pytest.raises(FileInputError) as caught:
        CompiledCampaign(load_report(report_file(tmp_path, "Hi.")), NEWS, LIST,
                         templates=template_dirs(own))  # fmt: skip
    assert (caught.value.path, caught.value.line) == (template, line)
    assert not marker.exists()


def test_escapes_in_a_personal_block_fail_for_the_reader_and_run_nothing(
    tmp_path: Path, marker: Path
) -> None:
    body = "{% if subscriber.attributes.city == 'Ashby' %}\n" + ESCAPES[0] + "\n{% endif %}"
    compiled = CompiledCampaign(load_report(report_file(tmp_path, body)), NEWS, LIST)
    with pytest.raises(FileInputError) as caught:
        compiled.message(READER, Links("https://bulletin.example.org/u/x"))
    assert caught.value.line == 9 and "ada@example.org" in str(caught.value)
    assert not marker.exists()


def test_front_matter_is_data_never_a_template(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text(f'---\nsubject: "{ESCAPES[0]}"\npreheader: "{ESCAPES[3]}"\n---\nHi.\n')
    html = CompiledCampaign(load_report(path), NEWS, LIST).parts(READER, Links("u"))[0]
    assert "cycler.__init__.__globals__" in html and "lipsum.__globals__" in html
    assert not marker.exists()


def test_what_reports_need_still_works(tmp_path: Path) -> None:
    body = (
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
        "{{ ns.n }} {{ '%s-%03d'|format('a', 7) }} {{ '{}!'.format('hi') }} {{ 'x' ~ 2 * 3 }}"
        " {{ [3, 1, 2]|sort|join(',') }} {{ (subscriber.name ~ ' ') * 2 }}"
        " {{ subscriber.attributes.get('city', '?')|upper|center(9) }} {{ 2 ** 10 }}"
        " {{ {'a': 1}|tojson }} {{ cycler('x', 'y').next() }} {{ subscriber.name|e }}"
    )
    _, text = CompiledCampaign(load_report(report_file(tmp_path, body)), NEWS, LIST).parts(
        READER, Links("u")
    )
    assert '3 a-007 hi! x6 1,2,3 Ada Ada ASHBY 1024 {"a": 1} x Ada' in " ".join(text.split())


def test_an_escape_is_one_line_from_the_cli_and_runs_nothing(
    mailer: Invoke, workspace: Path, marker: Path
) -> None:
    path = report_file(workspace, ESCAPES[0])
    result = mailer("render", str(path), "--out", str(workspace / "out"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}:8: access to attribute '__init__'")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert not marker.exists() and not (workspace / "out").exists()

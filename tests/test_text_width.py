"""The text part of a Chinese or Japanese report: wrapped at 72 columns, wide letters counted
twice, broken between letters but never before a closing mark."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailer.compose.compiled import CompiledCampaign, Links
from mailer.compose.plaintext import wrap
from mailer.compose.report import load_report
from mailer.compose.text_width import CLOSING, width
from mailer.config import NewsletterSettings
from mailer.models import MailingList, Reader

NEWS = NewsletterSettings(base_url="https://news.example.org")
LIST = MailingList(1, "survey", "Survey", False)
READER = Reader(1, "ada@example.org", "Ada", {})
JAPANESE = (
    "これは日本語の段落です。水質調査の結果を報告します。秋の四半期には四十の地点で試料を採取し、"
    "方法を二つ変更しました。冬の計画もお知らせします。Phosphate という語はそのまま残ります。"
)


def test_a_japanese_report_is_wrapped_by_columns(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    table = "| 地点 | 値 |\n|---|---:|\n| 上流の橋 | 0.08 |\n| 堰 | 0.13 |\n"
    body = f"# 秋の四半期報告\n\n{JAPANESE}\n\n{table}"
    path.write_text(f"---\nsubject: 報告\nlang: ja\n---\n{body}", encoding="utf-8")
    _, text = CompiledCampaign(load_report(path), NEWS, LIST).parts(READER, Links("https://x/u/1"))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("これは"))
    paragraph = lines[start : lines.index("", start)]
    assert len(paragraph) >= 3 and all(66 <= width(line) <= 72 for line in paragraph[:-1])
    assert all(width(line) <= 72 for line in lines if "://" not in line)
    assert not any(line[:1] in CLOSING for line in lines if line)
    assert "Phosphate" in text  # a Latin word inside is never cut
    title = lines.index("秋の四半期報告")
    assert lines[title + 1] == "=" * width("秋の四半期報告")  # 14 columns, not 7
    header = next(line for line in lines if line.startswith("地点") and "値" in line)
    rule = lines[lines.index(header) + 1]
    assert width(header) == width(rule)  # the columns line up with their rule


@given(st.text(alphabet="日本語の文章。、「」abc def", min_size=1, max_size=200))
def test_wrapping_keeps_every_letter_and_the_width(text: str) -> None:
    lines = wrap(text)
    assert all(width(line) <= 72 or (" " not in line and len(line) == 1) for line in lines)
    assert "".join("".join(lines).split()) == "".join(text.split())


def test_a_reference_never_starts_a_line_in_cjk_text() -> None:
    """A link's [n] and a footnote's [^n] stay with the letter before them, as in any text."""
    from mailer.compose.plaintext import markdown, to_text

    for lead in range(20, 40):
        link = "\uff08[報告書](https://example.org/r)\uff09"  # in full-width parentheses
        source = "あ" * lead + f"を見よ{link}。詳細は脚注[^1]にあります。\n\n[^1]: 注。\n"
        text = to_text(source, markdown(), None, "ja").text
        body = text.split("\n\nLinks")[0].split("\n\nNotes")[0]
        starts = [line.lstrip()[:1] for line in body.splitlines() if line.strip()]
        assert "[" not in starts, body

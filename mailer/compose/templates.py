"""Where templates come from: the workspace's templates/ first, file by file, then mailer's own."""

from __future__ import annotations

from pathlib import Path

import mailer


def packaged_templates() -> Path:
    """The templates shipped with mailer (in the wheel, or the source checkout)."""
    inside = Path(mailer.__file__).parent / "templates"
    return inside if inside.is_dir() else Path(mailer.__file__).parent.parent / "templates"


def template_dirs(workspace_templates: Path | None) -> list[Path]:
    """Workspace templates first (file by file), then the packaged ones."""
    dirs = [workspace_templates] if workspace_templates and workspace_templates.is_dir() else []
    return [*dirs, packaged_templates()]

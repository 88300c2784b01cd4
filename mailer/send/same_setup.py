"""What a campaign's workers on other hosts share with its send: link secret and templates."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mailer.compose.templates import template_dirs
from mailer.config import Settings
from mailer.errors import InputError
from mailer.tokens import SECRET_NAME, load_secret

# The templates a campaign's messages are made of (the readers' pages under web/ are not).
MESSAGE_TEMPLATES = ("newsletter", "partials/")


def setup_of(settings: Settings) -> dict[str, Any]:
    """This workspace's setup, as a campaign stored here records it."""
    return {"secret": secret_id(load_secret(settings.workspace)),
            "templates": templates_of(settings.templates_dir)}  # fmt: skip


def secret_id(secret: bytes) -> str:
    """Which secret signs the links: equal for equal secrets, and telling nothing of it."""
    return hmac.new(secret, b"mailer: which link secret", hashlib.sha256).hexdigest()[:16]


def templates_of(workspace_templates: Path | None) -> dict[str, str]:
    """Each message template by name (a workspace's own before the packaged one), with a
    digest of its text."""
    found: dict[str, str] = {}
    for folder in template_dirs(workspace_templates):
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            used = name.startswith(MESSAGE_TEMPLATES) and name.endswith(".j2")  # not a backup~
            if used and path.is_file() and name not in found:
                found[name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return found


def check_same_setup(campaign_id: int, recorded: Mapping[str, Any], settings: Settings) -> None:
    """A worker's refusal to send campaign ``campaign_id`` with another secret or other
    templates than it was stored with: its readers' links would not work, or their message
    would not be the one checked. Campaigns stored before setups were recorded pass."""
    if not recorded:
        return
    copy = "copy it from the workspace that stored the campaign"
    path = settings.workspace / SECRET_NAME
    if not path.is_file():
        raise InputError(f"campaign {campaign_id}: this workspace has no {SECRET_NAME}, which"
                         f" signs its readers' unsubscribe links: {copy}")  # fmt: skip
    if secret_id(load_secret(settings.workspace)) != recorded.get("secret"):
        raise InputError(f"campaign {campaign_id} was stored with another {path.name} than"
                         f" {path}: its readers' links would not work; {copy}")  # fmt: skip
    mine, theirs = templates_of(settings.templates_dir), recorded.get("templates", {})
    differing = sorted(name for name in mine.keys() | theirs.keys()
                       if mine.get(name) != theirs.get(name))  # fmt: skip
    if differing:
        raise InputError(f"campaign {campaign_id} was stored with other templates than this"
                         f" workspace's ({', '.join(differing)}): copy its templates/ from the"
                         " workspace that stored it, or install the same mailer")  # fmt: skip

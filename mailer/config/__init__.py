"""Settings: embedded defaults, then mailer.toml, then MAILER_* environment variables; frozen."""

from mailer.config.default_file import DOCS, render_default_file
from mailer.config.loading import CONFIG_NAME, ENV_PREFIX, environment_without_settings, load
from mailer.config.settings import (
    SECTIONS,
    AddressSettings,
    BounceSettings,
    DatabaseSettings,
    DkimSettings,
    NewsletterSettings,
    OutboxSettings,
    SendSettings,
    Settings,
    SmtpSettings,
    WebSettings,
)

__all__ = [
    "CONFIG_NAME",
    "DOCS",
    "ENV_PREFIX",
    "SECTIONS",
    "AddressSettings",
    "BounceSettings",
    "DatabaseSettings",
    "DkimSettings",
    "NewsletterSettings",
    "OutboxSettings",
    "SendSettings",
    "Settings",
    "SmtpSettings",
    "WebSettings",
    "environment_without_settings",
    "load",
    "render_default_file",
]

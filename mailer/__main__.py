"""Allow ``python -m mailer``."""

from mailer.cli import app

app(prog_name="mailer")

"""Allow ``python -m mailer``."""

from mailer.cli import main

main()

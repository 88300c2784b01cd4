"""mailer: a self-hosted newsletter and mailing-list tool."""

__version__ = "0.1.0"

"""A PostgreSQL url: checked to hold no password, in any of libpq's forms, and shown without one."""

from __future__ import annotations

import re

POSTGRES_URL = re.compile(r"postgres(?:ql)?://[^\s]*\Z")
# Where psycopg is not installed the text is all there is to go by: user:password@, or a
# password among the parameters.
PASSWORD_TEXT = re.compile(
    r"postgres(?:ql)?://[^/@]*:[^/@]*@|[?&](?:ssl)?pass(?:word|%77ord)=", re.IGNORECASE
)
SECRETS = ("password", "sslpassword")
PORTS = re.compile(r"\d*(?:,\d*)*")  # one a host; an empty one is the default
EXAMPLE = "postgresql://mailer@db.example.org/mailer"


def parts(url: str) -> dict[str, str] | None:
    """The url as libpq reads it (percent-escapes decoded, parameters as keys); None where it
    cannot read it, or where psycopg is not installed to say."""
    try:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None
    try:
        return {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except ProgrammingError:
        return None


def misread(found: dict[str, str]) -> bool:
    """libpq read part of the url where another part was meant: a '/', '?' or '@' left as it
    is in a user name or password ends the host early, and what follows becomes a port or
    the database's name, password and all (a user name may hold an '@': Azure's do)."""
    port = found.get("port", "")
    return bool(port and not PORTS.fullmatch(port)) or any(
        "@" in found.get(key, "") for key in ("host", "dbname")
    )


def problem(url: str) -> str | None:
    """Why ``url`` cannot be a workspace's database url, or None."""
    if not POSTGRES_URL.match(url):
        return f"must be a url such as {EXAMPLE}"
    password = "must not hold a password: give it in PGPASSWORD or ~/.pgpass instead"
    if PASSWORD_TEXT.search(url):
        return password
    found = parts(url)
    if found is None:
        return None  # psycopg says why when it is used (or that it is not installed)
    if any(found.get(key) for key in SECRETS):
        return password
    if misread(found):
        return (f"is not read as meant: percent-encode a '/', '?', '#' or '@' in a user name"
                f" (%2F, %3F, %23, %40); such as {EXAMPLE}")  # fmt: skip
    return None


def shown(url: str) -> str:
    """The url as messages show it: never a password, nor what may be one."""
    found = parts(url)
    if found is None or misread(found):
        return "postgresql://(an invalid url)"
    user = f"{found['user']}@" if found.get("user") else ""
    port = f":{found['port']}" if found.get("port") else ""
    return f"postgresql://{user}{found.get('host', '')}{port}/{found.get('dbname', '')}"

"""Which database a `--db` value names: a SQLite file (a path, or `sqlite:///path`) or a
PostgreSQL URL (`postgresql://...`), and how to print one without its password."""

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"
DatabaseName = Path | str
"""A SQLite file (a `Path`, or a string path) or a PostgreSQL URL (a string)."""


def writes_table(postgres: bool) -> str:
    """LangGraph's table of pending writes: each saver names it its own way."""
    return "checkpoint_writes" if postgres else "writes"


def is_postgres(db: DatabaseName) -> bool:
    """Whether `db` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def parse_database(value: str | Path) -> DatabaseName:
    """A `--db` / `HITL_DB` value as a `Path` (SQLite) or a URL string (PostgreSQL)."""
    if isinstance(value, Path):
        return value
    if value.startswith(POSTGRES_SCHEMES):
        return value
    if value.startswith(SQLITE_SCHEME):
        return Path(value.removeprefix(SQLITE_SCHEME))  # sqlite:////abs/path keeps its "/"
    if "://" in value:
        raise ValueError(
            f"{display(value)!r} is neither a SQLite file nor a PostgreSQL URL; give a path, "
            "sqlite:///path/to/file.sqlite or postgresql://user@host:5432/dbname"
        )
    return Path(value)


def display(db: DatabaseName) -> str:
    """`db` as it may be printed or logged: a URL's password is masked."""
    text = str(db)
    if not is_postgres(text):
        return text
    parts = urlsplit(text)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(query=query))


def scrub(text: str, db: DatabaseName) -> str:
    """`text` without the password of `db`'s URL, wherever it appears."""
    if not is_postgres(db):
        return text
    try:
        parts = urlsplit(str(db))
        secrets = [parts.password or ""]
    except ValueError:
        secrets = []
    secrets += re.findall(r"(?i)(?:^|&)password=([^&]*)", urlsplit(str(db)).query)
    secrets += re.findall(r"://[^:/@]*:([^@]*)@", str(db))  # even one urlsplit cannot read
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text

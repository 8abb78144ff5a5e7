"""Which database a `--db` value names: a SQLite file (a path, or `sqlite:///path`) or a
PostgreSQL URL (`postgresql://...`, with the size of this process's pool for it), and how to
print one without its password."""

import re
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"
POOL_SIZE = 10
"""Connections one process keeps to one PostgreSQL database unless its settings say otherwise."""


class PostgresUrl(str):
    """A PostgreSQL URL that carries how many connections this process may keep to it.

    The settings read the pool size with the URL (`HITL_PG_POOL_SIZE`) and hand both down
    as one value, so no saver or store between the composition root and the pool takes
    another parameter or looks for a setting of its own. It is a `str` (printed, compared and
    used as a key as the URL is); `str(url)` is the bare URL, without the pool size. A plain
    URL string means the default, `POOL_SIZE`.
    """

    pool_size: int

    def __new__(cls, url: str, *, pool_size: int = POOL_SIZE) -> Self:
        if pool_size < 1:
            raise ValueError(f"pool_size={pool_size}: a pool needs at least one connection")
        made = super().__new__(cls, url)
        made.pool_size = pool_size
        return made


DatabaseName = Path | str
"""A SQLite file (a `Path`, or a string path) or a PostgreSQL URL (a string, or a
`PostgresUrl` with its pool size)."""


def parse_pool_size(value: str | None) -> int:
    """A pool size as the settings give it (`HITL_PG_POOL_SIZE`; unset: `POOL_SIZE`), with a
    clear error for anything but a whole number of at least one."""
    text = value or str(POOL_SIZE)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"HITL_PG_POOL_SIZE={text!r}: give a whole number of connections, >= 1")
    return int(text)


def as_postgres(db: DatabaseName) -> PostgresUrl:
    """`db` (a PostgreSQL URL) with its pool size: its own, or the default for a plain string."""
    return db if isinstance(db, PostgresUrl) else PostgresUrl(str(db))


def writes_table(postgres: bool) -> str:
    """LangGraph's table of pending writes: each saver names it its own way."""
    return "checkpoint_writes" if postgres else "writes"


def is_postgres(db: DatabaseName) -> bool:
    """Whether `db` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def parse_database(value: str | Path, *, pool_size: int = POOL_SIZE) -> DatabaseName:
    """A `--db` / `HITL_DB` value as a `Path` (SQLite) or a `PostgresUrl` (with `pool_size`)."""
    if isinstance(value, Path):
        return value
    if value.startswith(POSTGRES_SCHEMES):
        return PostgresUrl(value, pool_size=pool_size)
    if value.startswith(SQLITE_SCHEME):
        return Path(value.removeprefix(SQLITE_SCHEME))  # sqlite:////abs/path keeps its "/"
    if "://" in value:
        raise ValueError(
            f"{display(value)!r} is neither a SQLite file nor a PostgreSQL URL; give a path, "
            "sqlite:///path/to/file.sqlite or postgresql://user@host:5432/dbname"
        )
    return Path(value)


def check_postgres_url(url: str) -> None:
    """`ValueError` naming what is wrong with a PostgreSQL URL that libpq would fill in with
    its defaults (the local socket, the OS user's database) instead of refusing."""
    problems = []
    try:
        parts = urlsplit(url)
        for host in parts.netloc.rpartition("@")[2].split(","):  # libpq's h1:p1,h2:p2 failover
            urlsplit(f"//{host}").port  # noqa: B018 -- reading it checks it
    except ValueError as e:
        problems.append(f"its host or port cannot be read ({e})")
    else:
        if not parts.path.strip("/") and not re.search(r"(?i)(^|&)dbname=[^&]", parts.query):
            problems.append("it names no database (the /dbname after the host)")
        if "@" in parts.netloc and not parts.username:
            problems.append(
                "it has a password but no user name" if parts.password else "its user name is empty"
            )
    if problems:
        raise ValueError(
            f"{display(url)!r} is not a usable PostgreSQL URL: {'; '.join(problems)}. Give "
            "postgresql://user[:password]@host[:port]/dbname (for a Unix socket: "
            "postgresql://user@/dbname?host=/var/run/postgresql)"
        )


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

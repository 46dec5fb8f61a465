"""Where a study's Optuna mirror lives: a storage URL, checked, masked and opened.

A spec's ``storage`` (or ``--storage``) is one of::

    sqlite:///path/to/file.db              (default: optuna.db in the study folder)
    postgresql://user:pass@host:5432/db    (psycopg 3; postgresql+DRIVER:// picks another)
    mysql://user:pass@host/db              (SQLAlchemy's driver; mysql+pymysql:// etc.)
    journal:///path/to/file.log            (Optuna's JournalFileBackend)

Credentials never reach a file: :func:`masked` is the form the study saves (a password
becomes ``***``; ``${env:VAR}`` stays as written, it holds no secret), and
:func:`resolve` turns a saved or given URL back into the real one, taking ``${env:VAR}``
from the environment and a masked password from ``PGPASSWORD``/``MYSQL_PWD`` (or
``SWEEPER_STORAGE_PASSWORD``). The syntax checks are pure (the spec uses them); only
:func:`open_storage` and :func:`check_storage` import Optuna and a database driver.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sweeper.errors import SweeperError

SCHEMES = ("sqlite", "postgresql", "mysql", "journal")
DEFAULT_FILE = "optuna.db"
MASK = "***"
CONNECT_TIMEOUT_S = 5
# The environment variable each server's own clients read for a password.
PASSWORD_ENV = {"postgresql": "PGPASSWORD", "mysql": "MYSQL_PWD"}
GENERIC_PASSWORD_ENV = "SWEEPER_STORAGE_PASSWORD"
# A driver module SQLAlchemy could not import -> the pip package that provides it.
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "asyncpg": "asyncpg",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "mysql": "mysql-connector-python",
    "mariadb": "mariadb",
}

# scheme[+driver]://[user[:password]@]rest  (the password may hold '@': the last one ends it)
_SERVER_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][\w]*)(?:\+(?P<driver>\w+))?://"
    r"(?:(?P<user>[^:/@]*)(?::(?P<password>.*))?@)?(?P<rest>[^@]*)$"
)
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.I)
_ALIASES = {"postgres": "postgresql"}


class StorageError(SweeperError):
    """A storage URL that cannot be used (its message never holds a password)."""


class NoPassword(StorageError):
    """A saved (masked) URL whose password is nowhere to be had."""


def where(source: str) -> str:
    """An error's place: ``file: storage``, or the flag itself."""
    return source if source.startswith("--") else f"{source}: storage"


def scheme_of(url: str) -> str:
    """The URL's scheme without its driver (``postgresql+psycopg://`` -> postgresql)."""
    head = url.split(":", 1)[0].split("+", 1)[0].lower()
    return _ALIASES.get(head, head)


def check_syntax(url: str) -> str:
    """``url`` if it names a known kind of storage in a usable form; else ValueError."""
    scheme = scheme_of(url)
    if ":" not in url or scheme not in SCHEMES:
        raise ValueError(
            f"unknown storage {masked(url)!r}; expected a URL starting with "
            "sqlite:///, postgresql://, mysql:// or journal:///"
        )
    if scheme == "journal":
        if "+" in url.split(":", 1)[0] or not journal_path(url):
            raise ValueError(f"expected journal:///path/to/file.log, got {masked(url)!r}")
        return url
    m = _SERVER_URL.match(url)
    if m is None or (scheme == "sqlite" and not m["rest"].startswith("/")):
        example = "sqlite:///path/to/file.db" if scheme == "sqlite" else f"{scheme}://user@host/db"
        raise ValueError(f"expected {example} (an SQLAlchemy URL), got {masked(url)!r}")
    return url


def journal_path(url: str) -> str:
    """The file of a ``journal:`` URL (``journal:///abs/f.log`` -> /abs/f.log)."""
    rest = url.split(":", 1)[1]
    return "/" + rest[3:] if rest.startswith("///") else rest.removeprefix("//")


def masked(url: str) -> str:
    """``url`` with its password shown as ``***`` (``${env:VAR}`` references stay)."""
    url = _QUERY_PASSWORD.sub(lambda m: m[1] + MASK, url)
    m = _SERVER_URL.match(url)
    if m is None or m["password"] is None or _ENV_REF.fullmatch(m["password"] or ""):
        return url
    start, end = m.span("password")
    return url[:start] + MASK + url[end:]


def is_masked(url: str) -> bool:
    m = _SERVER_URL.match(url)
    return bool(m and m["password"] == MASK) or f"password={MASK}" in url.lower()


def absolute(url: str, cwd: str | Path | None = None) -> str:
    """File storages with a path relative to ``cwd`` made absolute (a study is resumed from
    anywhere); other URLs as they are."""
    base = Path(cwd or os.getcwd())
    scheme = scheme_of(url)
    if scheme == "journal":
        path = journal_path(url)
        return f"journal://{(base / path).resolve()}" if not path.startswith("/") else url
    if scheme == "sqlite":
        path = url.split(":///", 1)[1]
        if path and not path.startswith("/") and path != ":memory:":
            return f"sqlite:///{(base / path).resolve()}"
    return url


def default_url(study_path: str | Path) -> str:
    return f"sqlite:///{(Path(study_path) / DEFAULT_FILE).resolve()}"


def study_url(
    storage: str | None, study_path: str | Path, source: str, env: Mapping[str, str] | None = None
) -> str:
    """The real URL of a study's mirror: ``storage`` (from its saved spec) resolved, or
    the folder's own ``optuna.db``."""
    return default_url(study_path) if not storage else resolve(storage, source, env)


def default_file(url: str, study_path: str | Path) -> Path | None:
    """The study folder's own ``optuna.db`` when ``url`` is it, else None."""
    path = (Path(study_path) / DEFAULT_FILE).resolve()
    return path if url == f"sqlite:///{path}" else None


def resolve(url: str, source: str, env: Mapping[str, str] | None = None) -> str:
    """The real URL: ``${env:VAR}`` from the environment, a masked password from the
    server's password variable; a one-line :class:`StorageError` naming ``source`` else."""
    env = os.environ if env is None else env

    def value(m: re.Match[str], quoted: bool = False) -> str:
        if m[1] not in env:
            raise StorageError(f"{where(source)}: {masked(url)} uses ${{env:{m[1]}}}, not set")
        return quote(env[m[1]], safe="") if quoted else env[m[1]]

    real = url
    m = _SERVER_URL.match(url)
    if m and m["password"]:  # a password is URL-quoted: it may hold '@', ':' or '/'
        start, end = m.span("password")
        password = _ENV_REF.sub(lambda r: value(r, quoted=True), m["password"])
        real = url[:start] + password + url[end:]
    real = _ENV_REF.sub(value, real)
    if is_masked(real):
        names = [n for n in (PASSWORD_ENV.get(scheme_of(url)), GENERIC_PASSWORD_ENV) if n]
        found = next((env[n] for n in names if env.get(n)), None)
        if found is None:
            raise NoPassword(
                f"{where(source)}: the password of {masked(url)} is not saved with the "
                f"study; pass --storage URL or set {' or '.join(names)}"
            )
        real = real.replace(f":{MASK}@", f":{quote(found, safe='')}@", 1)
        real = re.sub(rf"(?i)([?&]password=){re.escape(MASK)}", lambda m: m[1] + found, real)
    return real


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy gets: ``postgresql://`` (no driver named) uses psycopg 3."""
    head, sep, tail = url.partition("://")
    if head.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg{sep}{tail}"
    return url


def open_storage(url: str, source: str = "storage", *, reader: bool = False) -> Any:
    """The Optuna storage object for a real (resolved) URL; errors are one line.

    A ``reader`` (status) skips making the tables and Optuna's schema-version check, as
    optuna-dashboard does: it only counts.
    """
    import optuna

    if scheme_of(url) == "journal":
        from optuna.storages.journal import JournalFileBackend

        path = Path(journal_path(url))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise StorageError(f"{where(source)}: {path}: {exc.strerror or exc}") from None
    kwargs: dict[str, Any] = {}
    if scheme_of(url) != "sqlite":
        kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(
            sqlalchemy_url(url),
            engine_kwargs=kwargs,
            skip_compatibility_check=reader,
            skip_table_creation=reader,
        )
    except ImportError as exc:
        raise _missing_driver(url, exc, source) from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors, made one line
        raise StorageError(f"{where(source)}: {masked(url)}: {one_line(exc, url)}") from None


def check_storage(url: str, study_name: str, owner: str | Path, source: str) -> None:
    """Refuse, before any work, a storage that cannot be reached, or that holds a study of
    this name made by another sweeper study (or by something else)."""
    storage = open_storage(url, source)
    try:
        owner_of = study_owner(storage, study_name)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors, made one line
        raise StorageError(f"{where(source)}: {masked(url)}: {one_line(exc, url)}") from None
    finally:
        close_storage(storage)
    mine = str(Path(owner).resolve())
    # A study whose folder is gone (moved, deleted) may be taken over: it is rebuilt.
    if owner_of not in (None, mine) and (not owner_of or Path(owner_of, "study.json").is_file()):
        by = f"the sweeper study at {owner_of}" if owner_of else "something other than sweeper"
        raise StorageError(
            f"{where(source)}: {masked(url)} already holds an Optuna study named "
            f"{study_name!r}, made by {by}; choose another name or storage"
        )


OWNER_ATTR = "sweeper_study"


def study_owner(storage: Any, study_name: str) -> str | None:
    """The study folder recorded in the storage's study of that name ("" when the study
    has no such record; None when there is no study of that name)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return str(storage.get_study_user_attrs(study_id).get(OWNER_ATTR, ""))


def count_trials(url: str, study_name: str) -> int | None:
    """How many trials the storage's study of that name holds (None: no such study).

    A database is asked two small queries through SQLAlchemy alone: no trial is loaded,
    and neither Optuna's storage nor its migrations are imported (status stays quick)."""
    if scheme_of(url) == "journal":  # a journal is replayed whole: Optuna counts
        storage = open_storage(url, reader=True)
        try:
            return int(storage.get_n_trials(storage.get_study_id_from_name(study_name)))
        except KeyError:
            return None
        finally:
            close_storage(storage)
    if scheme_of(url) == "sqlite":
        return _count_sqlite(url.partition(":///")[2], study_name)
    import sqlalchemy as sa

    kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    engine = sa.create_engine(sqlalchemy_url(url), **kwargs)
    try:
        with engine.connect() as conn:
            study_id = conn.execute(
                sa.text("SELECT study_id FROM studies WHERE study_name = :name"),
                {"name": study_name},
            ).scalar()
            if study_id is None:
                return None
            query = sa.text("SELECT COUNT(*) FROM trials WHERE study_id = :id")
            return int(conn.execute(query, {"id": study_id}).scalar_one())
    finally:
        engine.dispose()


def _count_sqlite(path: str, study_name: str) -> int | None:
    """:func:`count_trials` of an SQLite file, opened read-only with the standard library."""
    import sqlite3
    from urllib.parse import quote

    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
    try:
        found = conn.execute(
            "SELECT study_id FROM studies WHERE study_name = ?", (study_name,)
        ).fetchone()
        if found is None:
            return None
        query = "SELECT COUNT(*) FROM trials WHERE study_id = ?"
        return int(conn.execute(query, (found[0],)).fetchone()[0])
    finally:
        conn.close()


def mirror_summary(
    storage: str | None, study_path: str | Path, name: str, real: str | None = None
) -> dict[str, Any]:
    """Where a study's mirror lives (masked) and how many trials it holds (None, with a
    note, when it cannot be read: a missing password, an unreachable server). ``real`` is
    the real URL where the caller has it (the end of ``run``)."""
    path = Path(study_path)
    shown = masked(storage) if storage else str(path / DEFAULT_FILE)
    out: dict[str, Any] = {"storage": shown, "trials": None, "note": ""}
    try:
        url = real or study_url(storage, path, str(path / "spec.yaml"))
        file = default_file(url, path)
        if file is not None and not file.is_file():
            out["note"] = "not made yet"
            return out
        out["trials"] = count_trials(url, name)
        out["note"] = "no study of this name yet" if out["trials"] is None else ""
    except NoPassword:
        names = [n for n in (PASSWORD_ENV.get(scheme_of(shown)), GENERIC_PASSWORD_ENV) if n]
        out["note"] = f"not read: no password here (set {' or '.join(names)})"
    except Exception as exc:  # noqa: BLE001 - a status line, not a reason to fail
        out["note"] = f"not read: {one_line(exc, real or '').split(f'{shown}: ')[-1]}"
    return out


def mask_text(text: str) -> str:
    """Any ``scheme://user:password@`` in free text (a usage error's echo) masked."""
    return re.sub(r"(\b[A-Za-z][\w+]*://[^:/@\s]*:)[^\s]*@", rf"\1{MASK}@", text)


def close_storage(storage: Any) -> None:
    """Close an RDB storage's connections (Optuna keeps them pooled)."""
    storage = getattr(storage, "_backend", storage)  # Optuna's cached storage wrapper
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def one_line(exc: BaseException, url: str = "") -> str:
    """The first line of a database error, any password in it masked."""
    inner = getattr(exc, "orig", None) or exc
    text = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
    m = _SERVER_URL.match(url)
    if m and m["password"] and m["password"] != MASK:
        text = text.replace(m["password"], MASK)
    return text


def _missing_driver(url: str, exc: ImportError, source: str) -> StorageError:
    cause = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
    module = (getattr(cause, "name", None) or "").split(".")[0]
    package = DRIVER_PACKAGES.get(module, module or "the database driver")
    hint = " (or mysql+pymysql:// with pip install pymysql)" if module == "MySQLdb" else ""
    return StorageError(
        f"{where(source)}: {masked(url)} needs the Python module {module or '?'}: "
        f"pip install {package}{hint}"
    )

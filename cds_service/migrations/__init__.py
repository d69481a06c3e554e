"""The database schema's versions (Alembic): upgrade, current revision, and the check `serve` makes at start.

Scripts live in versions/ and describe the schema with explicit operations, never through the store's models, so
an old revision stays what it was when the models change. A SQLite file (one host, `make run`) is brought up to
date by the service itself; a shared PostgreSQL database is upgraded once per release by `cds-service db upgrade`
(the compose migration step, the Kubernetes Job) and a server refuses to start on one that is behind.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

SCRIPTS = Path(__file__).resolve().parent


class SchemaBehind(RuntimeError):
    """The database is not at the revision this code needs, and the service will not change it by itself."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def ensure_schema(engine: Engine) -> None:
    """SQLite: upgrade to the head revision. Any other database: raise SchemaBehind unless it is at the head."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    where = engine.url.render_as_string(hide_password=True)
    raise SchemaBehind(
        f"the database {where} is at schema revision {current or 'none'}, this service needs {head}: "
        "run `cds-service db upgrade` (with the same CDS_DATABASE_URL) first"
    )


__all__ = ["SchemaBehind", "current_revision", "ensure_schema", "head_revision", "upgrade"]

"""A fresh PostgreSQL database per use, on the server every development and CI machine runs (127.0.0.1:5432,
trust auth). Unreachable: skipped on a developer's machine, a failure in CI (CI=true), where it must run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def admin_connection() -> psycopg.Connection:
    try:
        return psycopg.connect(ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must run in CI on 127.0.0.1:5432: {exc}")
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")


@contextmanager
def fresh_database() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database, dropped afterwards (with whatever is still connected)."""
    name = f"cds_test_{uuid.uuid4().hex[:12]}"
    admin = admin_connection()
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()

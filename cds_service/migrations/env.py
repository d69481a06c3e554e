"""Alembic's entry point: runs the scripts on the connection that cds_service.migrations hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only cds_service.migrations drives Alembic
    raise RuntimeError("run migrations through `cds-service db upgrade`")
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

"""The schema as `create_all` made it before migrations existed: created here only where a table is missing.

A database made by an earlier release (with or without the four issued_cards indexes dropped in round 2) already
has these tables and is left as it is; 0002 takes both kinds to the same place.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "issued_cards" not in existing:
        op.create_table(
            "issued_cards",
            sa.Column("uuid", sa.String(36), primary_key=True),
            sa.Column("service_id", sa.String(100), nullable=False),
            sa.Column("hook_instance", sa.String(64), nullable=False),
            sa.Column("indicator", sa.String(16), nullable=False),
            sa.Column("tier", sa.String(40), nullable=False),
            sa.Column("rules", sa.JSON(), nullable=False),
            sa.Column("findings", sa.JSON(), nullable=False),
            sa.Column("patient_hash", sa.String(64), nullable=False),
            sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "feedback" not in existing:
        op.create_table(
            "feedback",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("card_uuid", sa.String(64), nullable=False, index=True),
            sa.Column("service_id", sa.String(100), nullable=False, index=True),
            sa.Column("known_card", sa.String(36), sa.ForeignKey("issued_cards.uuid"), nullable=True),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
            sa.Column("override_system", sa.String(255), nullable=True),
            sa.Column("override_code", sa.String(100), nullable=True),
            sa.Column("override_comment", sa.Text(), nullable=True),
            sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "service_secrets" not in existing:
        op.create_table(
            "service_secrets",
            sa.Column("name", sa.String(50), primary_key=True),
            sa.Column("value", sa.String(200), nullable=False),
        )
    if "used_token_ids" not in existing:
        op.create_table(
            "used_token_ids",
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("expires_at", sa.BigInteger(), nullable=False, index=True),
        )

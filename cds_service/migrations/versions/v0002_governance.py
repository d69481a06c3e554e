"""Governance and repeat alerts: the old issued_cards indexes go, cards keep their evidence key, feedback is stored
once (dedupe key), overrides become acknowledgements looked up by patient on the next chart open.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Made by create_all before round 2 (docs/performance.md: 3/4 of the insert's cost on SQLite); nothing reads them.
ROUND_1_INDEXES = ("service_id", "hook_instance", "patient_hash", "issued_at")


def upgrade() -> None:
    present = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("issued_cards")}
    for column in ROUND_1_INDEXES:
        if f"ix_issued_cards_{column}" in present:
            op.drop_index(f"ix_issued_cards_{column}", table_name="issued_cards")
    # sha256 of the card's tier and its evidence (each shown Observation with what it said): no index, the
    # acknowledgements table is what the hook path reads.
    op.add_column("issued_cards", sa.Column("evidence_key", sa.String(64), nullable=True))
    op.add_column("feedback", sa.Column("dedupe_key", sa.String(64), nullable=True))
    op.create_index("ux_feedback_dedupe_key", "feedback", ["dedupe_key"], unique=True)
    op.create_table(
        "acknowledgements",
        sa.Column("card_uuid", sa.String(36), primary_key=True),
        sa.Column("patient_hash", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(40), nullable=False),
        sa.Column("evidence_key", sa.String(64), nullable=False),
        sa.Column("reason_code", sa.String(100), nullable=True),
        sa.Column("overridden_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_acknowledgements_patient_hash", "acknowledgements", ["patient_hash"])

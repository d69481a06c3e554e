"""The card log keeps the content release each card was made with (issue 14: the knowledge version of a card is its
content version plus its rule ids, both in the card's extension and in the log an audit reads).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before this revision keep null: their content version was not recorded.
    op.add_column("issued_cards", sa.Column("content_version", sa.String(40), nullable=True))

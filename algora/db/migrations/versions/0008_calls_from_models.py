"""keys for calls made from inside models"""

from __future__ import annotations

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    pass  # filled in by the change that needs these tables


def downgrade() -> None:
    pass

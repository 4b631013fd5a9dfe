"""Write the next migration by comparing the models with a scratch database at head.

    python -m core.persistence.migrations.new_revision 0004 "what changed"

Released revisions never change: a schema change is always a new revision.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from core.persistence.schema import MIGRATIONS_DIR


def main(rev_id: str, message: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            command.revision(config, message=message, autogenerate=True, rev_id=rev_id)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m core.persistence.migrations.new_revision REV_ID MESSAGE")
    main(sys.argv[1], sys.argv[2])

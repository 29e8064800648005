"""The shared demo cache in the database: a result computed by one worker is served by all.
Used with PostgreSQL; with SQLite the app stays read-only and the runner's memory cache is
the only one."""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.models import DemoCache

log = logging.getLogger(__name__)
TABLE = DemoCache.__table__  # type: ignore[attr-defined]


class ResultStore:
    """Get and put demo results keyed by canonical config, torch version and device."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, config_key: str, torch_version: str, device: str) -> dict[str, Any] | None:
        query = select(TABLE.c.result).where(
            TABLE.c.config_key == config_key,
            TABLE.c.torch_version == torch_version,
            TABLE.c.device == device,
        )
        try:
            with self.engine.connect() as conn:
                stored = conn.execute(query).scalar()
        except Exception:  # the shared cache is an optimisation: never fail a run for it
            log.exception("demo cache lookup failed")
            return None
        return json.loads(stored) if stored else None

    def put(self, config_key: str, result: dict[str, Any]) -> None:
        row = {
            "config_key": config_key,
            "torch_version": result["torch_version"],
            "device": result["device"],
            "result": json.dumps({k: v for k, v in result.items() if k != "cached"}),
            "created_at": datetime.now(UTC).isoformat(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(pg_insert(TABLE).values(**row).on_conflict_do_nothing())
        except Exception:
            log.exception("demo cache write failed")

    def close(self) -> None:
        self.engine.dispose()

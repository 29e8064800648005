"""Where trained weights are kept: a file under GLOSSARY_CACHE_DIR and, on PostgreSQL, a row
every worker reads, keyed by what they were trained from. Writes are atomic (a file renamed
into place, one INSERT), so a reader never sees half a model."""

from __future__ import annotations

import io
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.models import LMWeights

log = logging.getLogger(__name__)
TABLE = LMWeights.__table__  # type: ignore[attr-defined]


def to_bytes(payload: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def from_bytes(blob: bytes) -> dict[str, Any]:
    # weights_only: a cached file is data, never code to run
    loaded: dict[str, Any] = torch.load(io.BytesIO(blob), weights_only=True)
    return loaded


class FileWeights:
    """<cache_dir>/lm/<key>.pt"""

    def __init__(self, cache_dir: Path) -> None:
        self.dir = cache_dir / "lm"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.pt"

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, blob: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        os.replace(tmp, self.path(key))


class DatabaseWeights:
    """The lmweights table (PostgreSQL): one trained model shared by every worker."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> bytes | None:
        try:
            with self.engine.connect() as conn:
                blob = conn.execute(select(TABLE.c.payload).where(TABLE.c.key == key)).scalar()
        except Exception:  # a shared copy is an optimisation: train locally instead
            log.exception("language-model weights lookup failed")
            return None
        return bytes(blob) if blob is not None else None

    def put(self, key: str, blob: bytes, weights_hash: str) -> None:
        row = {
            "key": key,
            "weights_hash": weights_hash,
            "payload": blob,
            "created_at": datetime.now(UTC).isoformat(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(pg_insert(TABLE).values(**row).on_conflict_do_nothing())
        except Exception:
            log.exception("language-model weights write failed")

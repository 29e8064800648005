"""When the database must be reloaded: the loader and schema versions, and a fingerprint of
every data file."""

import hashlib
from pathlib import Path

# Bump when loading or rendering changes, so existing databases are reloaded on start.
LOADER_VERSION = "7"
# Bump when a table changes shape: the next load rebuilds the tables.
SCHEMA_VERSION = "4"


def data_files(data_dir: Path) -> list[Path]:
    """Every file whose content feeds the database, in a stable order."""
    files = [data_dir / "categories.toml", data_dir / "organizations.toml"]
    files += sorted((data_dir / "terms").glob("*.toml"))
    files += sorted((data_dir / "illustrations").glob("*.svg"))
    return files


def fingerprint(data_dir: Path) -> str:
    """Hash of the loader version and every data file: changes whenever a reload is due."""
    digest = hashlib.sha256(LOADER_VERSION.encode())
    for path in data_files(data_dir):
        if path.exists():
            digest.update(str(path.relative_to(data_dir)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()

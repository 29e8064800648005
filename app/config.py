"""Settings read from the environment (prefix GLOSSARY_) or a .env file."""

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can change without touching code."""

    model_config = SettingsConfigDict(env_prefix="GLOSSARY_", env_file=".env", extra="ignore")

    # Relative SQLite paths are resolved against the working directory, like any CLI tool.
    database_url: str = "sqlite:///data/glossary.db"
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Build the database from data/ at start-up when it is missing or stale.
    build_on_start: bool = True
    # Entry shown on the home page; falls back to the first term when missing.
    featured_term: str = "residual-connection"
    # Strict-Transport-Security max-age in seconds; 0 sends no HSTS header (plain-HTTP dev).
    hsts_max_age: int = Field(default=0, ge=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Keep rendered GET responses in memory until the content changes.
    response_cache: bool = True
    cache_max_age: int = Field(default=300, ge=0)
    demo_device: Literal["auto", "cpu", "cuda"] = "auto"
    demo_warmup: bool = True
    # Demo worker processes this server starts (each imports torch and runs one experiment at
    # a time on one thread): "auto" leaves one core to the pages; 0 starts none, for a web
    # tier whose workers run elsewhere (`glossary worker`, PostgreSQL only).
    demo_workers: int | Literal["auto"] = "auto"
    # Runs one client may have queued or running at once (more: 429 with Retry-After).
    demo_client_cap: int = Field(default=2, ge=1)
    # Visitors' runs that may wait for a worker at once (more: 503 with Retry-After).
    demo_max_queued: int = Field(default=32, ge=0)
    demo_time_budget_s: float = Field(default=10.0, gt=0)
    # "module:function" the workers run instead of the real engine (tests script runs with it).
    demo_engine: str | None = None
    # Peer addresses of reverse proxies whose X-Forwarded-For names the client (comma-separated).
    trusted_proxies: str = ""
    # Trained language-model weights live here (an empty directory: the next start trains).
    cache_dir: Path = Path("data/cache")
    # The language model's size: full on a server, tiny for tests (trains in seconds).
    lm_size: Literal["full", "tiny"] = "full"
    # Load or train the language model at start-up; false: its experiments answer 503.
    lm_start: bool = True
    # Host names /mcp answers besides loopback and `host` (comma-separated; "name" or
    # "name:port"): the public name behind a proxy. Others get 421 (DNS-rebinding protection).
    mcp_allowed_hosts: str = ""
    # Open MCP sessions at once over HTTP (more: 503 until one ends or idles out).
    mcp_max_sessions: int = Field(default=1000, ge=1)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("database_url must start with sqlite:// or postgresql")
        return value

    def worker_count(self, cores: int | None = None) -> int:
        """demo_workers, with "auto" resolved: every core but one (at least one)."""
        if self.demo_workers != "auto":
            return max(0, self.demo_workers)
        cores = cores if cores is not None else os.cpu_count() or 1
        return max(1, cores - 1)

    def proxies(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    def mcp_hosts(self) -> list[str]:
        return [h.strip() for h in self.mcp_allowed_hosts.split(",") if h.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own Settings instead)."""
    return Settings()

"""A real uvicorn server in a background thread, for tests that need real HTTP."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import PATIENCE_S


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(settings: Settings) -> Iterator[str]:
    """Serve create_app(settings) on 127.0.0.1 and yield its base URL."""
    with serving(create_app(settings)) as url:
        yield url


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve an app (already built, perhaps adjusted by the test) on 127.0.0.1."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=PATIENCE_S)
        assert not thread.is_alive(), "uvicorn did not shut down"

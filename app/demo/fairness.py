"""Fair to every visitor: who a request comes from, and a queue that serves clients in turn.

The queue keeps one line per client and takes one run from each client in rotation, so a
client with many runs waiting cannot push a newcomer back: the newcomer's run is at most one
turn away. Background work (the warm-up) runs only when no visitor's run is waiting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

from starlette.requests import HTTPConnection

T = TypeVar("T")
BACKGROUND = "background"  # the client name of runs nobody asked for


def client_of(request: HTTPConnection, trusted_proxies: Iterable[str] = ()) -> str:
    """The peer's address; behind a configured proxy, the address that proxy saw (the last
    one it appended to X-Forwarded-For). An unconfigured header is ignored: anyone can send it."""
    peer = request.client.host if request.client is not None else "unknown"
    if peer in set(trusted_proxies):
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:64]
    return peer


class FairQueue(Generic[T]):
    """Items waiting per client, served one client at a time in rotation."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[T]] = {}  # insertion order is the rotation

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def push(self, client: str, item: T) -> None:
        self._lines.setdefault(client, deque()).append(item)

    def pop(self) -> T | None:
        """The next item: the first client in the rotation gives one, then goes to the back."""
        for client in self._rotation():
            line = self._lines.pop(client)
            item = line.popleft()
            if line:
                self._lines[client] = line  # to the back of the rotation
            return item
        return None

    def remove(self, item: T) -> bool:
        for client, line in self._lines.items():
            if item in line:
                line.remove(item)
                if not line:
                    del self._lines[client]
                return True
        return False

    def move(self, item: T, client: str) -> None:
        """Give a waiting item to another client's line (a visitor joins a warm-up run)."""
        if self.remove(item):
            self.push(client, item)

    def order(self) -> list[T]:
        """Every waiting item in the order pop() would return them."""
        lines = {client: list(line) for client, line in self._lines.items()}
        background = lines.pop(BACKGROUND, [])
        served: list[T] = []
        depth = 0
        while any(depth < len(line) for line in lines.values()):
            served.extend(line[depth] for line in lines.values() if depth < len(line))
            depth += 1
        return served + background

    def _rotation(self) -> list[str]:
        clients = [c for c in self._lines if c != BACKGROUND]
        return clients + ([BACKGROUND] if BACKGROUND in self._lines else [])

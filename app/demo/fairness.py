"""Fair to every visitor: who a request comes from, and a queue that serves clients in turn.

The queue keeps one line per client and serves the client it served least recently first
(a newcomer before anyone served already), so a client with many runs waiting cannot push
a newcomer back: the newcomer's run is next. Background work (the warm-up) runs only when no
visitor's run is waiting.
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
        self._lines: dict[str, deque[T]] = {}  # insertion order breaks ties
        self._served: dict[str, int] = {}  # client -> when it was last served
        self._tick = 0

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def push(self, client: str, item: T) -> None:
        self._lines.setdefault(client, deque()).append(item)

    def pop(self) -> T | None:
        """The next item: from the client served least recently."""
        for client in self._rotation():
            line = self._lines[client]
            item = line.popleft()
            if not line:
                del self._lines[client]
            self._tick += 1
            self._served[client] = self._tick
            self._forget_old()
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
        lines = {client: list(self._lines[client]) for client in self._rotation()}
        background = lines.pop(BACKGROUND, [])
        served: list[T] = []
        depth = 0
        while any(depth < len(line) for line in lines.values()):
            served.extend(line[depth] for line in lines.values() if depth < len(line))
            depth += 1
        return served + background

    def _rotation(self) -> list[str]:
        """Clients with waiting items, least recently served first, background last."""
        clients = sorted(
            (c for c in self._lines if c != BACKGROUND), key=lambda c: self._served.get(c, 0)
        )
        return clients + ([BACKGROUND] if BACKGROUND in self._lines else [])

    def _forget_old(self, keep: int = 4096) -> None:
        """Bound the memory of who was served: forget the longest-idle clients with no line."""
        if len(self._served) <= keep:
            return
        idle = sorted((t, c) for c, t in self._served.items() if c not in self._lines)
        for _, client in idle[: len(self._served) - keep]:
            del self._served[client]

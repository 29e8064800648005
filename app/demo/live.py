"""One run as its listeners see it: an ordered log of events any number of readers follow.

The log lives on the web process's event loop. A run's first event is `queued` (its place
in the queue), then `progress` items, then one terminal `result` or `error`. Each event has
an id "<run>.<seq>", so a reader that reconnects with Last-Event-ID gets what it missed.
When the last reader leaves a run that has not finished, `on_abandoned` is called (the
runner cancels it at its next step); runs nobody asked for (the warm-up's) are `kept`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

TERMINAL = ("result", "error")
_serials = itertools.count(1)


@dataclass(frozen=True)
class RunEvent:
    run: int  # which run of this process (a retried config is a new run)
    seq: int  # 1, 2, ... within the run
    event: str  # queued | progress | result | error
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.run}.{self.seq}"


def parse_last_event_id(value: str | None) -> tuple[int, int] | None:
    """(run, seq) from a Last-Event-ID header; None when absent or not ours."""
    if not value:
        return None
    run, _, seq = value.strip().partition(".")
    if not (run.isdigit() and seq.isdigit()) or len(value) > 40:
        return None
    return int(run), int(seq)


class LiveRun:
    """The event log of one run, with its readers."""

    def __init__(
        self,
        key: str,
        client: str,
        on_abandoned: Callable[[LiveRun], None],
        kept: bool = False,
    ) -> None:
        self.key, self.client, self.kept = key, client, kept
        self.serial = next(_serials)
        self.events: list[RunEvent] = []
        self.listeners = 0
        self.abandoned = False
        self.joined_elsewhere = False  # another web process started it (PostgreSQL)
        self.from_background = kept  # a warm-up run (a visitor may have taken it over)
        self._on_abandoned = on_abandoned
        self._changed = asyncio.Event()

    def source_for(self, opened_as: str) -> str:
        """What a reader who opened it as `opened_as` should be told the result's source is."""
        return "joined" if opened_as == "computed" and self.joined_elsewhere else opened_as

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].event in TERMINAL

    @property
    def started(self) -> bool:
        return any(e.event != "queued" for e in self.events)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Append an event (on the loop); nothing is added after the terminal one."""
        if self.finished:
            return
        self.events.append(RunEvent(self.serial, len(self.events) + 1, event, data))
        self._changed.set()
        self._changed = asyncio.Event()

    def since(self, last: tuple[int, int] | None) -> int:
        """How many events a reader that last saw `last` has already had."""
        if last is None or last[0] != self.serial:
            return 0
        return min(last[1], len(self.events))

    async def follow(self, skip: int = 0) -> AsyncGenerator[RunEvent]:
        """Every event from the (skip+1)th on, as they come, until the terminal one."""
        self.listeners += 1
        try:
            seen = skip
            while True:
                while seen < len(self.events):
                    event = self.events[seen]
                    seen += 1
                    yield event
                    if event.event in TERMINAL:
                        return
                if self.finished:  # a reader that had every event, the terminal one too
                    return
                await self._changed.wait()
        finally:
            self.listeners -= 1
            if self.listeners == 0 and not self.finished and not self.kept:
                self.abandoned = True
                self._on_abandoned(self)

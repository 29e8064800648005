"""One requested run, as its reader sees it: a cached result, or progress then a result.

`Run.events()` is the one async iterator both demo routes read; a reader that leaves early
(a closed stream, a cancelled task) stops the run at its next step.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from app.demo.result import DemoResult, Progress

POLL_S = 0.05  # how often a run's reader polls is_disconnected while the run is in flight


class Run:
    """One requested run: a cached result, or a run admitted to the pool."""

    def __init__(
        self,
        result: DemoResult | None = None,
        future: Future[DemoResult] | None = None,
        events: asyncio.Queue[Progress] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self._result, self._future, self._events = result, future, events
        self._cancel = cancel or threading.Event()

    def cancel(self) -> None:
        """Stop the run at its next step (its outcome is then never read)."""
        self._cancel.set()
        if self._future is not None:
            self._future.add_done_callback(_retrieve)

    # Results are shared with the cache (copying 60 KB of charts for every cached answer cost
    # more than the answer): readers serialize them and never edit them.
    async def events(
        self, is_disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> AsyncIterator[Progress | DemoResult]:
        """Progress items in order, then the DemoResult; stops the run if abandoned."""
        if self._result is not None:
            yield self._result.model_copy(update={"cached": True})
            return
        assert self._future is not None and self._events is not None
        fut = asyncio.wrap_future(self._future)
        events = self._events
        finished = False
        try:
            while True:
                # the worker queues its events before the result (call_soon_threadsafe is
                # FIFO), so once fut is done every event is already in `events`
                while not events.empty():
                    yield events.get_nowait()
                if fut.done():
                    finished = True
                    yield fut.result().model_copy(update={"cached": False})
                    return
                getter: asyncio.Future[Progress] = asyncio.ensure_future(events.get())
                waiting: set[asyncio.Future[Any]] = {fut, getter}
                try:
                    done, _ = await asyncio.wait(
                        waiting, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    if not getter.done():
                        getter.cancel()
                if getter in done and not getter.cancelled():
                    yield getter.result()
                if is_disconnected is not None and not fut.done() and await is_disconnected():
                    self._cancel.set()
        finally:
            if not finished:  # the reader left, was cancelled, or the run failed
                self.cancel()


def _retrieve(fut: Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()

"""Errors of the live demo that the routes turn into responses (no torch import here)."""

from __future__ import annotations


class DemoInputError(ValueError):
    """A demo parameter is out of bounds; `.param` names it, `.errors` lists every problem."""

    def __init__(self, param: str, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.param = param
        self.message = message
        self.errors: list[dict[str, str]] = errors or [{"param": param, "message": message}]


class RunCancelled(Exception):
    """The run was stopped because its client went away (should_stop() returned True)."""


class RunTimedOut(Exception):
    """The run used up its wall-clock budget and was stopped."""


class GateFull(Exception):
    """Too many runs are running or queued; the client should retry after retry_after_s."""

    def __init__(self, retry_after_s: int, message: str | None = None) -> None:
        super().__init__(message or f"the demo is busy; retry in about {retry_after_s} s")
        self.retry_after_s = retry_after_s


class DemoDeviceError(Exception):
    """The device failed the run (e.g. CUDA out of memory) or is not available."""


class ClientOverCap(Exception):
    """This client already has as many runs queued or running as one client may (429)."""

    def __init__(self, cap: int, retry_after_s: int) -> None:
        super().__init__(
            f"you already have {cap} experiment run(s) queued or running; each visitor may "
            f"have {cap} at once, so the queue serves everyone in turn"
        )
        self.cap, self.retry_after_s = cap, retry_after_s


class WorkerLost(Exception):
    """The worker process running this run died (killed, crashed, or stopped by the watchdog)."""


class NoWorkers(Exception):
    """No demo worker is alive to run anything (pages keep serving)."""

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

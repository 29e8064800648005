"""The live demo under /api/demo: presets, one run as JSON, or a run as server-sent events.
Torch work happens in the runner's worker threads, never on the event loop."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.config import Settings
from app.db import is_sqlite, make_engine
from app.demo.errors import DemoDeviceError, GateFull, RunCancelled, RunTimedOut
from app.demo.presets import (
    PRESETS,
    DemoConfig,
    DemoInputError,
    presets_catalog,
    resolve_config,
)
from app.views import DemoPreset, DemoResult, ErrorBody

log = logging.getLogger("glossary.demo")

# Every parameter any preset takes (the fixed contract's names plus e.g. branch_scale).
PARAMS = tuple(dict.fromkeys(spec.name for p in PRESETS.values() for spec in p.params))
ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "A parameter is unknown or out of range"},
    503: {"model": ErrorBody, "description": "The demo is busy (see Retry-After) or failed"},
}
router = APIRouter(prefix="/api/demo", tags=["demo"], responses=ERRORS)


def start_runner(app: FastAPI, settings: Settings) -> Any:
    """Create the app's runner and warm the presets' default results in the background."""
    from app.demo.runner import DemoRunner
    from app.demo.store import ResultStore

    # With PostgreSQL every worker shares results through the database; SQLite stays
    # read-only to the web process, so there the cache is per process.
    store = None
    if not is_sqlite(settings.database_url):
        store = ResultStore(make_engine(settings.database_url))
    runner = DemoRunner(
        device=settings.demo_device,
        max_running=settings.demo_max_running,
        max_queued=settings.demo_max_queued,
        time_budget_s=settings.demo_time_budget_s,
        store=store,
    )
    app.state.demo_runner = runner
    if settings.demo_warmup:
        runner.start_warmup([resolve_config(name, {}) for name in PRESETS])
    return runner


def _error(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(status=status, message=message, details=details)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _config(request: Request) -> DemoConfig | JSONResponse:
    query = request.query_params
    unknown = sorted(set(query) - {"preset", *PARAMS})
    if unknown:
        return _error(
            422,
            f"Unknown parameter {unknown[0]!r}; allowed: preset, " + ", ".join(PARAMS),
            {"parameter": unknown[0]},
        )
    try:
        return resolve_config(query.get("preset"), {name: query.get(name) for name in PARAMS})
    except DemoInputError as exc:
        return _error(422, str(exc), {"parameter": exc.param, "errors": exc.errors})


def _run_failure(exc: Exception) -> JSONResponse | None:
    """Map the runner's exceptions to HTTP answers (None: not one of ours)."""
    if isinstance(exc, GateFull):
        retry = max(1, int(exc.retry_after_s))
        return _error(
            503,
            f"The demo is busy; try again in {retry} s.",
            {"retry_after_s": retry},
            {"Retry-After": str(retry)},
        )
    if isinstance(exc, RunTimedOut):
        return _error(
            503,
            f"The run took longer than its time budget: {exc}",
            {"reason": "time_budget"},
            {"Retry-After": "5"},
        )
    if isinstance(exc, DemoDeviceError):
        return _error(503, str(exc), {"reason": "device"}, {"Retry-After": "2"})
    return None


# Query parameters are declared for the OpenAPI page; the values are read raw and validated
# by resolve_config so that every message names the parameter and its allowed range.
QueryStr = Annotated[str | None, Query(max_length=100)]


def demo_config(
    request: Request,
    preset: QueryStr = None,
    depth: QueryStr = None,
    width: QueryStr = None,
    activation: QueryStr = None,
    init: QueryStr = None,
    norm: QueryStr = None,
    steps: QueryStr = None,
    batch_size: QueryStr = None,
    lr: QueryStr = None,
    seed: QueryStr = None,
    task: QueryStr = None,
    branch_scale: QueryStr = None,
) -> DemoConfig | JSONResponse:
    """The run's canonical config, or the 422 answer naming the bad parameter."""
    return _config(request)


ConfigDep = Annotated[DemoConfig | JSONResponse, Depends(demo_config)]


@router.get("/presets", response_model=list[DemoPreset])
def list_presets() -> list[dict[str, Any]]:
    """The presets: variants, parameters with defaults and bounds."""
    return presets_catalog()


@router.get("", response_model=DemoResult)
async def run_demo(request: Request, config: ConfigDep) -> Response:
    """Run one experiment (or answer it from the cache) and return every number."""
    if isinstance(config, JSONResponse):
        return config
    try:
        result = await request.app.state.demo_runner.run(
            config, is_disconnected=request.is_disconnected
        )
    except RunCancelled:
        return Response(status_code=499)
    except Exception as exc:
        failure = _run_failure(exc)
        if failure is None:
            raise
        return failure
    return JSONResponse(result, headers={"cache-control": "public, max-age=3600"})


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`progress` events, then one `result` (or `error`) event",
        }
    },
)
async def stream_demo(request: Request, config: ConfigDep) -> Response:
    """The same run as server-sent events: progress per recorded step, then the result."""
    if isinstance(config, JSONResponse):
        return config
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def on_progress(event: dict[str, Any]) -> None:
        await queue.put(_event("progress", event))

    async def produce() -> dict[str, Any]:
        try:
            result: dict[str, Any] = await request.app.state.demo_runner.run(
                config, on_progress=on_progress, is_disconnected=request.is_disconnected
            )
            return result
        finally:
            await queue.put(None)

    run_task = asyncio.create_task(produce())
    # Wait for the first event so that a full gate or a bad device is a proper HTTP error.
    first = await queue.get()
    if first is None:
        await asyncio.wait([run_task])
        error = run_task.exception()
        failure = _run_failure(error) if isinstance(error, Exception) else None
        if failure is not None:
            return failure

    async def events() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield first
                while (item := await queue.get()) is not None:
                    yield item
            try:
                yield _event("result", await run_task)
            except Exception as exc:
                failure = _run_failure(exc)
                message = (
                    json.loads(bytes(failure.body))
                    if failure is not None
                    else {"status": 500, "message": "The run failed on our side.", "details": None}
                )
                if failure is None:
                    log.exception("demo run failed")
                yield _event("error", message)
        finally:
            if not run_task.done():
                run_task.cancel()
                with contextlib.suppress(BaseException):
                    await run_task

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )

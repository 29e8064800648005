"""The live demo under /api/demo: the catalog, one run as JSON, or a run as server-sent events.
Torch work happens in the runner's worker threads, never on the event loop."""

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.db import is_sqlite, make_engine
from app.demo.catalog import EXPERIMENTS, catalog, defaults, resolve
from app.demo.errors import DemoDeviceError, DemoInputError, GateFull, RunCancelled, RunTimedOut
from app.demo.experiment import Experiment
from app.demo.params import ExperimentParams
from app.demo.result import DemoResult, Progress
from app.demo.run import Run
from app.demo.runner import DemoRunner
from app.views import DemoPreset, ErrorBody

log = logging.getLogger("glossary.demo")

ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "A parameter is unknown or out of range"},
    503: {"model": ErrorBody, "description": "The demo is busy (see Retry-After) or failed"},
}
# The stream's errors are JSON too: say so, or its response_class would relabel them.
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
STREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    code: answer | {"content": _JSON_ERROR} for code, answer in ERRORS.items()
}
router = APIRouter(prefix="/api/demo", tags=["demo"], responses=ERRORS)


def start_runner(app: FastAPI, settings: Settings) -> DemoRunner:
    """Create the app's runner and warm every experiment's default result in the background."""
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
        runner.start_warmup([(e, defaults(name)) for name, e in EXPERIMENTS.items()])
    return runner


# ----------------------------------------------------------------------------- errors


def error_response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(status=status, message=message, details=details)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def run_failure(exc: Exception) -> JSONResponse | None:
    """The HTTP answer to one of the demo's exceptions (None: not one of ours)."""
    if isinstance(exc, DemoInputError):
        return error_response(422, exc.message, {"parameter": exc.param, "errors": exc.errors})
    if isinstance(exc, GateFull):
        retry = max(1, int(exc.retry_after_s))
        return error_response(
            503,
            f"The demo is busy; try again in {retry} s.",
            {"retry_after_s": retry},
            {"Retry-After": str(retry)},
        )
    if isinstance(exc, RunTimedOut):
        return error_response(
            503,
            f"The run took longer than its time budget: {exc}",
            {"reason": "time_budget"},
            {"Retry-After": "5"},
        )
    if isinstance(exc, DemoDeviceError):
        return error_response(503, str(exc), {"reason": "device"}, {"Retry-After": "2"})
    return None


def install_demo_error_handlers(app: FastAPI) -> None:
    """One handler answers every demo error the routes and their dependencies raise."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        answer = run_failure(exc)
        assert answer is not None
        return answer

    for kind in (DemoInputError, GateFull, RunTimedOut, DemoDeviceError):
        app.add_exception_handler(kind, handle)


# ----------------------------------------------------------------------------- requests


class DemoQuery(BaseModel):
    """?preset= names the experiment; its own parameters follow (see /api/demo/presets)."""

    model_config = ConfigDict(extra="allow")

    preset: str | None = Field(
        None,
        max_length=100,
        description="The experiment, e.g. residual-vs-plain; its parameters (depth=, lr=, "
        "seed=...) are further query parameters, listed with bounds by GET /api/demo/presets",
    )


def demo_request(query: Annotated[DemoQuery, Query()]) -> tuple[Experiment, ExperimentParams]:
    """The experiment and its validated parameters (DemoInputError -> 422)."""
    raw = {name: str(value) for name, value in (query.model_extra or {}).items()}
    return resolve(query.preset, raw)


async def open_run(
    request: Request, wanted: Annotated[tuple[Experiment, ExperimentParams], Depends(demo_request)]
) -> Run:
    """The run, cached or admitted (GateFull -> 503 before any byte is sent)."""
    runner: DemoRunner = request.app.state.demo_runner
    return await runner.open(*wanted)


async def open_quiet_run(
    request: Request, wanted: Annotated[tuple[Experiment, ExperimentParams], Depends(demo_request)]
) -> Run:
    """The same for the JSON route, whose run need not draw live charts."""
    runner: DemoRunner = request.app.state.demo_runner
    return await runner.open(*wanted, progress=False)


RunDep = Annotated[Run, Depends(open_run)]
QuietRunDep = Annotated[Run, Depends(open_quiet_run)]


# ----------------------------------------------------------------------------- routes


@router.get("/presets", response_model=list[DemoPreset])
def list_presets() -> list[dict[str, Any]]:
    """Every experiment: family, terms, variants, parameters with bounds, claims."""
    return catalog()


@router.get("", response_model=DemoResult)
async def run_demo(request: Request, run: QuietRunDep) -> Response:
    """Run one experiment (or answer it from the cache) and return every number."""
    try:
        async for item in run.events(request.is_disconnected):
            if isinstance(item, DemoResult):
                # already a validated DemoResult: serialize it once, without a second check
                return Response(
                    item.model_dump_json(),
                    media_type="application/json",
                    headers={"cache-control": "public, max-age=3600"},
                )
    except RunCancelled:  # the client went away: nobody reads this answer
        return Response(status_code=499)
    raise RuntimeError("a run ended without a result")  # pragma: no cover


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`progress` events, then one `result` (or `error`) event",
        },
        **STREAM_ERRORS,
    },
)
async def stream_demo(request: Request, run: RunDep) -> AsyncIterator[ServerSentEvent]:
    """The same run as server-sent events: progress per recorded step, then the result."""
    try:
        async for item in run.events(request.is_disconnected):
            name = "progress" if isinstance(item, Progress) else "result"
            yield ServerSentEvent(event=name, data=item)
    except RunCancelled:  # the client went away
        return
    except Exception as exc:
        failure = run_failure(exc)
        if failure is None:
            log.exception("demo run failed")
            body: Any = {"status": 500, "message": "The run failed on our side.", "details": None}
        else:
            body = failure.body
            body = ErrorBody.model_validate_json(bytes(body)).model_dump()
        yield ServerSentEvent(event="error", data=body)

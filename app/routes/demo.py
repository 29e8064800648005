"""The live demo under /api/demo: the catalog, one run as JSON, or a run as server-sent events.
Torch work happens in the runner's worker threads, never on the event loop."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.db import is_sqlite, make_engine
from app.demo.catalog import EXPERIMENTS, catalog, defaults, resolve
from app.demo.errors import DemoDeviceError, DemoInputError, GateFull, RunCancelled, RunTimedOut
from app.demo.experiment import Experiment
from app.demo.lm.config import SPECS
from app.demo.lm.service import LanguageModelService, ModelFailed, ModelTraining
from app.demo.params import ExperimentParams
from app.demo.result import DemoResult, Progress
from app.demo.run import Run
from app.demo.runner import DemoRunner
from app.errors import error_response
from app.views import DemoPreset, ErrorBody

log = logging.getLogger("glossary.demo")
TRAINING_POLL_S = 0.5  # how often a waiting stream reports the model's training

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
    lm = start_language_model(settings)
    runner = DemoRunner(
        lm=lm,
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


def start_language_model(settings: Settings) -> LanguageModelService | None:
    """The server's language model: loaded from the cache or trained, in the background."""
    if not settings.lm_start:
        return None
    database = None if is_sqlite(settings.database_url) else make_engine(settings.database_url)
    service = LanguageModelService(
        SPECS[settings.lm_size], settings.data_dir, settings.cache_dir, database
    )
    service.start()
    return service


# ----------------------------------------------------------------------------- errors


def demo_error(exc: Exception) -> tuple[ErrorBody, dict[str, str]] | None:
    """The answer to one of the demo's exceptions, as a body and headers (None: not ours)."""
    if isinstance(exc, DemoInputError):
        details = {"parameter": exc.param, "errors": exc.errors}
        return ErrorBody(status=422, message=exc.message, details=details), {}
    if isinstance(exc, GateFull):
        retry = max(1, int(exc.retry_after_s))
        message = f"The demo is busy; try again in {retry} s."
        body = ErrorBody(status=503, message=message, details={"retry_after_s": retry})
        return body, {"Retry-After": str(retry)}
    if isinstance(exc, RunTimedOut):
        message = f"The run took longer than its time budget: {exc}"
        body = ErrorBody(status=503, message=message, details={"reason": "time_budget"})
        return body, {"Retry-After": "5"}
    if isinstance(exc, ModelTraining):
        retry = exc.retry_after_s
        message = f"The language model this experiment runs on is training; try again in {retry} s."
        training: dict[str, Any] = {
            "reason": "model_training",
            "retry_after_s": retry,
            "progress": exc.progress.model_dump(exclude={"train_loss", "val_loss"}),
        }
        return ErrorBody(status=503, message=message, details=training), {"Retry-After": str(retry)}
    if isinstance(exc, ModelFailed):
        body = ErrorBody(status=503, message=str(exc), details={"reason": "model_failed"})
        return body, {"Retry-After": "60"}
    if isinstance(exc, DemoDeviceError):
        body = ErrorBody(status=503, message=str(exc), details={"reason": "device"})
        return body, {"Retry-After": "2"}
    return None


def install_demo_error_handlers(app: FastAPI) -> None:
    """One handler answers every demo error the routes and their dependencies raise."""

    async def handle(request: Request, exc: Exception) -> Response:
        answer = demo_error(exc)
        assert answer is not None
        body, headers = answer
        response = error_response(request, body.status, body.message, body.details)
        response.headers.update(headers)
        return response

    for kind in (
        DemoInputError,
        GateFull,
        RunTimedOut,
        DemoDeviceError,
        ModelTraining,
        ModelFailed,
    ):
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


def run_opener(progress: bool) -> Callable[..., Awaitable[Run]]:
    """A dependency opening the request's run, cached or admitted (GateFull -> 503 before
    any byte is sent); progress=False for a route nobody watches live."""

    async def open_run(
        request: Request,
        wanted: Annotated[tuple[Experiment, ExperimentParams], Depends(demo_request)],
    ) -> Run:
        runner: DemoRunner = request.app.state.demo_runner
        return await runner.open(*wanted, progress=progress)

    return open_run


class ModelPending:
    """A stream's run that waits for the language model: training events first, then the run."""

    def __init__(self, runner: DemoRunner, wanted: tuple[Experiment, ExperimentParams]) -> None:
        self.runner, self.wanted = runner, wanted

    async def events(
        self, is_disconnected: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[Progress | DemoResult]:
        assert self.runner.lm is not None
        while True:
            try:
                run = await self.runner.open(*self.wanted, progress=True)
                break
            except ModelTraining as exc:
                p = exc.progress
                yield Progress(
                    phase="model_training",
                    step=p.step,
                    total_steps=p.total_steps,
                    charts=[p.chart()],
                )
            if await is_disconnected():
                raise RunCancelled("the client went away while the model trained")
            await asyncio.sleep(TRAINING_POLL_S)
        async for item in run.events(is_disconnected):
            yield item


async def open_stream(
    request: Request,
    wanted: Annotated[tuple[Experiment, ExperimentParams], Depends(demo_request)],
) -> Run | ModelPending:
    """The stream's run; while the language model trains, one that waits for it."""
    runner: DemoRunner = request.app.state.demo_runner
    try:
        return await runner.open(*wanted, progress=True)
    except ModelTraining:
        return ModelPending(runner, wanted)


RunDep = Annotated[Run | ModelPending, Depends(open_stream)]
QuietRunDep = Annotated[Run, Depends(run_opener(progress=False))]


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
        answer = demo_error(exc)
        if answer is None:
            log.exception("demo run failed")
            body = ErrorBody(status=500, message="The run failed on our side.", details=None)
        else:
            body = answer[0]
        yield ServerSentEvent(event="error", data=body.model_dump())

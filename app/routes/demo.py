"""The live demo under /api/demo: the catalog, one run as JSON, or a run as server-sent events,
or as a standalone PyTorch script. The web process never runs an experiment (its runner
queues runs for worker processes) and never imports torch (scripts are built from text)."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.demo.catalog import EXPERIMENTS, catalog, defaults, resolve
from app.demo.errors import (
    ClientOverCap,
    DemoDeviceError,
    DemoInputError,
    GateFull,
    NoWorkers,
    RunCancelled,
    RunTimedOut,
)
from app.demo.experiment import Experiment
from app.demo.fairness import client_of
from app.demo.jobs import describe_error
from app.demo.live import RunEvent, parse_last_event_id
from app.demo.lm.service import ModelFailed, ModelTraining
from app.demo.params import ExperimentParams
from app.demo.result import DemoResult, Progress
from app.demo.runner import DemoRunner, Opened
from app.demo.script import MEDIA_TYPE as SCRIPT_TYPE
from app.demo.script import NeedsModel, filename, script_for
from app.demo.script_lm import ServerModel
from app.demo.setup import build_runner
from app.errors import error_response
from app.views import DemoPreset, ErrorBody

log = logging.getLogger("glossary.demo")
TRAINING_POLL_S = 0.5  # how often a waiting stream reports the model's training
DISCONNECT_POLL_S = 0.1  # how often a waiting reader checks that its client is still there

ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "A parameter is unknown or out of range"},
    429: {
        "model": ErrorBody,
        "description": "This client already has as many runs queued or running as one may "
        "(see Retry-After)",
    },
    503: {"model": ErrorBody, "description": "The demo is busy (see Retry-After) or failed"},
}
# The stream's errors are JSON too: say so, or its response_class would relabel them.
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
STREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    code: answer | {"content": _JSON_ERROR} for code, answer in ERRORS.items()
}
router = APIRouter(prefix="/api/demo", tags=["demo"], responses=ERRORS)


async def start_runner(app: FastAPI, settings: Settings) -> DemoRunner:
    """Create the app's runner (and its workers) and queue every default run as warm-up."""
    runner = build_runner(settings)
    await runner.start()
    app.state.demo_runner = runner
    if settings.demo_warmup:
        runner.start_warmup([(e, defaults(name)) for name, e in EXPERIMENTS.items()])
    return runner


# ----------------------------------------------------------------------------- errors


def error_answer(exc: Exception) -> tuple[ErrorBody, dict[str, str]] | None:
    """The answer to one of the demo's exceptions, as a body and headers (None: not ours)."""
    body = describe_error(exc)
    return None if body is None else _answer(body)


def _answer(body: dict[str, Any]) -> tuple[ErrorBody, dict[str, str]]:
    details = body.get("details") or {}
    retry = details.get("retry_after_s") if isinstance(details, dict) else None
    headers = {"Retry-After": str(max(1, int(retry)))} if retry is not None else {}
    return ErrorBody.model_validate(body), headers


def install_demo_error_handlers(app: FastAPI) -> None:
    """One handler answers every demo error the routes and their dependencies raise."""

    async def handle(request: Request, exc: Exception) -> Response:
        answer = error_answer(exc)
        assert answer is not None
        body, headers = answer
        response = error_response(request, body.status, body.message, body.details)
        response.headers.update(headers)
        return response

    for kind in (
        DemoInputError,
        ClientOverCap,
        GateFull,
        NoWorkers,
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


Wanted = tuple[Experiment, ExperimentParams]


def demo_request(query: Annotated[DemoQuery, Query()]) -> Wanted:
    """The experiment and its validated parameters (DemoInputError -> 422)."""
    raw = {name: str(value) for name, value in (query.model_extra or {}).items()}
    return resolve(query.preset, raw)


async def open_request(request: Request, wanted: Wanted, progress: bool) -> Opened:
    """Join, answer from the cache, or queue the request's run (429/503 before any byte)."""
    runner: DemoRunner = request.app.state.demo_runner
    settings: Settings = request.app.state.settings
    return await runner.open(
        *wanted,
        client=client_of(request, settings.proxies()),
        last_event=parse_last_event_id(request.headers.get("last-event-id")),
        progress=progress,
    )


async def open_quiet(request: Request, wanted: Annotated[Wanted, Depends(demo_request)]) -> Opened:
    return await open_request(request, wanted, progress=False)


class ModelPending:
    """A stream's run that waits for the language model: training events first, then the run."""

    def __init__(self, request: Request, wanted: Wanted) -> None:
        self.request, self.wanted = request, wanted

    async def opened(self) -> AsyncIterator[Progress | Opened]:
        while True:
            try:
                yield await open_request(self.request, self.wanted, progress=True)
                return
            except ModelTraining as exc:
                p = exc.progress
                yield Progress(
                    phase="model_training",
                    step=p.step,
                    total_steps=p.total_steps,
                    charts=[p.chart()],
                )
            if await self.request.is_disconnected():
                raise RunCancelled("the client went away while the model trained")
            await asyncio.sleep(TRAINING_POLL_S)


async def open_stream(
    request: Request, wanted: Annotated[Wanted, Depends(demo_request)]
) -> Opened | ModelPending:
    """The stream's run; while the language model trains, one that waits for it."""
    try:
        return await open_request(request, wanted, progress=True)
    except ModelTraining:
        return ModelPending(request, wanted)


async def follow(
    opened: Opened, is_disconnected: Callable[[], Awaitable[bool]]
) -> AsyncIterator[RunEvent]:
    """The run's events from the reader's place on; raises RunCancelled when the client
    leaves (the run stops when it was its last reader)."""
    assert opened.run is not None
    events = opened.run.follow(opened.skip)
    step: asyncio.Future[RunEvent] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(events))
            while True:
                done, _ = await asyncio.wait({step}, timeout=DISCONNECT_POLL_S)
                if done:
                    break
                if await is_disconnected():
                    raise RunCancelled("the client went away")
            try:
                yield step.result()
            except StopAsyncIteration:
                return
    finally:
        if step is None or step.done():
            await events.aclose()
        else:  # the generator is inside step: cancelling it closes the generator there
            step.cancel()


def with_source(data: dict[str, Any], source: str) -> dict[str, Any]:
    return data | {"source": source, "cached": source == "cache"}


# ----------------------------------------------------------------------------- routes


@router.get("/presets", response_model=list[DemoPreset])
def list_presets() -> list[dict[str, Any]]:
    """Every experiment: family, terms, variants, parameters with bounds, claims, and this
    deployment's compute budget."""
    return catalog()


def _json(data: dict[str, Any], headers: dict[str, str]) -> Response:
    return Response(json.dumps(data), headers=headers, media_type="application/json")


@router.get("", response_model=DemoResult)
async def run_demo(request: Request, opened: Annotated[Opened, Depends(open_quiet)]) -> Response:
    """Run one experiment (or join the same run in flight, or answer it from the cache) and
    return every number; `source` says which."""
    cache = {"cache-control": "public, max-age=3600"}
    if opened.result is not None:
        return Response(
            opened.result.model_copy(update={"cached": True, "source": "cache"}).model_dump_json(),
            media_type="application/json",
            headers=cache,
        )
    try:
        async for event in follow(opened, request.is_disconnected):
            if event.event == "result":
                source = opened.run.source_for(opened.source)  # type: ignore[union-attr]
                return _json(with_source(event.data, source), headers=cache)
            if event.event == "error":
                body, headers = _answer(event.data)
                response = error_response(request, body.status, body.message, body.details)
                response.headers.update(headers)
                return response
    except RunCancelled:  # the client went away: nobody reads this answer
        return Response(status_code=499)
    raise RuntimeError("a run ended without a result")  # pragma: no cover


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`queued` (the run's place in the queue), `progress` events, then "
            "one `result` (or `error`) event. Events have ids: reconnect with Last-Event-ID "
            "to get the ones missed",
        },
        **STREAM_ERRORS,
    },
)
async def stream_demo(
    request: Request, pending: Annotated[Opened | ModelPending, Depends(open_stream)]
) -> AsyncIterator[ServerSentEvent]:
    """The same run as server-sent events: queued, progress per recorded step, the result."""
    try:
        if isinstance(pending, ModelPending):
            opened = None
            async for item in pending.opened():
                if isinstance(item, Progress):
                    yield ServerSentEvent(event="progress", data=item)
                else:
                    opened = item
            assert opened is not None
        else:
            opened = pending
        if opened.result is not None:
            result = opened.result.model_copy(update={"cached": True, "source": "cache"})
            yield ServerSentEvent(event="result", data=result)
            return
        async for event in follow(opened, request.is_disconnected):
            data = event.data
            if event.event == "result":
                data = with_source(data, opened.run.source_for(opened.source))  # type: ignore[union-attr]
            yield ServerSentEvent(event=event.event, data=data, id=event.id)
    except RunCancelled:  # the client went away
        return
    except Exception as exc:
        answer = error_answer(exc)
        if answer is None:
            log.exception("demo run failed")
            body = ErrorBody(status=500, message="The run failed on our side.", details=None)
        else:
            body = answer[0]
        yield ServerSentEvent(event="error", data=body.model_dump())


@router.get(
    "/script",
    response_class=Response,
    responses={
        200: {
            "content": {SCRIPT_TYPE: {"schema": {"type": "string"}}},
            "description": "One Python file (an attachment, <preset>.py) that needs only torch: "
            "run it to reproduce this run on the CPU; it prints the `variants` of GET /api/demo "
            "for the same parameters as JSON",
        },
        409: {
            "model": ErrorBody,
            "content": _JSON_ERROR,
            "description": "The experiment runs on the server's language model, and a script "
            "cannot train that model as the server does (the message says why)",
        },
        422: STREAM_ERRORS[422],
    },
)
def demo_script(request: Request, wanted: Annotated[Wanted, Depends(demo_request)]) -> Response:
    """The run as a standalone PyTorch script: the server's own engine code for it, its
    parameters (editable at the top), and the worker's CPU set-up; nothing of this site."""
    experiment, params = wanted
    model = _server_model(request)
    try:
        text = script_for(experiment, params, str(request.base_url), model)
    except NeedsModel as exc:
        return error_response(request, 409, str(exc), {"preset": experiment.name})
    # A script made before the model's weights were known lacks their hash: not kept.
    final = not experiment.needs_model or (model is not None and model.weights_hash)
    return Response(
        text,
        media_type=SCRIPT_TYPE,
        headers={
            "content-disposition": f'attachment; filename="{filename(experiment)}"',
            "cache-control": "public, max-age=3600" if final else "no-store",
        },
    )


def _server_model(request: Request) -> ServerModel | None:
    """The language model a script trains: the spec and text the workers train, and the hash
    of their weights once one reports them ready."""
    settings: Settings = request.app.state.settings
    if not settings.lm_start:
        return None
    progress = request.app.state.demo_runner.model_progress()
    ready = progress is not None and progress.state == "ready"
    weights = progress.weights_hash if ready else None
    return ServerModel(settings.lm_size, settings.data_dir, weights)

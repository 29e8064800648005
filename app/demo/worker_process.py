"""A demo worker process: the only place the server imports torch.

Spawned by app/demo/pool.py (in the web process on the embedded default, in `glossary
worker` with PostgreSQL). It talks to its parent over two one-way pipes:

  parent -> worker   ("run", job) | ("cancel", job_id) | ("stop",)
  worker -> parent   JSON arrays: ("hello", info) once ready, ("model", progress) while the
                     language model loads or trains, ("event", job_id, name, data) per event

It runs one job at a time on one torch thread, under the wall-clock budget (a job whose
cancel arrives stops at its next step). When the parent goes away its pipe closes and the
worker exits.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import queue
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("glossary.worker")
MODEL_REPORT_S = 0.5  # how often the model's training progress goes to the parent
MODEL_WAIT_S = 30.0  # a job that needs the model waits this long for this worker's copy


def main(inbox: Connection, outbox: Connection, options: dict[str, Any]) -> None:
    """The worker's life: start up, then run jobs until told to stop or orphaned."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    send_lock = threading.Lock()

    def send(*message: Any) -> None:
        # JSON, not pickles: unpickling could import torch (a torch.__version__ is a torch
        # type) or run code in the web process; JSON is data only
        payload = json.dumps(message).encode()
        with send_lock:
            try:
                outbox.send_bytes(payload)
            except (BrokenPipeError, OSError):  # the parent is gone
                os._exit(0)

    import torch

    from app.demo.calibration import calibrate
    from app.demo.executor import error_data
    from app.demo.jobs import Job, execute_job
    from app.demo.params import set_budget_scale

    torch.set_num_threads(options.get("threads") or 1)
    device, error = _device(options["device"], torch)
    speed = 1.0
    seconds = None
    if error is None and options.get("calibrate", True):
        measured = calibrate(device)
        speed, seconds = max(1.0, measured["speed"]), measured["seconds"]
        set_budget_scale(speed)
    engine = _engine(options.get("engine"))
    _preload_engines()  # a visitor's first run should not pay for importing them
    lm = _start_model(options.get("lm"), send)
    send(
        "hello",
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": device,
            "torch_version": str(torch.__version__),
            "speed": speed,
            "calibration_s": seconds,
            "error": error,
        },
    )

    jobs: queue.Queue[Job | None] = queue.Queue()
    cancelled: set[str] = set()

    def read() -> None:
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):  # the parent died: nothing left to work for
                os._exit(0)
            if message[0] == "run":
                jobs.put(Job.from_wire(message[1]))
            elif message[0] == "cancel":
                cancelled.add(message[1])
            elif message[0] == "stop":
                jobs.put(None)
                return

    threading.Thread(target=read, name="worker-inbox", daemon=True).start()
    while (job := jobs.get()) is not None:
        if error is not None:
            from app.demo.errors import DemoDeviceError

            send("event", job.id, "error", error_data(DemoDeviceError(error)))
            continue
        try:
            model = _model_for(job, lm)
            result = execute_job(
                job,
                engine,
                device,
                emit=_emitter(job.id, send),
                cancelled=functools.partial(set.__contains__, cancelled, job.id),
                budget_s=options["budget_s"],
                lm=model,
            )
            send("event", job.id, "result", result.model_dump(mode="json"))
        except Exception as exc:
            send("event", job.id, "error", error_data(exc))  # logs it when it is a bug
        finally:
            cancelled.discard(job.id)


def _emitter(job_id: str, send: Any) -> Any:
    def emit(progress: Any) -> None:
        send("event", job_id, "progress", progress.model_dump(mode="json"))

    return emit


def _device(requested: str, torch: Any) -> tuple[str, str | None]:
    """The device runs use, or an error: "cuda" without CUDA fails clearly, never silently
    falls back (a misconfigured GPU worker is noticed, not hidden)."""
    if requested == "cuda" and not torch.cuda.is_available():
        return "cpu", (
            "device 'cuda' was requested but torch sees no CUDA device "
            f"(torch {torch.__version__}); use device 'auto' or 'cpu'"
        )
    if requested == "cpu" or not torch.cuda.is_available():
        return "cpu", None
    return "cuda", None


def _preload_engines() -> None:
    from app.demo.catalog import EXPERIMENTS
    from app.demo.experiment import load_engine

    for experiment in EXPERIMENTS.values():
        load_engine(experiment)


def _engine(name: str | None) -> Any:
    """experiment.execute, or "module:function" (tests drive engines of their own)."""
    if not name:
        from app.demo.experiment import execute

        return execute
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def _start_model(spec: dict[str, Any] | None, send: Any) -> Any:
    """The language model service (loads, or trains once across workers), reporting its
    progress to the parent until it is ready or failed."""
    if spec is None:
        return None
    from pathlib import Path

    from app.db import make_engine
    from app.demo.lm.config import SPECS
    from app.demo.lm.service import LanguageModelService

    database = make_engine(spec["database_url"]) if spec.get("database_url") else None
    service = LanguageModelService(
        SPECS[spec["size"]], Path(spec["data_dir"]), Path(spec["cache_dir"]), database
    )
    service.start()

    def report() -> None:
        last = None
        while True:
            progress = service.progress()
            if progress != last:
                send("model", progress.model_dump(mode="json"))
                last = progress
            if progress.state in ("ready", "failed"):
                return
            time.sleep(MODEL_REPORT_S)

    threading.Thread(target=report, name="worker-model", daemon=True).start()
    return service


def _model_for(job: Any, service: Any) -> Any:
    """The trained model for a job that needs it (this worker's copy may be a moment behind
    the one the web process saw ready)."""
    if not job.needs_model:
        return None
    if service is None:
        from app.demo.errors import DemoDeviceError

        raise DemoDeviceError("this worker runs no language model (GLOSSARY_LM_START is false)")
    from app.demo.lm.service import ModelTraining

    try:
        return service.trained()
    except ModelTraining:
        pass
    try:
        return service.wait(MODEL_WAIT_S)
    except TimeoutError:
        return service.trained()  # raises ModelTraining with its progress

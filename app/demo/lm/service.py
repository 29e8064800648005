"""The server's language model: found in the cache, or trained in the background.

`start()` returns at once. A thread reads the glossary's text, computes the key (text, the
model's code, torch version, sizes), and loads the weights from GLOSSARY_CACHE_DIR or the
database, or trains them (one worker at a time on PostgreSQL, under an advisory lock) and
stores them in both. Until it is done, `trained()` raises ModelTraining with the progress,
which the routes turn into a 503 (JSON) or training events (the stream).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from app.demo.lm.config import LMSpec
from app.demo.result import Chart, Series

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from app.demo.lm.text import LMText
    from app.demo.lm.training import TrainedLM

log = logging.getLogger(__name__)
CODE_FILES = ("config.py", "gpt.py", "text.py", "training.py")
State = Literal["waiting", "training", "ready", "failed"]


class TrainingProgress(BaseModel):
    """Where the model is: for the 503's details and the stream's training events."""

    state: State
    step: int = 0
    total_steps: int = 0
    seconds: float = 0.0
    train_loss: list[tuple[float, float]] = []  # (step, nats), thinned
    val_loss: list[tuple[float, float]] = []
    weights_hash: str | None = None
    source: Literal["trained", "file", "database"] | None = None  # where the weights came from
    error: str | None = None

    def chart(self) -> Chart:
        last = f"{self.train_loss[-1][1]:.2f}" if self.train_loss else "-"
        return Chart(
            id="model_training",
            kind="line",
            title="Training the glossary's language model",
            x_label="step",
            y_label="cross-entropy (nats per token)",
            series=[
                Series(label="training loss", points=list(self.train_loss)),
                Series(label="validation loss", points=list(self.val_loss), style="points"),
            ],
            finding=f"Step {self.step} of {self.total_steps}: training loss {last}.",
        )


class ModelTraining(Exception):
    """The model is not trained yet; retry after retry_after_s."""

    def __init__(self, progress: TrainingProgress, retry_after_s: int) -> None:
        super().__init__(
            f"the language model is training (step {progress.step} of "
            f"{progress.total_steps}); retry in about {retry_after_s} s"
        )
        self.progress, self.retry_after_s = progress, retry_after_s


class ModelFailed(Exception):
    """Training failed; the message says why."""


def most_advanced(models: list[TrainingProgress]) -> TrainingProgress | None:
    """The model furthest along among several workers' (ready, then training, by step)."""
    order = {"ready": 3, "training": 2, "waiting": 1, "failed": 0}
    return max(models, key=lambda m: (order.get(m.state, 0), m.step), default=None)


def ready_hash(progress: TrainingProgress | None) -> str:
    """The weights hash of a ready model, or the exception that says why there is none
    (the web process asks this of the progress its workers report)."""
    if progress is not None and progress.state == "ready" and progress.weights_hash:
        return progress.weights_hash
    raise not_ready(progress or TrainingProgress(state="waiting"))


def not_ready(progress: TrainingProgress) -> ModelTraining | ModelFailed:
    if progress.state == "failed":
        return ModelFailed(f"the language model could not be trained: {progress.error}")
    return ModelTraining(progress, retry_after(progress))


def retry_after(p: TrainingProgress) -> int:
    """Seconds until training should be done, from its pace so far."""
    if p.step == 0 or p.total_steps == 0:
        return 5
    per_step = p.seconds / p.step
    return max(1, min(60, round(per_step * (p.total_steps - p.step)) + 1))


def code_digest() -> str:
    digest = hashlib.sha256()
    for name in CODE_FILES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def model_key(spec: LMSpec, text_digest: str, torch_version: str) -> str:
    """What the weights are trained from: text, code, torch version and sizes."""
    facts = [spec.describe(), text_digest, code_digest(), torch_version]
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


class LanguageModelService:
    def __init__(
        self,
        spec: LMSpec,
        data_dir: Path,
        cache_dir: Path,
        database: Engine | None = None,
    ) -> None:
        self.spec, self.data_dir, self.cache_dir = spec, data_dir, cache_dir
        self._database = database
        self._lock = threading.Lock()
        self._progress = TrainingProgress(state="waiting", total_steps=spec.train.steps)
        self._trained: TrainedLM | None = None
        self._text: LMText | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._source: Literal["trained", "file", "database"] = "file"

    # ------------------------------------------------------------------ what runs ask

    def progress(self) -> TrainingProgress:
        with self._lock:
            return self._progress.model_copy()

    def trained(self) -> TrainedLM:
        """The model, or ModelTraining / ModelFailed."""
        with self._lock:
            if self._trained is not None:
                return self._trained
            progress = self._progress.model_copy()
        raise not_ready(progress)

    def text(self) -> LMText:
        """The text it was trained on (after it is ready)."""
        self.trained()
        assert self._text is not None
        return self._text

    # ------------------------------------------------------------------ the work

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lm-train", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop training at its next step, then close the database connections (the service
        owns its engine: the app makes one for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._database is not None:
            self._database.dispose()

    def wait(self, timeout: float) -> TrainedLM:
        """Block until ready (tests, the CLI); raises ModelFailed or TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.trained()
            except ModelTraining:
                time.sleep(0.05)
        raise TimeoutError(f"the language model was not ready within {timeout:g} s")

    def _run(self) -> None:
        try:
            self._load_or_train()
        except InterruptedError:
            log.info("language-model training stopped at shutdown")
        except Exception as exc:
            log.exception("language-model training failed")
            with self._lock:
                self._progress = self._progress.model_copy(
                    update={"state": "failed", "error": str(exc)}
                )

    def _load_or_train(self) -> None:
        import torch

        from app.demo.lm.text import read_text
        from app.demo.lm.weights import DatabaseWeights, FileWeights

        torch.set_num_threads(1)
        self._text = text = read_text(self.data_dir)
        key = model_key(self.spec, text.digest, torch.__version__)
        files = FileWeights(self.cache_dir)
        database = DatabaseWeights(self._database) if self._database is not None else None
        self._source = "file"
        blob = files.get(key)
        if blob is None and database is not None:
            self._source = "database"
            blob = self._train_once_across_workers(key, database, files, text)
        elif blob is None:
            blob = self._train_once_across_processes(key, files, text)
        try:
            self._ready(blob)
        except Exception:  # a damaged or foreign file: train afresh and replace it
            log.warning("stored language model %s is unreadable; training afresh", key)
            self._ready(self._train_and_store(key, files, database, text))

    def _train_once_across_workers(
        self, key: str, database: Any, files: Any, text: LMText
    ) -> bytes:
        from sqlalchemy import text as sql

        assert self._database is not None
        lock_id = int(key[:15], 16)
        with self._database.connect() as conn:
            conn.execute(sql("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                blob = database.get(key)  # another worker may have trained it meanwhile
                if blob is None:
                    blob = self._train_and_store(key, files, database, text)
                else:
                    files.put(key, blob)
                return bytes(blob)
            finally:
                conn.execute(sql("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()

    def _train_once_across_processes(self, key: str, files: Any, text: LMText) -> bytes:
        """Without a database, the worker processes of one machine share the cache folder:
        one trains under a file lock while the others wait for it, then read its file."""
        import fcntl

        files.dir.mkdir(parents=True, exist_ok=True)
        with open(files.dir / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            blob = files.get(key)
            if blob is not None:
                return bytes(blob)
            return self._train_and_store(key, files, None, text)

    def _train_and_store(self, key: str, files: Any, database: Any, text: LMText) -> bytes:
        from app.demo.lm.training import train
        from app.demo.lm.weights import to_bytes

        self._source = "trained"
        self._started = time.perf_counter()
        trained = train(self.spec, text, self._on_progress, self._stop.is_set)
        payload = {
            "key": key,
            "spec": self.spec.describe(),
            "state": trained.model.state_dict(),
            "checkpoints": trained.checkpoints,
            "train_loss": trained.log.train_loss,
            "val_loss": trained.log.val_loss,
            "seconds": trained.log.seconds,
            "weights_hash": trained.weights_hash,
        }
        blob = to_bytes(payload)
        files.put(key, blob)
        if database is not None:
            database.put(key, blob, trained.weights_hash)
        log.info(
            "language model %s trained in %.1f s", trained.weights_hash[:12], trained.log.seconds
        )
        return blob

    def _on_progress(self, step: int, total: int, log_: Any) -> None:
        every = max(1, total // 100)
        if step % every and step != total:
            return
        losses = log_.train_loss
        thinned = [(float(i + 1), round(losses[i], 4)) for i in range(0, len(losses), every)]
        with self._lock:
            self._progress = TrainingProgress(
                state="training",
                step=step,
                total_steps=total,
                seconds=round(time.perf_counter() - self._started, 2),
                train_loss=thinned,
                val_loss=[(float(s), round(v, 4)) for s, v in log_.val_loss],
            )

    def _ready(self, blob: bytes) -> None:
        from app.demo.lm.training import loaded
        from app.demo.lm.weights import from_bytes

        trained = loaded(self.spec, from_bytes(blob))
        losses = trained.log.train_loss
        every = max(1, len(losses) // 100)
        with self._lock:
            self._trained = trained
            self._progress = TrainingProgress(
                state="ready",
                step=len(losses),
                total_steps=len(losses),
                seconds=round(trained.log.seconds, 2),
                train_loss=[
                    (float(i + 1), round(losses[i], 4)) for i in range(0, len(losses), every)
                ],
                val_loss=[(float(s), round(v, 4)) for s, v in trained.log.val_loss],
                weights_hash=trained.weights_hash,
                source=self._source,
            )

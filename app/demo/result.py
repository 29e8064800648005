"""What a run returns: typed models shared by every experiment family (no torch here).

A result carries its variants (with `metrics`), the charts it draws (series of points, ready
to plot), the claims it checked, and a one-line summary written from the numbers. The same
Chart model is sent in progress events while a run trains, so the panel draws it live.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = float | None  # None: not finite (a diverged run) or undefined


class Series(BaseModel):
    """One line (or set of points) of a chart."""

    label: str
    variant: str | None = Field(None, description="The variant it belongs to (its colour)")
    points: list[tuple[float, Number]]
    style: Literal["line", "points", "dashed"] = "line"


class Grid(BaseModel):
    """Values on a regular grid, drawn under a contour chart's series: z[j][i] at (x[i], y[j])."""

    x: list[float]
    y: list[float]
    z: list[list[float]]


class Chart(BaseModel):
    """A chart ready to draw: axes, series, and what it shows in one line."""

    id: str
    kind: Literal["line", "contour", "bar", "heatmap"]
    title: str
    x_label: str
    y_label: str
    x_log: bool = False
    y_log: bool = False
    series: list[Series]
    categories: list[str] | None = Field(None, description="Bar and heat maps: the x labels")
    y_categories: list[str] | None = Field(None, description="Heat maps: the row labels")
    grid: Grid | None = None
    finding: str = Field("", description="One line written from this chart's numbers")


class LayerNorms(BaseModel):
    index: int = Field(description="1 is nearest the input")
    weight_grad_norm: Number
    activation_grad_norm: Number


class RecordedStep(BaseModel):
    step: int
    layers: list[LayerNorms]


class VariantResult(BaseModel):
    """One variant of a comparison and its numbers."""

    name: str
    label: str
    metrics: dict[str, Number] = Field(
        description="final_loss for anything trained; final_train_loss and final_val_loss "
        "where there is held-out data; plus the experiment's own measures"
    )
    # gradient-flow experiments: per-layer norms at initialization and later steps
    layers: list[LayerNorms] | None = Field(None, description="Norms at initialization")
    loss: list[Number] | None = Field(None, description="Training loss at every step")
    recorded_steps: list[RecordedStep] | None = None


class ClaimResult(BaseModel):
    """A published effect checked on this run's own numbers."""

    id: str
    statement: str
    measured: Number
    expected: str = Field(description="The relation the measured value must satisfy, in words")
    holds: bool = Field(description="Computed in this run")
    citation: str


class ModelRef(BaseModel):
    """The trained language model a result was computed on (app/demo/lm)."""

    name: str = Field(description="Its size: full on the server, tiny in tests")
    weights_hash: str = Field(description="sha256 of its weights: identical weights, same hash")
    parameters: int
    steps: int = Field(description="Training steps")
    final_val_loss: Number = Field(description="Validation cross-entropy, nats per token")
    training_seconds: float


class TextSample(BaseModel):
    """Text a run produced or read, shown as it is (and optionally as tokens)."""

    variant: str | None = None
    label: str
    prompt: str = ""
    text: str
    tokens: list[str] | None = Field(None, description="The text split into its tokens")
    note: str = ""


class DemoResult(BaseModel):
    """One experiment's numbers."""

    model_config = ConfigDict(extra="forbid")

    experiment: str
    family: str
    config: dict[str, Any] = Field(description="The canonical config: preset and parameters")
    device: str
    torch_version: str
    elapsed_ms: float
    cached: bool = False
    source: Literal["computed", "joined", "cache"] = Field(
        "computed",
        description="computed: this request started the run; joined: it joined a run of the "
        "same config already in flight; cache: an earlier run's result",
    )
    summary: str
    variants: list[VariantResult]
    charts: list[Chart]
    claims: list[ClaimResult]
    citation: str
    samples: list[TextSample] = Field(
        default_factory=list, description="Generated or tokenized text"
    )
    model: ModelRef | None = Field(None, description="The language model it ran on, if any")


class Progress(BaseModel):
    """Sent while a run trains: where it is, and its charts so far. phase "model_training":
    the server's language model is still training (its curve is the chart)."""

    phase: Literal["run", "model_training"] = "run"
    step: int
    total_steps: int
    charts: list[Chart] = []

"""Loss functions: squared error vs cross-entropy for a sigmoid classifier started wrong.

Engine: app/demo/engines/generalization_loss.py.
"""

from __future__ import annotations

from pydantic import Field

from app.demo.claims import Claim, metric, ratio
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "generalization"  # as in app.demo.families.generalization, which lists this one


class LossFunctionParams(ExperimentParams):
    """A sigmoid classifier started confidently wrong: how wrong, and how it trains."""

    init_logit: float = Field(
        8.0, ge=0.0, le=20.0, description="Typical size of the starting logits (all wrong)."
    )
    n_train: int = Field(64, ge=8, le=2000, description="Training examples.")
    steps: int = Field(300, ge=10, le=20000, description="Gradient-descent steps.")
    lr: float = Field(1.0, ge=1e-3, le=10.0, description="Learning rate (plain gradient descent).")

    def estimate_seconds(self) -> float:
        """A fixed cost per step (a dozen tiny ops and autograd); calibrated with margin."""
        return 0.1 + self.steps * (5e-4 + 2e-8 * self.n_train)


LOSS_FUNCTIONS = Experiment(
    name="loss-functions",
    title="Squared error vs cross-entropy for a confidently wrong classifier",
    family=FAMILY,
    description=(
        "The same sigmoid classifier, started with every point on the wrong side and a large "
        "logit, trained by the same gradient steps on squared error or on cross-entropy. The "
        "squared-error gradient carries the factor p(1 - p), which is nearly zero when the "
        "sigmoid is saturated, so it barely moves for many steps; the cross-entropy gradient "
        "is p - y and stays large, so it recovers at once. From a small start both learn alike."
    ),
    citation="Goodfellow, Bengio and Courville, 2016 (ch. 6.2); Golik et al., 2013",
    terms=("cross-entropy-loss", "loss-function", "mean-squared-error"),
    variants=(
        VariantSpec("mse", "Squared error", "Loss (p - y)^2."),
        VariantSpec("cross-entropy", "Cross-entropy", "Loss -y log p - (1 - y) log(1 - p)."),
    ),
    params=LossFunctionParams,
    charts=(
        ChartSpec("accuracy", "line", "Training accuracy by step"),
        ChartSpec("loss", "line", "Each variant's own training loss by step"),
        ChartSpec("gradient", "line", "Gradient norm by step"),
        ChartSpec("gradient_vs_logit", "line", "|dL/dz| against the logit"),
    ),
    claims=(
        Claim(
            "cross-entropy-recovers-faster",
            "Squared error needs over 10x as many steps as cross-entropy to put 90% of the "
            "points on the right side",
            ratio(metric("mse", "steps_to_target"), metric("cross-entropy", "steps_to_target")),
            ">",
            10,
        ),
        Claim(
            "mse-gradient-vanishes",
            "At the start the squared-error gradient is below 1/100 of the cross-entropy one",
            ratio(metric("mse", "initial_grad"), metric("cross-entropy", "initial_grad")),
            "<",
            0.01,
        ),
        Claim(
            "both-learn-the-task",
            "Both end with at least 95% of the points right (the task is easy; the start is not)",
            lambda m: _lowest(m["mse"]["final_acc"], m["cross-entropy"]["final_acc"]),
            ">=",
            0.95,
        ),
    ),
    counterfactual={"init_logit": 0.1},
    engine="app.demo.engines.generalization_loss:run",
    fixed={"data": "two Gaussian blobs, 2-D", "optimizer": "plain gradient descent, full batch"},
)


def _lowest(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else min(a, b)

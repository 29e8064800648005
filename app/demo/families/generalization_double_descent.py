"""Double descent: test error against model size for random-features least squares.

Engine: app/demo/engines/generalization_double_descent.py.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from app.demo.claims import Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "generalization"  # as in app.demo.families.generalization, which lists this one


class DoubleDescentParams(ExperimentParams):
    """Random-features regression: data, the sweep of model sizes, and the ridge penalties."""

    budget_param: ClassVar[str] = "max_features"

    # bounds keep max_features >= 2 n_train, so the sweep always passes p = n
    n_train: int = Field(100, ge=10, le=200, description="Training examples n.")
    input_dim: int = Field(20, ge=1, le=100, description="Input dimension d.")
    noise: float = Field(0.3, ge=0.0, le=2.0, description="Standard deviation of the label noise.")
    max_features: int = Field(
        1000, ge=400, le=5000, description="Largest number of random features p in the sweep."
    )
    ridge: float = Field(
        0.0, ge=0.0, le=10.0, description="Ridge penalty of the main fit (0: minimum-norm fit)."
    )
    ridge_comparison: float = Field(
        1e-3, ge=0.0, le=10.0, description="Ridge penalty of the comparison fit."
    )

    def estimate_seconds(self) -> float:
        """The SVDs of the sweep grow about as n * max_features, the feature matrices as
        (n + 1000 test points) * max_features * d; calibrated on the reference machine
        (0.18 s CPU at the defaults, 1.3 s at n 200 and 5000 features) with some margin."""
        n, p, d = self.n_train, self.max_features, self.input_dim
        return 0.1 + 2e-6 * n * p + 1e-10 * (n + 1000) * p * d


DOUBLE_DESCENT = Experiment(
    name="double-descent",
    title="Double descent: test error against model size",
    family=FAMILY,
    description=(
        "Least-squares fits on p random ReLU features of the same n noisy points, for p from 1 "
        "to 10n. Test error first falls, then climbs to a peak at p = n, where the model can "
        "just fit every training point and needs huge coefficients to do it; past that it "
        "falls again, below the best small model, as the minimum-norm fit spreads the load "
        "over more features. A well-chosen ridge penalty removes the peak."
    ),
    citation="Belkin et al., 2019; Nakkiran et al., 2019",
    terms=("overfitting", "double-descent", "bias-variance-tradeoff"),
    variants=(
        VariantSpec("least-squares", "Least squares (ridge = ridge)", "The main fit."),
        VariantSpec("ridge", "Ridge (ridge = ridge_comparison)", "The comparison fit."),
    ),
    params=DoubleDescentParams,
    charts=(
        ChartSpec("error", "line", "Test and training error against the number of features"),
        ChartSpec("norm", "line", "Norm of the fitted coefficients against the number of features"),
    ),
    claims=(
        Claim(
            "peak-at-threshold",
            "The test error at p = n is over 10x the test error at the largest p",
            metric("least-squares", "threshold_over_max"),
            ">",
            10,
        ),
        Claim(
            "peak-where-it-interpolates",
            "The worst p of the sweep lies between n/2 and 2n",
            metric("least-squares", "peak_features_over_n"),
            "between",
            0.5,
            2,
        ),
        Claim(
            "peak-above-classical-best",
            "The error at p = n is over 5x the best error with p < n",
            metric("least-squares", "threshold_over_under"),
            ">",
            5,
        ),
        Claim(
            "second-descent",
            "At the largest p the test error is below the best with p < n",
            metric("least-squares", "max_over_under"),
            "<",
            1,
        ),
        Claim(
            "ridge-removes-peak",
            "With the comparison ridge the error at p = n is under 3x the error at the largest p",
            metric("ridge", "threshold_over_max"),
            "<",
            3,
            citation="Nakkiran et al., 2021",
        ),
    ),
    counterfactual={"ridge": 1e-3},
    engine="app.demo.engines.generalization_double_descent:run",
    fixed={
        "target": "y = <u, x> + noise, |u| = 1, x ~ N(0, I)",
        "features": "relu(<w, x> / sqrt(d)) / sqrt(p), w ~ N(0, I)",
        "test_examples": 1000,
    },
)

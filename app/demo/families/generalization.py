"""Generalization: what a model learns beyond its training examples, and what helps it.

Train-vs-validation experiments (overfitting, dropout, weight decay, data augmentation,
early stopping) fit an over-sized MLP to a few points with noisy labels and track the loss
on held-out points of the same distribution (app/demo/engines/generalization.py). Double
descent (generalization_double_descent.py) and squared error vs cross-entropy
(generalization_loss.py) have modules of their own; EXPERIMENTS lists all seven.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from app.demo.claims import Claim, metric, ratio
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.families.generalization_double_descent import DOUBLE_DESCENT
from app.demo.families.generalization_loss import LOSS_FUNCTIONS
from app.demo.params import ExperimentParams

FAMILY = "generalization"
CURVES_ENGINE = "app.demo.engines.generalization:run_curves"
CURVES_FIXED = {
    "task": "points uniform in the unit disk; class 1 within radius 1/sqrt(2)",
    "validation_examples": 200,
    "test_examples": 200,
    "activation": "relu",
    "loss": "binary cross-entropy",
    "optimizer": "Adam, full batch",
}


@dataclass(frozen=True)
class CurveVariant(VariantSpec):
    """A model of a train-vs-validation comparison: which regularizer it uses."""

    width: str = "width"  # the parameter that gives its hidden width
    dropout: bool = False  # dropout at the run's rate on every hidden layer
    weight_decay: bool = False  # decoupled weight decay at the run's rate
    augment: bool = False  # every point rotated by a random angle, each step
    restore_best: bool = False  # report the weights of the best validation step


# ----------------------------------------------------------------------------- parameters


class CurvesParams(ExperimentParams):
    """Data, model and training settings every train-vs-validation experiment takes."""

    groups: ClassVar[int] = 1  # stacked networks trained one after the other (one per width)
    stacked: ClassVar[int] = 2  # variants trained together in each
    dropout_masks: ClassVar[bool] = False  # whether a random mask is drawn per hidden unit

    n_train: int = Field(60, ge=4, le=2000, description="Training examples.")
    label_noise: float = Field(
        0.1, ge=0.0, le=0.5, description="Probability that an example's label is flipped."
    )
    width: int = Field(64, ge=2, le=256, description="Units per hidden layer.")
    depth: int = Field(2, ge=1, le=4, description="Hidden layers.")
    steps: int = Field(500, ge=10, le=20000, description="Full-batch training steps.")
    lr: float = Field(5e-3, ge=1e-4, le=0.1, description="Adam learning rate.")

    def estimate_seconds(self) -> float:
        """Per step: a fixed cost (op dispatch, autograd), then per variant the multiply-adds
        of forward and backward, the hidden units' elementwise ops (more with dropout's
        masks) and Adam's per-parameter ops; ~100 evaluations add forward passes over the
        held-out points. Calibrated on the reference machine (0.33-0.38 s at the defaults,
        24 s at n_train 2000, width 256 with dropout), rounded up."""
        n, w, hidden = self.n_train, self.width, self.depth - 1
        macs = 3 * w + hidden * w * w  # per example, forward
        n_params = 4 * w + hidden * (w * w + w) + 1
        unit = 1.5e-8 if self.dropout_masks else 3e-9  # per hidden unit and example
        variant = 3 * n * macs * 3e-11 + n * w * self.depth * unit + n_params * 1e-8
        evals = 101 * self.stacked * (n + 200) * macs * 3e-11
        per_group = self.steps * (3e-4 + self.stacked * variant) + evals
        return 0.1 + self.groups * per_group


class OverfittingParams(CurvesParams):
    groups: ClassVar[int] = 2
    stacked: ClassVar[int] = 1
    small_width: int = Field(
        8, ge=2, le=64, description="Units per hidden layer of the small model."
    )


class DropoutParams(CurvesParams):
    dropout_masks: ClassVar[bool] = True
    dropout: float = Field(
        0.5, ge=0.0, le=0.9, description="Probability of dropping each hidden unit."
    )


class WeightDecayParams(CurvesParams):
    weight_decay: float = Field(1.0, ge=0.0, le=10.0, description="Decoupled weight decay (AdamW).")


class EarlyStoppingParams(CurvesParams):
    stacked: ClassVar[int] = 1  # both variants are views of one training run


class AugmentationParams(CurvesParams):
    rotation: float = Field(
        1.0, ge=0.0, le=1.0, description="Rotate by up to this fraction of a half turn, each way."
    )


# ----------------------------------------------------------------------------- experiments
# Metrics per variant (engine): final_{train,val,test}_{loss,acc} (final_loss is the training
# loss), best_val_loss, best_step, best_step_fraction, val_rise (the run's final over best
# validation loss), train_fall (final over best-step training loss), gap (val - train loss),
# weight_norm, rotation_variance (how much P(class 1) changes as a point is rotated).

_LOSS = ChartSpec("loss", "line", "Training (solid) and validation (dashed) loss by step")
_PLENTY = 500  # training examples at which the over-sized model no longer overfits


def _boundaries(*variants: CurveVariant) -> tuple[ChartSpec, ...]:
    """One map of P(class 1) per variant, with the training points on it."""
    return tuple(
        ChartSpec(f"boundary-{v.name}", "contour", f"{v.label}: P(class 1)") for v in variants
    )


def _lower_val(better: str, than: str, factor: float, cid: str, what: str) -> Claim:
    return Claim(
        cid,
        f"{what} ends with a validation loss below {factor:g}x the one without it",
        ratio(metric(better, "final_val_loss"), metric(than, "final_val_loss")),
        "<",
        factor,
    )


def _experiment(
    name: str,
    title: str,
    description: str,
    citation: str,
    terms: tuple[str, ...],
    variants: tuple[CurveVariant, ...],
    params: type[CurvesParams],
    claims: tuple[Claim, ...],
    extra_charts: tuple[ChartSpec, ...] = (),
) -> Experiment:
    """A train-vs-validation experiment; its counterfactual is plenty of training data."""
    return Experiment(
        name=name,
        title=title,
        family=FAMILY,
        description=description,
        citation=citation,
        terms=terms,
        variants=variants,
        params=params,
        charts=(_LOSS, *extra_charts, *_boundaries(*variants)),
        claims=claims,
        counterfactual={"n_train": _PLENTY},
        engine=CURVES_ENGINE,
        fixed=CURVES_FIXED,
    )


_SMALL = CurveVariant(
    "small", "Small model", "small_width units per hidden layer.", width="small_width"
)
_LARGE = CurveVariant("large", "Large model", "width units per hidden layer.")
OVERFITTING = _experiment(
    "overfitting",
    "Overfitting: a model too large for its data",
    "A small and a large MLP learn the same few points, some with the wrong label. The large "
    "one keeps lowering its training loss by memorizing every point, wrong labels included, "
    "while its loss on fresh validation points from the same distribution turns up; the "
    "small one cannot memorize and ends with the lower validation loss.",
    "Goodfellow, Bengio and Courville, 2016 (ch. 5.2)",
    ("overfitting", "generalization"),
    (_SMALL, _LARGE),
    OverfittingParams,
    (
        Claim(
            "large-val-turns-up",
            "The large model's final validation loss is over 2x its best one",
            metric("large", "val_rise"),
            ">",
            2.0,
        ),
        Claim(
            "large-train-keeps-falling",
            "Meanwhile its training loss falls below 1/3 of its value at the best validation step",
            metric("large", "train_fall"),
            "<",
            1 / 3,
        ),
        Claim(
            "small-generalizes-better",
            "The small model ends with under half the large model's validation loss",
            ratio(metric("small", "final_val_loss"), metric("large", "final_val_loss")),
            "<",
            0.5,
        ),
    ),
)

_PLAIN = CurveVariant("none", "Plain", "No regularization.")
DROPOUT = _experiment(
    "dropout",
    "Dropout against overfitting",
    "The same over-sized MLP on the same few noisily labelled points, with and without "
    "dropout on its hidden units. Randomly dropping units while training keeps the network "
    "from relying on a few of them to memorize single points, so it overfits less: the gap "
    "between its validation and training loss stays small and its validation loss ends lower.",
    "Srivastava et al., 2014",
    ("dropout",),
    (
        _PLAIN,
        CurveVariant(
            "dropout", "Dropout", "Hidden units dropped with probability dropout.", dropout=True
        ),
    ),
    DropoutParams,
    (
        _lower_val("dropout", "none", 0.6, "dropout-lower-val", "The network trained with dropout"),
        Claim(
            "dropout-smaller-gap",
            "Its gap between validation and training loss is under half the one without dropout",
            ratio(metric("dropout", "gap"), metric("none", "gap")),
            "<",
            0.5,
        ),
    ),
)

WEIGHT_DECAY = _experiment(
    "weight-decay",
    "Weight decay against overfitting",
    "The same over-sized MLP on the same few noisily labelled points, with and without "
    "weight decay (every step shrinks the weights toward zero, decoupled from Adam's update "
    "as in AdamW). Small weights make a smoother function that cannot bend around every "
    "mislabelled point: the weight norm stays smaller and the validation loss ends lower.",
    "Krogh and Hertz, 1992; Loshchilov and Hutter, 2019",
    ("weight-decay", "regularization"),
    (
        _PLAIN,
        CurveVariant("decay", "Weight decay", "AdamW's decoupled weight decay.", weight_decay=True),
    ),
    WeightDecayParams,
    (
        _lower_val(
            "decay", "none", 0.6, "decay-lower-val", "The network trained with weight decay"
        ),
        Claim(
            "decay-smaller-weights",
            "Its weights end with under 0.8x the norm of the network without it",
            ratio(metric("decay", "weight_norm"), metric("none", "weight_norm")),
            "<",
            0.8,
        ),
    ),
    extra_charts=(ChartSpec("weight_norm", "line", "Weight norm by step"),),
)

AUGMENTATION = _experiment(
    "data-augmentation",
    "Data augmentation with a true invariance",
    "The class of a point depends only on its distance from the centre, so rotating a "
    "training point keeps its label right: a free new example. The same over-sized MLP, "
    "trained with every point rotated by a fresh random angle at each step, cannot memorize "
    "single points, ends with a lower validation loss and learns a rotation-invariant rule.",
    "Simard et al., 2003; Shorten and Khoshgoftaar, 2019",
    ("data-augmentation",),
    (
        _PLAIN,
        CurveVariant(
            "augmented", "Augmented", "Each point rotated at random each step.", augment=True
        ),
    ),
    AugmentationParams,
    (
        _lower_val(
            "augmented", "none", 0.7, "augmented-lower-val", "The network trained on rotated points"
        ),
        Claim(
            "augmented-learns-invariance",
            "Its prediction changes far less as a point is rotated (variance under 1/10)",
            ratio(metric("augmented", "rotation_variance"), metric("none", "rotation_variance")),
            "<",
            0.1,
        ),
        Claim(
            "augmented-more-accurate",
            "It classifies more validation points correctly",
            lambda m: _minus(m["augmented"]["final_val_acc"], m["none"]["final_val_acc"]),
            ">",
            0.0,
        ),
    ),
)

EARLY_STOPPING = _experiment(
    "early-stopping",
    "Early stopping on a validation set",
    "An over-sized MLP trains on a few noisily labelled points while its loss on a validation "
    "set is watched; early stopping keeps the weights of the step with the lowest validation "
    "loss. Judged on a separate test set that chose nothing, the stopped model beats the one "
    "trained to the end, and the best step comes well before the end.",
    "Prechelt, 1998; Goodfellow, Bengio and Courville, 2016 (ch. 7.8)",
    ("validation-set", "early-stopping"),
    (
        CurveVariant(
            "stopped", "Early-stopped", "Weights of the best validation step.", restore_best=True
        ),
        CurveVariant("final", "Trained to the end", "Weights after the last step."),
    ),
    EarlyStoppingParams,
    (
        Claim(
            "stopped-lower-test",
            "On the test set the early-stopped model's loss is under half the final model's",
            ratio(metric("stopped", "final_test_loss"), metric("final", "final_test_loss")),
            "<",
            0.5,
        ),
        Claim(
            "stops-early",
            "The best validation step comes in the first quarter of training",
            metric("stopped", "best_step_fraction"),
            "<",
            0.25,
        ),
    ),
)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


EXPERIMENTS: tuple[Experiment, ...] = (
    OVERFITTING,
    DROPOUT,
    WEIGHT_DECAY,
    AUGMENTATION,
    EARLY_STOPPING,
    DOUBLE_DESCENT,
    LOSS_FUNCTIONS,
)

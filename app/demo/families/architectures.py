"""Architectures: what a layer's structure buys (memory through time, weights shared across
positions), shown by two architectures on the same data.

Engines live in app/demo/engines/architectures_<part>.py.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "architectures"
_ENGINES = "app.demo.engines.architectures"


# ----------------------------------------------------------------------------- RNN vs LSTM


class RecurrentParams(ExperimentParams):
    budget_param: ClassVar[str] = "seq_len"

    seq_len: int = Field(
        50, ge=2, le=400, description="Steps between the first token and the loss."
    )
    hidden: int = Field(32, ge=4, le=256, description="Units in the recurrent state.")
    forget_bias: float = Field(
        1.0, ge=-2, le=5, description="Initial bias of the LSTM's forget gate."
    )
    batch_size: int = Field(
        256, ge=8, le=1024, description="Sequences the gradient is averaged over."
    )

    def estimate_seconds(self) -> float:
        """Forward and backward through both networks, float64: per step a fixed cost and
        the recurrent matmuls (LSTM 4x the RNN's) at 10 GFLOP/s: 1.5-3x the time measured."""
        per_step = 1e-3 + 5 * 6 * self.batch_size * self.hidden**2 / 1e10
        return 0.05 + self.seq_len * per_step


RNN_VS_LSTM = Experiment(
    name="rnn-vs-lstm",
    title="Gradients through time: RNN vs LSTM",
    family=FAMILY,
    description=(
        "A task that needs a long memory: read a sequence of random +-1 tokens and, at the "
        "end, say the sign of the first one. At initialization we measure how strongly the "
        "loss at the end depends on each input token (the gradient with respect to token t). "
        "In a plain tanh RNN the gradient is multiplied by a factor below 1 at every step back "
        "through time, so it vanishes exponentially with the distance and the first token is "
        "out of reach. The LSTM's cell state is updated additively, scaled only by a forget "
        "gate that starts at sigmoid(1) = 0.73 (bias 1), so the gradient survives far longer."
    ),
    citation="Hochreiter, 1991; Hochreiter and Schmidhuber, 1997",
    terms=("recurrent-neural-network", "lstm"),
    variants=(
        VariantSpec("rnn", "RNN (tanh)", "h_t = tanh(W x_t + U h_{t-1} + b)."),
        VariantSpec("lstm", "LSTM", "c_t = f_t c_{t-1} + i_t g_t, h_t = o_t tanh(c_t)."),
    ),
    params=RecurrentParams,
    charts=(
        ChartSpec("gradient", "line", "Gradient of the final loss with respect to each token"),
        ChartSpec("factor", "bar", "Gradient lost per step back through time"),
    ),
    claims=(
        Claim(
            "rnn-gradient-vanishes",
            "In the RNN the gradient reaching the first token is below 1/10,000 of the one "
            "reaching the last",
            metric("rnn", "first_over_last"),
            "<",
            1e-4,
        ),
        Claim(
            "lstm-keeps-gradient",
            "In the LSTM the first token gets over 1,000 times more of it (relative to the last)",
            metric(RUN, "lstm_over_rnn_first_over_last"),
            ">",
            1e3,
        ),
        Claim(
            "rnn-decay-exponential",
            "The RNN's gradient decays exponentially with distance: a straight line fits its "
            "log with R^2 above 0.9",
            metric("rnn", "log_linear_r2"),
            ">",
            0.9,
            citation="Bengio et al., 1994",
        ),
    ),
    counterfactual={"seq_len": 5},
    engine=f"{_ENGINES}_recurrent:run",
    fixed={
        "init": "PyTorch's default, U(-1/sqrt(hidden), 1/sqrt(hidden))",
        "readout": "linear, last step",
    },
)


# ----------------------------------------------------------------------------- CNN vs MLP

MOTIF = 5  # length of the pattern to find (and of the CNN's filters)


class ConvParams(ExperimentParams):
    length: int = Field(32, ge=12, le=128, description="Samples per signal.")
    test_positions: Literal["unseen", "seen"] = Field(
        "unseen",
        description="Test on motifs in the right half (never trained on) or the left (as trained).",
    )
    noise: float = Field(0.5, ge=0, le=2, description="Standard deviation of the background noise.")
    n_train: int = Field(256, ge=32, le=4096, description="Training examples.")
    channels: int = Field(8, ge=1, le=64, description="CNN filters (each 5 samples wide).")
    hidden: int = Field(32, ge=2, le=512, description="MLP hidden units.")
    steps: int = Field(150, ge=0, le=3000, description="Training steps (Adam).")
    batch_size: int = Field(64, ge=8, le=1024, description="Examples per step.")
    lr: float = Field(1e-2, ge=1e-4, le=0.1, description="Learning rate.")

    def estimate_seconds(self) -> float:
        """Per step a fixed cost for the two networks (autograd, Adam) and 6 flops per
        multiply-add at 3 GFLOP/s, plus the held-out passes: 1.6-2x the time measured here."""
        macs = self.length * self.channels * MOTIF + self.length * self.hidden  # per example
        per_step = 2.5e-3 + 6 * self.batch_size * macs / 3e9
        return 0.1 + self.steps * per_step + 13 * 2048 * 2 * macs / 3e9


CNN_VS_MLP = Experiment(
    name="cnn-vs-mlp",
    title="Convolution vs a fully connected network on a pattern that moves",
    family=FAMILY,
    description=(
        "Tell two short patterns (motifs) apart in a noisy 1-D signal. Training examples put "
        "the motif only in the left half of the signal; held-out examples put it anywhere. "
        "A small convolutional network slides the same filters over every position and "
        "keeps each filter's strongest response, so a motif it learned on the left is found "
        "on the right too, with a few dozen weights. An MLP has a separate weight per "
        "position: it fits the training set but has never learned anything about the right "
        "half, so there it guesses. Test it where it was trained and it does nearly as well."
    ),
    citation="LeCun et al., 1989; LeCun et al., 1998",
    terms=("convolutional-neural-network", "multilayer-perceptron", "inductive-bias"),
    variants=(
        VariantSpec(
            "cnn",
            "CNN",
            "Shared 5-wide filters at every position, ReLU, max over positions, linear.",
        ),
        VariantSpec("mlp", "MLP", "Linear on the whole signal, ReLU, linear."),
    ),
    params=ConvParams,
    charts=(
        ChartSpec("loss", "line", "Training and held-out loss by step"),
        ChartSpec("accuracy_by_position", "line", "Held-out accuracy by the motif's position"),
    ),
    claims=(
        Claim(
            "cnn-finds-moved-pattern",
            "On test motifs at positions never trained on, the CNN's accuracy is at least 0.2 "
            "above the MLP's",
            metric(RUN, "cnn_minus_mlp_test_accuracy"),
            ">=",
            0.2,
        ),
        Claim(
            "cnn-accurate-on-moved",
            "The CNN classifies them with accuracy at least 0.9",
            metric("cnn", "test_accuracy"),
            ">=",
            0.9,
        ),
        Claim(
            "mlp-guesses",
            "The MLP is near chance there: accuracy at most 0.65",
            metric("mlp", "test_accuracy"),
            "<=",
            0.65,
        ),
        Claim(
            "mlp-fits-training-set",
            "It is not for want of fitting: the MLP's training accuracy is at least 0.95",
            metric("mlp", "train_accuracy"),
            ">=",
            0.95,
        ),
    ),
    counterfactual={"test_positions": "seen"},
    engine=f"{_ENGINES}_conv:run",
    fixed={"motif length": MOTIF, "classes": 2, "training positions": "left half"},
)


EXPERIMENTS: tuple[Experiment, ...] = (RNN_VS_LSTM, CNN_VS_MLP)

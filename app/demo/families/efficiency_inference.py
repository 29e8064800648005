"""Cheaper inference: quantizing the small language model's weights and inputs, fused attention
kernels against attention written out, and grouped-query attention's smaller KV cache.

Engines live in app/demo/engines/efficiency_quantization.py and efficiency_attention.py.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from app.demo.claims import RUN, Claim, metric
from app.demo.experiment import ChartSpec, Experiment, VariantSpec
from app.demo.params import ExperimentParams

FAMILY = "efficiency"
_ENGINES = "app.demo.engines.efficiency_"
# A forward pass of the full model over one 64-token window, measured at ~1.3 ms on the
# reference CPU (a batch of 16); the estimates take 3 ms to leave room for a loaded machine.
WINDOW_S = 3e-3
N_CHECKPOINTS = 7  # the full model saves a checkpoint every 100 of its 600 steps, and step 0


# ----------------------------------------------------------------------------- quantization

OUTLIER_THRESHOLD = 6.0  # LLM.int8()'s magnitude for an outlier feature (Dettmers et al. 2022)
ACTIVATION_BITS = 8  # every quantized variant rounds the linear layers' inputs to int8

QUANT_VARIANTS = (
    ("float32", "float32", "The trained model as it is."),
    ("int8-tensor", "int8, per tensor", "One scale per weight matrix and per layer input."),
    (
        "int8-channel",
        "int8, per channel",
        "One scale per output channel of each weight matrix and per token of its input.",
    ),
    ("int4-tensor", "low bits, per tensor", "Weights at low_bits, one scale per matrix."),
    ("int4-channel", "low bits, per channel", "Weights at low_bits, one scale per channel."),
    (
        "int8-outlier-tensor",
        "Outlier, int8 per tensor",
        "One input feature made outlier_factor times larger; per-tensor int8.",
    ),
    (
        "int8-outlier-vector",
        "Outlier, int8 vector-wise",
        "The same outlier; per-token input scales times per-channel weight scales.",
    ),
    (
        "int8-outlier-mixed",
        "Outlier, LLM.int8() decomposition",
        "The same outlier; features above the threshold kept in float32, the rest vector-wise.",
    ),
)


class QuantizationParams(ExperimentParams):
    budget_param: ClassVar[str] = "windows"

    low_bits: int = Field(
        4, ge=2, le=8, description="Weight bits of the low-bit variants (int4 by default)."
    )
    outlier_factor: float = Field(
        60.0,
        ge=1,
        le=200,
        description="How many times larger the outlier feature is made (1: no outlier).",
    )
    windows: int = Field(
        16, ge=1, le=128, description="64-token windows of the held-out text scored."
    )

    def estimate_seconds(self) -> float:
        """One forward pass over the windows for each variant and the float outlier model."""
        return 0.1 + (len(QUANT_VARIANTS) + 1) * self.windows * WINDOW_S


QUANTIZATION = Experiment(
    name="quantization",
    title="Quantization: 8 and 4 bits, per tensor or per channel, and one outlier feature",
    family=FAMILY,
    description=(
        "The model's linear layers are rounded to few bits: each weight becomes an integer "
        "times a scale (symmetric, round to nearest), and so does each layer's input, at 8 "
        "bits. One scale can serve a whole matrix (per tensor) or each output channel of the "
        "weights and each token of the input (per channel, which Dettmers et al. call "
        "vector-wise). We score the held-out glossary text with each version and measure how "
        "far its next-token predictions move from the float32 model's (KL divergence, nats per "
        "token) and its perplexity. Fewer bits cost more; per-channel scales round more finely. "
        "Then we make one input feature huge without changing what the model computes: that "
        "feature of the layer norms' output is multiplied by outlier_factor and the next "
        "layer's weights for it divided by the same. Such outlier features appear in large "
        "language models, and they ruin per-tensor int8 inputs: one scale must cover the "
        "outlier, so every other feature rounds to a few levels. Vector-wise scales limit the "
        "damage; keeping the outlier features in float (LLM.int8()) removes it."
    ),
    citation="Jacob et al., 2018; Dettmers et al., 2022",
    terms=("quantization",),
    variants=tuple(VariantSpec(n, label, d) for n, label, d in QUANT_VARIANTS),
    params=QuantizationParams,
    charts=(
        ChartSpec("kl", "bar", "How far each version's predictions move from float32"),
        ChartSpec("perplexity", "bar", "Held-out perplexity of each version"),
        ChartSpec("layer-error", "bar", "Relative error of each quantized layer's output"),
    ),
    claims=(
        Claim(
            "fewer-bits-cost-more",
            "Fewer bits move the predictions further: the low-bit per-tensor model's KL "
            "divergence from float32 is over 5 times the int8 per-tensor model's",
            metric(RUN, "kl_low_over_int8"),
            ">",
            5,
        ),
        Claim(
            "channel-scales-help",
            "At low bits, per-channel scales round more finely: the mean relative error of "
            "the layers' outputs is under 0.8 times that of per-tensor scales",
            metric(RUN, "layer_error_channel_over_tensor"),
            "<",
            0.8,
        ),
        Claim(
            "outlier-breaks-per-tensor",
            "One outlier feature wrecks per-tensor int8: its KL divergence from float32 is "
            "over 20 times the int8 per-tensor model's without the outlier",
            metric(RUN, "kl_outlier_over_int8"),
            ">",
            20,
        ),
        Claim(
            "vector-wise-limits-it",
            "Vector-wise scales limit the damage: with the outlier, their KL divergence is "
            "under half the per-tensor one",
            metric(RUN, "kl_vector_over_tensor_outlier"),
            "<",
            0.5,
        ),
        Claim(
            "decomposition-removes-it",
            "Keeping the outlier features in float32 removes the damage: the LLM.int8() "
            "decomposition's KL divergence is under 1.5 times that of vector-wise int8 on the "
            "model without the outlier",
            metric(RUN, "kl_mixed_over_channel"),
            "<",
            1.5,
        ),
        Claim(
            "outlier-preserves-function",
            "The outlier change alone leaves the float32 model's perplexity unchanged (relative "
            "change below 1e-5)",
            metric(RUN, "outlier_float_change"),
            "<",
            1e-5,
        ),
    ),
    counterfactual={"low_bits": 8},
    engine=f"{_ENGINES}quantization:run",
    fixed={
        "quantized": "the 4 linear layers of each block; embeddings, layer norms and the "
        "tied output layer stay float32",
        "rounding": "symmetric, round to nearest, fake-quantized (quantize then dequantize "
        "in float32)",
        "inputs": f"int{ACTIVATION_BITS} in every quantized version: one scale for the whole "
        "batch of windows (per tensor) or one per token (per channel)",
        "outlier": "one feature chosen by the seed, in every block's two layer norms",
        "outlier threshold": f"|x| > {OUTLIER_THRESHOLD:g} (LLM.int8())",
        "window": "64 tokens of the held-out glossary entries",
    },
    needs_model=True,
)


# ----------------------------------------------------------------------------- attention kernels

MIN_LENGTH = 64  # the sweep's first sequence length; it doubles up to max_length
# Written-out attention at 512 tokens, 8 heads of 64, measured at ~40 ms on the reference CPU,
# i.e. ~2.4e-10 s per head x token^2 x head size; the estimate takes 4e-10 for the plain path
# and the fused one together.
ATTENTION_S = 4e-10


def sweep_lengths(max_length: int) -> list[int]:
    """64, 128, ... doubling below max_length, then max_length itself."""
    lengths = [MIN_LENGTH]
    while lengths[-1] * 2 < max_length:
        lengths.append(lengths[-1] * 2)
    return lengths + [max_length] if max_length > MIN_LENGTH else lengths


class KernelParams(ExperimentParams):
    budget_param: ClassVar[str] = "max_length"

    max_length: int = Field(
        512,
        ge=MIN_LENGTH,
        le=2048,
        description="The longest sequence; lengths double from 64 up to it.",
    )
    heads: int = Field(8, ge=1, le=16, description="Attention heads (batch of one sequence).")
    head_size: int = Field(64, ge=8, le=128, description="Dimensions of each head.")
    repeats: int = Field(
        5, ge=1, le=15, description="Timings of each kernel per length (the median is kept)."
    )

    def estimate_seconds(self) -> float:
        """Each length timed repeats + 2 times (a warm-up and the memory profile)."""
        work = sum(t * t for t in sweep_lengths(self.max_length)) * self.heads * self.head_size
        return 0.1 + (self.repeats + 2) * work * ATTENTION_S


ATTENTION_KERNELS = Experiment(
    name="attention-kernels",
    title="Fused attention (FlashAttention) against attention written out",
    family=FAMILY,
    description=(
        "Attention written out computes the full matrix of scores softmax(QK^T / sqrt(d)), "
        "one number for every pair of tokens, and then multiplies it by V: its memory grows "
        "with the square of the sequence length. A fused kernel such as FlashAttention "
        "computes the same result block by block, keeping a running softmax, and never holds "
        "the whole matrix: its memory grows only in proportion to the length. We run both, "
        "causal, on the same random queries, keys and values at lengths doubling from 64, "
        "the fused one through PyTorch's scaled_dot_product_attention, and measure each "
        "one's peak memory (the profiler's allocations on a CPU, the allocator's peak on a "
        "GPU) and its time (interleaved, the median of repeats). When the sequence is no "
        "longer than a head, the matrix is no bigger than the rest and fusing saves little."
    ),
    citation="Dao et al., 2022; Rabe and Staats, 2021",
    terms=("flash-attention",),
    variants=(
        VariantSpec("plain", "Written out", "softmax(QK^T / sqrt(d)) V with a causal mask."),
        VariantSpec(
            "sdpa", "Fused (SDPA)", "torch.nn.functional.scaled_dot_product_attention, causal."
        ),
    ),
    params=KernelParams,
    charts=(
        ChartSpec("memory", "line", "Peak memory by sequence length"),
        ChartSpec("time", "line", "Time by sequence length"),
    ),
    claims=(
        Claim(
            "fused-saves-memory",
            "At the longest length the written-out attention needs over 4 times the memory "
            "of the fused kernel",
            metric(RUN, "memory_plain_over_sdpa"),
            ">",
            4,
        ),
        Claim(
            "same-output",
            "Both compute the same attention: the largest difference between their outputs, "
            "at any length, is below 1e-4",
            metric(RUN, "max_abs_difference"),
            "<",
            1e-4,
        ),
        Claim(
            "plain-quadratic",
            "The written-out attention's memory grows with the square of the length (log-log "
            "slope from the shortest to the longest length between 1.7 and 2.2)",
            metric("plain", "memory_slope"),
            "between",
            1.7,
            2.2,
        ),
        Claim(
            "fused-linear",
            "The fused kernel's memory grows in proportion to the length (slope below 1.3)",
            metric("sdpa", "memory_slope"),
            "<",
            1.3,
        ),
        Claim(
            "fused-faster",
            "At the longest length the fused kernel is faster: its median time over the "
            "written-out attention's is below 1",
            metric(RUN, "time_sdpa_over_plain"),
            "<",
            1,
        ),
    ),
    counterfactual={"max_length": MIN_LENGTH},
    engine=f"{_ENGINES}attention:run_kernels",
    fixed={
        "batch": "one sequence",
        "dtype": "float32",
        "inputs": "queries, keys and values drawn from a standard normal by the seed",
    },
)


# ----------------------------------------------------------------------------- grouped-query


CHECKPOINT_CHOICES = ("final", "middle", "untrained")
GQA_VARIANTS = (
    ("mha", "Multi-head (4 KV heads)", "The trained model: one key/value head per query head."),
    ("gqa-2", "Grouped-query, 2 KV heads", "Each pair of heads shares the mean of its K and V."),
    ("mqa", "Multi-query, 1 KV head", "All heads share the mean of the four K and V heads."),
)


class GroupedParams(ExperimentParams):
    budget_param: ClassVar[str] = "windows"

    checkpoint: Literal["final", "middle", "untrained"] = Field(
        "final",
        description="Which of the model's saved checkpoints is converted: the trained "
        "model, the middle of its training, or its random initialization.",
    )
    windows: int = Field(
        12, ge=1, le=64, description="64-token windows of the held-out text, drawn by the seed."
    )

    def estimate_seconds(self) -> float:
        """Three variants at every checkpoint (the chart along training)."""
        return 0.1 + N_CHECKPOINTS * len(GQA_VARIANTS) * self.windows * WINDOW_S


GROUPED_QUERY = Experiment(
    name="grouped-query-attention",
    title="Grouped-query attention: fewer key/value heads, a smaller KV cache",
    family=FAMILY,
    description=(
        "While a model generates, it keeps every earlier token's keys and values (the KV "
        "cache), one pair per head per layer: at long contexts that cache, not the weights, "
        "fills the memory. Grouped-query attention lets several query heads share one key and "
        "value head; multi-query attention shares a single one. We convert the trained "
        "model's four heads as Ainslie et al. did, before their short extra training: the "
        "key and value projections of the heads in a group are averaged into one. The cache "
        "shrinks in proportion to the key/value heads kept, and without retraining the "
        "held-out perplexity rises as heads are merged. The cost comes from what the heads "
        "learned: merging the heads of the untrained model, which have learned nothing, costs "
        "nothing."
    ),
    citation="Ainslie et al., 2023; Shazeer, 2019",
    terms=("grouped-query-attention", "multi-query-attention"),
    variants=tuple(VariantSpec(n, label, d) for n, label, d in GQA_VARIANTS),
    params=GroupedParams,
    charts=(
        ChartSpec("cache", "bar", "KV-cache bytes per token"),
        ChartSpec("perplexity", "bar", "Held-out perplexity"),
        ChartSpec("training", "line", "Held-out perplexity of each conversion along training"),
    ),
    claims=(
        Claim(
            "merging-costs-perplexity",
            "Merging all key/value heads into one costs quality: the multi-query model's "
            "perplexity is over 1.2 times the multi-head model's",
            metric(RUN, "mqa_over_mha"),
            ">",
            1.2,
        ),
        Claim(
            "fewer-heads-worse",
            "Each halving of the key/value heads raises the perplexity (the smaller of the "
            "two ratios above 1.02)",
            metric(RUN, "min_halving_ratio"),
            ">",
            1.02,
        ),
        Claim(
            "cache-proportional",
            "The cache shrinks in proportion to the key/value heads: each version's bytes per "
            "token over the multi-head model's equals its key/value heads over 4 (largest "
            "difference below 0.01)",
            metric(RUN, "max_cache_ratio_error"),
            "<",
            0.01,
        ),
    ),
    counterfactual={"checkpoint": "untrained"},
    engine=f"{_ENGINES}attention:run_grouped",
    fixed={
        "pooling": "mean of the key and value projections of consecutive heads",
        "uptraining": "none",
        "cache": "float32 keys and values of every layer",
    },
    needs_model=True,
)

EXPERIMENTS = (QUANTIZATION, ATTENTION_KERNELS, GROUPED_QUERY)

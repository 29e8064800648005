"""Named demo experiments, their parameters, and validation of raw query strings.

This module must stay free of torch (and numpy): the web app imports it at start-up to list
presets and validate requests while torch is still loading in the background.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_PRESET = "residual-vs-plain"

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")
INITS = ("default", "xavier", "kaiming")  # default = torch's own nn.Linear init
NORMS = ("none", "layernorm", "batchnorm")
TASKS = ("teacher", "spirals")
BRANCH_SCALES = ("1/sqrt(depth)", "1")  # residual h + s*f(h): s = 1/sqrt(depth) or s = 1

# Compute budget: the estimated wall time of a run on the reference machine (2-core CPU,
# one torch thread per run) may not exceed this. See estimate_seconds() for the model.
BUDGET_S = 5.0

ParamValue = int | float | str


class DemoInputError(ValueError):
    """A demo parameter is missing its mark; `.param` names it, `.errors` lists every problem."""

    def __init__(self, param: str, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.param = param
        self.message = message
        self.errors: list[dict[str, str]] = errors or [{"param": param, "message": message}]


@dataclass(frozen=True)
class ParamSpec:
    """One query parameter of a preset: its kind, bounds or choices, default and help."""

    name: str
    kind: Literal["int", "float", "choice"]
    default: ParamValue
    help: str
    min: int | float | None = None
    max: int | float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """The allowed values in words, e.g. 'an integer from 2 to 64'."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        noun = "an integer" if self.kind == "int" else "a number"
        return f"{noun} from {_fmt(self.min)} to {_fmt(self.max)}"

    def parse(self, raw: str) -> ParamValue:
        """Parse a raw query string into a value of this parameter, or raise DemoInputError."""
        text = raw.strip()
        bad = DemoInputError(self.name, f"{self.name} must be {self.allowed()}, got {raw!r}")
        if self.kind == "choice":
            if text.lower() not in self.choices:
                raise bad
            return text.lower()
        value: int | float
        if self.kind == "int":
            if not re.fullmatch(r"[+-]?\d{1,12}", text):
                raise bad
            value = int(text)
        else:
            if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?", text):
                raise bad  # rejects nan, inf, hex and empty strings up front
            value = float(text)
        assert self.min is not None and self.max is not None
        if not (self.min <= value <= self.max):
            raise bad
        return value

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default}
        if self.kind == "choice":
            d["choices"] = list(self.choices)
        else:
            d["min"], d["max"] = self.min, self.max
        d["help"] = self.help
        return d


@dataclass(frozen=True)
class Variant:
    """One network of a comparison; None fields take the config's value."""

    name: str
    label: str
    description: str
    residual: bool | None = None  # MLP: h + s*f(h) instead of f(h)
    activation: str | None = None
    init: str | None = None
    norm: str | None = None
    block: str | None = None  # transformer only: "post-ln" | "pre-ln" | "no-residual"


@dataclass(frozen=True)
class Preset:
    """A named comparison: K variants trained together on the same data from the same seed."""

    name: str
    title: str
    description: str  # what it shows and the expected effect, in plain words
    citation: str
    arch: Literal["mlp", "transformer"]
    optimizer: Literal["sgd", "adam"]  # sgd means SGD with momentum 0.9
    variants: tuple[Variant, ...]
    params: tuple[ParamSpec, ...]  # the parameters that apply, in display order
    fixed: tuple[tuple[str, ParamValue], ...] = ()  # values of the parameters that do not apply

    @property
    def defaults(self) -> dict[str, ParamValue]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "citation": self.citation,
            "network": self.arch,
            "optimizer": "SGD with momentum 0.9" if self.optimizer == "sgd" else "Adam",
            "variants": [
                {"name": v.name, "label": v.label, "description": v.description}
                for v in self.variants
            ],
            "params": [p.as_dict() for p in self.params],
            "defaults": self.defaults,
            "fixed": self.fixed_settings(),
        }

    def fixed_settings(self) -> dict[str, ParamValue]:
        """The settings this preset holds fixed (neither a parameter nor varied by a variant)."""
        varied = {
            f
            for v in self.variants
            for f in ("activation", "init", "norm")
            if getattr(v, f) is not None
        }
        if not any(v.residual for v in self.variants):
            varied.add("branch_scale")
        return {k: v for k, v in self.fixed if k not in varied}


@dataclass(frozen=True)
class DemoConfig:
    """A complete, validated experiment: every field is filled (from the request, the preset's
    defaults, or the preset's fixed values for the parameters that do not apply)."""

    preset: str
    depth: int  # hidden layers (MLP) or blocks (transformer); layer 1 is nearest the input
    width: int  # hidden width / model dimension
    activation: str
    init: str
    norm: str
    branch_scale: str
    task: str
    steps: int  # 0 = initialization only
    batch_size: int
    lr: float
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """The canonical JSON-able config: the preset and every parameter that applies to it."""
        preset = PRESETS[self.preset]
        return {"preset": self.preset} | {p.name: getattr(self, p.name) for p in preset.params}

    def cache_key(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def branch_scale_value(self) -> float:
        return 1.0 / math.sqrt(self.depth) if self.branch_scale == "1/sqrt(depth)" else 1.0


PARAM_NAMES = (
    "depth", "width", "activation", "init", "norm", "branch_scale", "task",
    "steps", "batch_size", "lr", "seed",
)  # fmt: skip

_HELP = {
    "depth": "Number of hidden layers (blocks); layer 1 is nearest the input.",
    "width": "Units per hidden layer (model dimension of the transformer).",
    "activation": "Nonlinearity after each hidden layer.",
    "init": "Weight initialization: torch's default, Xavier/Glorot, or Kaiming/He (ReLU gain).",
    "norm": "Normalization applied to each hidden layer's input (pre-norm).",
    "branch_scale": "Scale s of the residual branch in h + s*f(h).",
    "task": "Regression onto a fixed random teacher network, or two-spirals classification.",
    "steps": "Training steps after initialization (0 = initialization only).",
    "batch_size": "Examples per training step.",
    "lr": "Learning rate.",
    "seed": "Random seed for data and weights (all variants share it).",
}


def _spec(name: str, default: ParamValue, **bounds: Any) -> ParamSpec:
    base: dict[str, dict[str, Any]] = {
        "depth": {"kind": "int", "min": 2, "max": 64},
        "width": {"kind": "int", "min": 8, "max": 256},
        "activation": {"kind": "choice", "choices": ACTIVATIONS},
        "init": {"kind": "choice", "choices": INITS},
        "norm": {"kind": "choice", "choices": NORMS},
        "branch_scale": {"kind": "choice", "choices": BRANCH_SCALES},
        "task": {"kind": "choice", "choices": TASKS},
        "steps": {"kind": "int", "min": 0, "max": 2000},
        "batch_size": {"kind": "int", "min": 8, "max": 512},
        "lr": {"kind": "float", "min": 1e-5, "max": 1.0},
        "seed": {"kind": "int", "min": 0, "max": 2**31 - 1},
    }
    kw = base[name] | bounds
    return ParamSpec(name=name, default=default, help=_HELP[name], **kw)


def _common(
    depth: int,
    width: int,
    steps: int,
    batch_size: int,
    lr: float,
    bounds: dict[str, dict[str, Any]] | None = None,
) -> tuple[ParamSpec, ...]:
    """depth, width, task, steps, batch_size, lr, seed with this preset's defaults (and
    bounds={"lr": {"max": ...}} overriding the usual bounds)."""
    bounds = bounds or {}
    return (
        _spec("depth", depth, **bounds.get("depth", {})),
        _spec("width", width, **bounds.get("width", {})),
        _spec("task", "teacher"),
        _spec("steps", steps, **bounds.get("steps", {})),
        _spec("batch_size", batch_size, **bounds.get("batch_size", {})),
        _spec("lr", lr, **bounds.get("lr", {})),
        _spec("seed", 0),
    )


def _with(common: tuple[ParamSpec, ...], *extra: ParamSpec) -> tuple[ParamSpec, ...]:
    return common[:2] + extra + common[2:]


_MLP_FIXED: tuple[tuple[str, ParamValue], ...] = (
    ("activation", "relu"),
    ("init", "default"),
    ("norm", "none"),
    ("branch_scale", "1/sqrt(depth)"),
)


def _fixed(params: tuple[ParamSpec, ...], **values: ParamValue) -> tuple[tuple[str, str], ...]:
    names = {p.name for p in params}
    merged = dict(_MLP_FIXED) | values
    return tuple((k, str(v)) for k, v in merged.items() if k not in names)


def _make_presets() -> dict[str, Preset]:
    presets: list[Preset] = []

    params = _with(
        _common(depth=32, width=64, steps=100, batch_size=32, lr=0.02),
        _spec("activation", "tanh"),
        _spec("init", "default"),
        _spec("norm", "none"),
        _spec("branch_scale", "1/sqrt(depth)"),
    )
    presets.append(
        Preset(
            name="residual-vs-plain",
            title="Residual connections vs a plain deep network",
            description=(
                "The same deep MLP with and without residual connections h + s*f(h). In the plain "
                "network the gradient shrinks layer by layer toward the input, so its first layers "
                "barely learn; the identity path of the residual network carries the gradient "
                "back to every layer at nearly the same size."
            ),
            citation="He et al., 2016",
            arch="mlp",
            optimizer="sgd",
            variants=(
                Variant("plain", "Plain", "h = f(h) in every layer.", residual=False),
                Variant("residual", "Residual", "h = h + s*f(h) in every layer.", residual=True),
            ),
            params=params,
            fixed=_fixed(params),
        )
    )

    params = _with(
        _common(depth=10, width=64, steps=100, batch_size=64, lr=0.1),
        _spec("init", "default"),
    )
    presets.append(
        Preset(
            name="vanishing-gradient",
            title="Vanishing gradients in a deep sigmoid network",
            description=(
                "A deep plain MLP with sigmoid, tanh or ReLU units. With sigmoid the gradient "
                "shrinks by a roughly constant factor at every layer, so it decays geometrically "
                "toward the input; tanh and ReLU lose much less per layer."
            ),
            citation="Glorot and Bengio, 2010",
            arch="mlp",
            optimizer="sgd",
            variants=(
                Variant("sigmoid", "Sigmoid", "Logistic sigmoid units.", activation="sigmoid"),
                Variant("tanh", "Tanh", "Hyperbolic tangent units.", activation="tanh"),
                Variant("relu", "ReLU", "Rectified linear units.", activation="relu"),
            ),
            params=params,
            fixed=_fixed(params, residual="no"),
        )
    )

    params = _with(
        _common(depth=32, width=64, steps=100, batch_size=64, lr=0.02),
        _spec("activation", "tanh"),
        _spec("init", "default"),
    )
    presets.append(
        Preset(
            name="normalization",
            title="Normalization layers in a deep network",
            description=(
                "A deep plain MLP without normalization, with layer normalization and with batch "
                "normalization before every hidden layer. Without it the gradient fades toward "
                "the input; normalizing each layer's input keeps the gradient at a similar scale "
                "across depth, and the normalized networks train faster."
            ),
            citation="Ioffe and Szegedy, 2015; Ba et al., 2016",
            arch="mlp",
            optimizer="sgd",
            variants=(
                Variant("none", "No normalization", "Plain layers.", norm="none"),
                Variant(
                    "layernorm", "LayerNorm", "Layer normalization (per example).", norm="layernorm"
                ),
                Variant(
                    "batchnorm",
                    "BatchNorm",
                    "Batch normalization (per feature, batch statistics).",
                    norm="batchnorm",
                ),
            ),
            params=params,
            fixed=_fixed(params, residual="no"),
        )
    )

    params = _common(
        depth=12,
        width=32,
        steps=50,
        batch_size=16,
        lr=1e-3,
        bounds={"lr": {"max": 0.1}, "width": {"max": 128}},
    )
    presets.append(
        Preset(
            name="layernorm-placement",
            title="Post-LN vs Pre-LN transformer blocks",
            description=(
                "Transformer blocks (self-attention and MLP) with layer normalization after the "
                "residual addition (Post-LN, the original Transformer), inside the residual branch "
                "(Pre-LN), or without a residual path. At initialization the Post-LN blocks near "
                "the output get much larger gradients than Pre-LN's, which is why Post-LN needs a "
                "learning-rate warm-up; Pre-LN gradients are about the same in every block."
            ),
            citation="Xiong et al., 2020",
            arch="transformer",
            optimizer="adam",
            variants=(
                Variant("post-ln", "Post-LN", "x = LN(x + F(x)).", block="post-ln"),
                Variant(
                    "pre-ln",
                    "Pre-LN",
                    "x = x + F(LN(x)), final LN before the head.",
                    block="pre-ln",
                ),
                Variant("no-residual", "No residual", "x = LN(F(x)).", block="no-residual"),
            ),
            params=params,
            fixed=(
                ("activation", "relu"),
                ("init", "xavier"),
                ("tokens", "one per input feature"),
                ("attention_heads", 1),
                ("warmup", "none"),
            ),
        )
    )

    params = _with(
        _common(depth=16, width=64, steps=100, batch_size=64, lr=0.01),
        _spec("init", "kaiming"),
        _spec("norm", "none"),
    )
    presets.append(
        Preset(
            name="activation-functions",
            title="Activation functions in a deep network",
            description=(
                "The same deep plain MLP with ReLU, tanh, sigmoid and GELU units. With He "
                "(Kaiming) initialization ReLU keeps the gradient at the same scale in every "
                "layer, while sigmoid, whose slope is at most 1/4, loses most of it at each layer."
            ),
            citation="He et al., 2015; Glorot and Bengio, 2010",
            arch="mlp",
            optimizer="sgd",
            variants=tuple(
                Variant(a, label, f"{label} units.", activation=a)
                for a, label in (
                    ("relu", "ReLU"),
                    ("tanh", "Tanh"),
                    ("sigmoid", "Sigmoid"),
                    ("gelu", "GELU"),
                )
            ),
            params=params,
            fixed=_fixed(params, residual="no"),
        )
    )

    params = _with(
        _common(depth=16, width=64, steps=100, batch_size=64, lr=0.02),
        _spec("activation", "relu"),
        _spec("norm", "none"),
    )
    presets.append(
        Preset(
            name="initialization",
            title="Weight initialization in a deep network",
            description=(
                "The same deep plain ReLU MLP with torch's default, Xavier and Kaiming (He) "
                "initialization. Only Kaiming, which doubles the weight variance to make up for "
                "the half of the units ReLU switches off, keeps the gradient at the same scale "
                "across layers; with the others it shrinks at every layer."
            ),
            citation="He et al., 2015; Glorot and Bengio, 2010",
            arch="mlp",
            optimizer="sgd",
            variants=(
                Variant(
                    "default",
                    "Default",
                    "torch's nn.Linear init, U(-1/sqrt(n), 1/sqrt(n)).",
                    init="default",
                ),
                Variant(
                    "xavier", "Xavier", "Glorot uniform, variance 2/(n_in + n_out).", init="xavier"
                ),
                Variant("kaiming", "Kaiming", "He normal, variance 2/n_in.", init="kaiming"),
            ),
            params=params,
            fixed=_fixed(params, residual="no"),
        )
    )
    return {p.name: p for p in presets}


PRESETS: dict[str, Preset] = _make_presets()


def estimate_seconds(preset: Preset, depth: int, width: int, batch_size: int, steps: int) -> float:
    """Estimated wall time of a run on the reference machine (2-core CPU, one torch thread).

    Per step, variant and layer: a fixed cost (the ops' dispatch and autograd), a cost per
    activation (elementwise ops) and a cost per multiply-add of the matmuls. Calibrated on
    the reference machine with some margin (benchmarks/demo.py measures the largest runs).
    """
    k = len(preset.variants)
    if preset.arch == "mlp":
        rows = batch_size
        per_layer = 70e-6 + 7e-9 * rows * width + 1e-10 * rows * width * width
    else:
        rows = batch_size * TRANSFORMER_TOKENS  # 12 W^2 multiply-adds per token and block
        per_layer = 450e-6 + 2.5e-8 * rows * width + 1.8e-10 * rows * 12 * width * width
    return 0.1 + (steps + 1) * k * depth * per_layer


TRANSFORMER_TOKENS = 16  # tokens per example of the teacher task (spirals has 2)


def resolve_config(preset: str | None, params: Mapping[str, str | None]) -> DemoConfig:
    """Parse raw query strings into a complete DemoConfig, or raise DemoInputError.

    Missing (None) parameters take the preset's defaults; unknown names are ignored; a
    parameter that does not apply to the preset is an error. Every problem is collected in
    the error's `.errors`; the exception itself describes the first.
    """
    name = (preset or DEFAULT_PRESET).strip()
    if name not in PRESETS:
        raise DemoInputError(
            "preset", f"preset must be one of {', '.join(PRESETS)}, got {preset!r}"
        )
    spec = PRESETS[name]
    values: dict[str, ParamValue] = dict(_MLP_FIXED) | dict(spec.fixed) | spec.defaults
    errors: list[dict[str, str]] = []
    for pname in PARAM_NAMES:
        raw = params.get(pname)
        if raw is None:
            continue
        p = spec.param(pname)
        if p is None:
            applicable = ", ".join(q.name for q in spec.params)
            errors.append(
                {
                    "param": pname,
                    "message": (
                        f"{pname} does not apply to preset {name!r} (the preset fixes it or its "
                        f"variants vary it); the parameters that apply are: {applicable}"
                    ),
                }
            )
            continue
        try:
            values[pname] = p.parse(raw)
        except DemoInputError as exc:
            errors.append({"param": pname, "message": exc.message})
    if errors:
        raise DemoInputError(errors[0]["param"], errors[0]["message"], errors)

    config = DemoConfig(
        preset=name,
        depth=int(values["depth"]),
        width=int(values["width"]),
        activation=str(values["activation"]),
        init=str(values["init"]),
        norm=str(values["norm"]),
        branch_scale=str(values["branch_scale"]),
        task=str(values["task"]),
        steps=int(values["steps"]),
        batch_size=int(values["batch_size"]),
        lr=float(values["lr"]),
        seed=int(values["seed"]),
    )
    cost = estimate_seconds(spec, config.depth, config.width, config.batch_size, config.steps)
    if cost > BUDGET_S:
        max_steps = max_steps_for(spec, config.depth, config.width, config.batch_size)
        size = f"depth={config.depth}, width={config.width} and batch_size={config.batch_size}"
        if estimate_seconds(spec, config.depth, config.width, config.batch_size, 0) > BUDGET_S:
            # even initialization alone is too big: blame the size parameter furthest above
            # its default
            d = spec.defaults
            param = max(
                ("batch_size", "width", "depth"), key=lambda n: getattr(config, n) / float(d[n])
            )
            raise DemoInputError(
                param,
                (
                    f"{size} are too large together for the compute budget of about "
                    f"{BUDGET_S:g} s per run, even with steps=0; lower {param} "
                    f"(now {getattr(config, param)})"
                ),
            )
        raise DemoInputError(
            "steps",
            (
                f"steps must be at most {max_steps} for {size} to stay within the compute "
                f"budget of about {BUDGET_S:g} s per run, got {config.steps}; lower steps, "
                "depth, width or batch_size"
            ),
        )
    return config


def max_steps_for(preset: Preset, depth: int, width: int, batch_size: int) -> int:
    """The most steps the compute budget allows at this size (may be below the steps bound)."""
    one = estimate_seconds(preset, depth, width, batch_size, 0)
    per_step = estimate_seconds(preset, depth, width, batch_size, 1) - one
    return max(0, math.floor((BUDGET_S - one) / per_step))


def presets_catalog() -> list[dict[str, Any]]:
    """JSON-able description of every preset for GET /api/demo/presets, default first."""
    out = []
    for p in PRESETS.values():
        d = p.as_dict()
        d["default"] = p.name == DEFAULT_PRESET
        d["budget_s"] = BUDGET_S
        out.append(d)
    return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 1:
        return str(int(x))
    return f"{x:g}"

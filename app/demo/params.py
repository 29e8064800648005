"""An experiment's parameters: one Pydantic model per experiment validates a query.

The model checks bounds and choices, and its after-validator the compute budget; what it
produces is the canonical config of a run. Every failure becomes one DemoInputError whose
messages name the parameter and its allowed values. No torch here: the web app imports it.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from app.demo.errors import DemoInputError

# The estimated wall time of one run on the reference machine (2-core CPU, one torch thread)
# may not exceed this; defaults stay far below it (about 1 s).
BUDGET_S = 5.0
_scale = 1.0  # this deployment's workers are this much faster (app/demo/calibration.py)


SCALE_FROM = 1.5  # a worker measured within this factor of the reference gets its budget


def set_budget_scale(speed: float) -> None:
    """Admit runs `speed` times the reference size when workers are clearly faster than the
    reference CPU (a GPU); never less than the reference. Speeds near 1 are measurement
    noise on a CPU like the reference: they keep the reference budget, so the limits a
    visitor sees do not wobble from one worker start to the next."""
    global _scale
    _scale = speed if speed >= SCALE_FROM else 1.0


def budget_s() -> float:
    """The compute budget in reference seconds for this deployment's slowest worker."""
    return BUDGET_S * _scale


MAX_RAW_LENGTH = 100  # characters of one raw query value

ParamValue = int | float | str


class ExperimentParams(BaseModel):
    """Base of every experiment's parameter model: strict bounds, a seed, a compute budget."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, str_strip_whitespace=True
    )
    # The parameter a budget error names unless budget_problem() says otherwise.
    budget_param: ClassVar[str] = "steps"

    seed: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        description="Random seed for data and weights (all variants share it).",
    )

    def estimate_seconds(self) -> float:
        """Estimated wall time on the reference machine; experiments that train override it."""
        return 0.1

    def budget_problem(self) -> tuple[str, str] | None:
        """(parameter, message) when the run would exceed the compute budget, else None."""
        cost, budget = self.estimate_seconds(), budget_s()
        if cost <= budget:
            return None
        return self.budget_param, (
            f"this run is estimated at {cost:.1f} s, over the compute budget of about "
            f"{budget:g} s per run; lower {self.budget_param}"
        )

    @field_validator("*", mode="before")
    @classmethod
    def _fold_choices(cls, value: Any, info: Any) -> Any:
        """Choices are matched case-insensitively ("ReLU" is relu)."""
        field = cls.model_fields.get(info.field_name)
        if isinstance(value, str) and field is not None and choices(field):
            return value.strip().lower()
        return value

    @model_validator(mode="after")
    def _within_budget(self) -> Self:
        problem = self.budget_problem()
        if problem is not None:
            param, message = problem
            raise PydanticCustomError(
                "compute_budget", "{message}", {"param": param, "message": message}
            )
        return self

    def canonical(self) -> dict[str, ParamValue]:
        """Every parameter's value, seed last (the run's config without its name)."""
        values = self.model_dump()
        values["seed"] = values.pop("seed")
        return values


def choices(field: FieldInfo) -> tuple[str, ...]:
    """The allowed values of a Literal field, or () for numbers."""
    if typing.get_origin(field.annotation) is Literal:
        return tuple(str(a) for a in typing.get_args(field.annotation))
    return ()


def _bound(
    field: FieldInfo, kind: type[annotated_types.Ge] | type[annotated_types.Le]
) -> float | None:
    attr = "ge" if kind is annotated_types.Ge else "le"
    for meta in field.metadata:
        if isinstance(meta, kind):
            return typing.cast(float, getattr(meta, attr))
    return None


def describe(name: str, field: FieldInfo) -> dict[str, Any]:
    """One parameter for the catalog: kind, default, bounds or choices, help."""
    spec: dict[str, Any] = {"name": name}
    options = choices(field)
    if options:
        spec |= {"kind": "choice", "default": field.default, "choices": list(options)}
    elif field.annotation is str:
        spec |= {"kind": "text", "default": field.default, "max_length": _max_length(field)}
    else:
        kind = "int" if field.annotation is int else "float"
        spec |= {
            "kind": kind,
            "default": field.default,
            "min": _bound(field, annotated_types.Ge),
            "max": _bound(field, annotated_types.Le),
        }
    spec["help"] = field.description or ""
    return spec


def describe_all(model: type[ExperimentParams]) -> list[dict[str, Any]]:
    """The model's parameters in display order (seed last)."""
    names = [n for n in model.model_fields if n != "seed"] + ["seed"]
    return [describe(n, model.model_fields[n]) for n in names]


def allowed(field: FieldInfo) -> str:
    """The allowed values in words, e.g. 'an integer from 2 to 64'."""
    options = choices(field)
    if options:
        return "one of " + ", ".join(options)
    if field.annotation is str:
        shortest = _min_length(field)
        if not shortest:
            return f"text of at most {_max_length(field)} characters"
        return f"text of {shortest} to {_max_length(field)} characters"
    noun = "an integer" if field.annotation is int else "a number"
    lo, hi = _bound(field, annotated_types.Ge), _bound(field, annotated_types.Le)
    return f"{noun} from {_fmt(lo)} to {_fmt(hi)}"


def _min_length(field: FieldInfo) -> int | None:
    for meta in field.metadata:
        if isinstance(meta, annotated_types.MinLen):
            return int(meta.min_length)
    return None


def _max_length(field: FieldInfo) -> int | None:
    for meta in field.metadata:
        if isinstance(meta, annotated_types.MaxLen):
            return int(meta.max_length)
    return None


def raw_limit(model: type[ExperimentParams], name: str) -> int:
    """The longest raw value a parameter takes: MAX_RAW_LENGTH, or a text field's max_length."""
    field = model.model_fields.get(name)
    longest = _max_length(field) if field is not None else None
    return max(MAX_RAW_LENGTH, longest or 0)


def parse_params(
    model: type[ExperimentParams], raw: Mapping[str, str], experiment: str
) -> ExperimentParams:
    """Validate raw query strings with the experiment's model, or raise DemoInputError."""
    errors: list[dict[str, str]] = []
    values: dict[str, str] = {}
    for name, value in raw.items():
        limit = raw_limit(model, name)
        if len(value) > limit:
            errors.append({"param": name, "message": f"{name} is longer than {limit} characters"})
        else:
            values[name] = value
    if not errors:
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            errors = [_problem(model, err, experiment, values) for err in exc.errors()]
    raise DemoInputError(errors[0]["param"], errors[0]["message"], errors)


def _problem(
    model: type[ExperimentParams], err: Any, experiment: str, values: Mapping[str, str]
) -> dict[str, str]:
    """One pydantic error as {param, message} in the demo's words."""
    if err["type"] == "compute_budget":
        return {"param": err["ctx"]["param"], "message": err["ctx"]["message"]}
    name = str(err["loc"][0]) if err["loc"] else "?"
    if err["type"] == "extra_forbidden":
        applicable = ", ".join(p["name"] for p in describe_all(model))
        message = (
            f"{name} does not apply to experiment {experiment!r} (it fixes it, or its variants "
            f"vary it); the parameters that apply are: {applicable}"
        )
        return {"param": name, "message": message}
    field = model.model_fields[name]
    return {"param": name, "message": f"{name} must be {allowed(field)}, got {values.get(name)!r}"}


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    if float(x).is_integer() and abs(x) >= 1:
        return str(int(x))
    return f"{x:g}"


def finite(x: float | None) -> bool:
    """True for a real number (not None, nan or inf)."""
    return x is not None and math.isfinite(x)

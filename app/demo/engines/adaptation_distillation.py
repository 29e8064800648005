"""Knowledge distillation: a small GPT student trained on the served model's softened
next-token distributions, against the same student (same initialization, same windows in the
same order) trained on the true next tokens alone; both scored on held-out glossary entries."""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from app.demo.engines.common import fmt, num
from app.demo.experiment import EngineOutput, Experiment, RunContext
from app.demo.families.adaptation import STUDENT, STUDENT_BATCH, DistillationParams
from app.demo.lm.gpt import GPT
from app.demo.lm.text import glossary_text
from app.demo.lm.training import eval_starts, loss_without_grad, windows
from app.demo.result import Chart, Number, Series, VariantResult

LR = 3e-2  # Adam; 1e-2 and 3e-2 tried on the served model, 3e-2 learned faster for both
EVAL_WINDOWS = 32  # 64-token windows of the held-out entries (a student scores them in ~3 ms)
CURVE_POINTS = 12  # held-out loss measured this many times along training, after step 0
CHUNK = 32  # windows per teacher forward pass


@functools.cache
def glossary_ids() -> tuple[torch.Tensor, torch.Tensor]:
    """The glossary's training text (the teacher's) and its held-out entries, as token ids."""
    text = glossary_text()
    return torch.tensor(text.train), torch.tensor(text.val)


def soft_targets(teacher: GPT, x: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N, T) windows -> (N, T, V) log-probabilities of the teacher's softmax at temperature."""
    with torch.no_grad():
        parts = [teacher(x[i : i + CHUNK])[0] for i in range(0, len(x), CHUNK)]
    return F.log_softmax(torch.cat(parts) / temperature, dim=-1)


def distillation_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logp: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha T^2 KL(teacher_T || student_T) + (1 - alpha) CE(true tokens), per token mean.

    logits (B, T, V) of the student, targets (B, T), teacher_logp (B, T, V) at temperature.
    T^2 keeps the soft term's gradients on the scale of the hard term's (Hinton et al.)."""
    v = logits.size(-1)
    hard = F.cross_entropy(logits.reshape(-1, v), targets.reshape(-1))
    if alpha == 0:
        return hard
    student_logp = F.log_softmax(logits / temperature, dim=-1).reshape(-1, v)
    kl = F.kl_div(student_logp, teacher_logp.reshape(-1, v), log_target=True, reduction="batchmean")
    return alpha * temperature**2 * kl + (1 - alpha) * hard


def kl_from_teacher(student: GPT, x: torch.Tensor, teacher_logp: torch.Tensor) -> float:
    """Mean KL(teacher || student) per token at T = 1, nats."""
    with torch.no_grad():
        logp = F.log_softmax(student(x)[0], dim=-1)
    v = logp.size(-1)
    return float(
        F.kl_div(
            logp.reshape(-1, v), teacher_logp.reshape(-1, v), log_target=True, reduction="batchmean"
        ).item()
    )


@dataclass
class Student:
    name: str
    label: str
    train_loss: list[Number] = field(default_factory=list)  # the objective it minimized
    val_loss: list[tuple[float, Number]] = field(default_factory=list)  # (step, nats)
    final_val: float = float("nan")
    final_train_ce: float = float("nan")  # true-token cross-entropy on the transfer set
    kl: float = float("nan")


def run(experiment: Experiment, params: DistillationParams, ctx: RunContext) -> EngineOutput:
    teacher: GPT = copy.deepcopy(ctx.lm.model).to(ctx.device)  # the served model is shared
    teacher.eval()
    block, temperature, alpha = teacher.config.block_size, params.temperature, params.alpha
    train_ids, val_ids = glossary_ids()  # shared: read, never written
    g = torch.Generator().manual_seed(params.seed)
    starts = torch.randint(0, len(train_ids) - block - 1, (params.train_windows,), generator=g)
    x, y = (t.to(ctx.device) for t in windows(train_ids, starts, block))  # (W, block) each
    soft = soft_targets(teacher, x, temperature)  # (W, block, V), once for every step
    n_batches = params.train_windows // STUDENT_BATCH
    # Each pass over the transfer set in a new random order, the same for both students.
    passes = 1 + params.steps // n_batches
    used = n_batches * STUDENT_BATCH
    order = torch.cat([torch.randperm(used, generator=g) for _ in range(passes)]).to(ctx.device)
    vstarts = eval_starts(len(val_ids), block, EVAL_WINDOWS)
    vx, vy = (t.to(ctx.device) for t in windows(val_ids, vstarts, block))
    teacher_val = loss_without_grad(teacher, vx, vy)
    teacher_val_logp = soft_targets(teacher, vx, 1.0)
    torch.manual_seed(params.seed)  # the student's initialization, shared by both
    init = GPT(dataclasses.replace(STUDENT, block_size=block)).to(ctx.device)
    checkpoints = {round(params.steps * k / CURVE_POINTS) for k in range(1, CURVE_POINTS + 1)}
    students = [
        Student("distilled", "Distilled student"),
        Student("data-only", "Data-only student"),
    ]
    total = 2 * params.steps
    for k, s in enumerate(students):
        model = copy.deepcopy(init)
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
        s.val_loss.append((0.0, num(loss_without_grad(model, vx, vy))))
        for step in range(params.steps):
            ctx.check(k * params.steps + step, total)
            idx = order[step * STUDENT_BATCH : (step + 1) * STUDENT_BATCH]
            logits, _ = model(x[idx])  # (B, block, V)
            weight = alpha if s.name == "distilled" else 0.0
            loss = distillation_loss(logits, y[idx], soft[idx], temperature, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            s.train_loss.append(num(loss.item()))
            if step + 1 in checkpoints:  # the last step is one: final_val is its point
                s.final_val = loss_without_grad(model, vx, vy)
                s.val_loss.append((float(step + 1), num(s.final_val)))
        s.final_train_ce = loss_without_grad(model, x, y)
        s.kl = kl_from_teacher(model, vx, teacher_val_logp)
        if ctx.wants_progress:
            ctx.progress((k + 1) * params.steps, total, [val_chart(students, teacher_val)])
    return output(students, teacher, init, teacher_val, params)


def output(
    students: list[Student],
    teacher: GPT,
    student: GPT,
    teacher_val: float,
    params: DistillationParams,
) -> EngineOutput:
    distilled, data_only = students
    variants = [
        VariantResult(
            name=s.name,
            label=s.label,
            metrics={
                "final_val_loss": num(s.final_val),
                "final_train_loss": num(s.final_train_ce),
                "final_loss": s.train_loss[-1] if s.train_loss else None,
                "kl_from_teacher": num(s.kl),
            },
            loss=s.train_loss,
        )
        for s in students
    ]
    gain = data_only.final_val - distilled.final_val
    run_metrics: dict[str, Number] = {
        "temperature": params.temperature,
        "alpha": params.alpha,
        "teacher_val_loss": num(teacher_val),
        "val_loss_gain": num(gain),
        "kl_ratio": num(distilled.kl / data_only.kl) if data_only.kl > 0 else None,
        "student_params": float(student.num_params()),
        "teacher_params": float(teacher.num_params()),
    }
    summary = (
        f"Trained {params.steps} steps on {params.train_windows} windows of text, the "
        f"{student.num_params():,}-parameter student reached a held-out loss of "
        f"{fmt(distilled.final_val)} nats distilled (T = {params.temperature:g}, alpha = "
        f"{params.alpha:g}) and {fmt(data_only.final_val)} on the data alone; the "
        f"{teacher.num_params():,}-parameter teacher scores {fmt(teacher_val)}."
    )
    return EngineOutput(variants, [val_chart(students, teacher_val)], summary, run_metrics)


def val_chart(students: list[Student], teacher_val: float) -> Chart:
    series = [Series(label=s.label, variant=s.name, points=s.val_loss) for s in students]
    last = max((p[0] for s in students for p in s.val_loss), default=0.0)
    series.append(
        Series(label="teacher", points=[(0.0, teacher_val), (last, teacher_val)], style="dashed")
    )
    ends = [
        f"{fmt(s.val_loss[-1][1])} ({s.label.lower()})" for s in students if len(s.val_loss) > 1
    ]
    return Chart(
        id="val-loss",
        kind="line",
        title="Held-out loss of each student during training",
        x_label="step",
        y_label="cross-entropy (nats per token)",
        series=series,
        finding=f"Held-out loss at the end of training: {', '.join(ends) or 'not yet'}; the "
        f"teacher's is {fmt(teacher_val)}.",
    )

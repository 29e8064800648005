"""Direct checks of the adaptation engines against plain references: a LoRA layer at init is its
base layer and later computes W + (alpha / r) B A, the tied adapter serves embedding and output
alike, merging keeps the function, only adapters train; the distillation loss is T^2 KL (its
gradient T (p_s - p_t)) and cross-entropy at alpha 0; the formulas are new to the model."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from app.demo.engines import adaptation_distillation as kd
from app.demo.engines import adaptation_lora as lora
from app.demo.lm.config import GPTConfig
from app.demo.lm.gpt import GPT
from app.demo.lm.text import decode, read_text

CONFIG = GPTConfig(block_size=16, n_layer=2, n_head=2, n_embd=16)


def small_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(CONFIG)
    model.eval()
    return model


def randomize_adapters(model: nn.Module, seed: int = 1) -> None:
    """Give every adapter factor (the zero ones too) random values, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                assert name.split(".")[-1] in ("A", "B"), name
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def tokens(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, CONFIG.vocab_size, (n, CONFIG.block_size), generator=g)


def test_a_lora_layer_is_its_base_at_init_and_w_plus_scaled_ba_after() -> None:
    torch.manual_seed(0)
    base = nn.Linear(12, 20).requires_grad_(False)
    layer = lora.LoRALinear(base, rank=3, alpha=6.0, g=torch.Generator().manual_seed(0))
    x = torch.randn(2, 5, 12)
    assert torch.equal(layer(x), base(x))  # B = 0: exactly the base layer
    assert float(layer.A.detach().abs().max()) > 0  # A is random, not zero
    randomize_adapters(layer)
    w = base.weight + (6.0 / 3) * layer.B @ layer.A  # (20, 12), by hand
    expected = x @ w.T + base.bias
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert not torch.allclose(layer(x), base(x), atol=1e-3)


def test_the_tied_adapter_changes_embedding_and_output_alike() -> None:
    model = lora.add_lora(small_gpt(), 2, 4.0, torch.Generator().manual_seed(0))
    randomize_adapters(model)
    tied = model.wte.tied
    e = tied.wte.weight + (4.0 / 2) * tied.A @ tied.B  # (V, d), by hand
    idx = tokens()
    assert torch.allclose(model.wte(idx), e[idx], atol=1e-6)
    h = torch.randn(3, CONFIG.block_size, CONFIG.n_embd)
    assert torch.allclose(model.head(h), h @ e.T, atol=1e-5)


def test_adding_lora_leaves_the_model_unchanged_until_it_trains() -> None:
    base = small_gpt()
    x = tokens()
    for rank in (1, 4):
        model = lora.add_lora(copy.deepcopy(base), rank, 16.0, torch.Generator().manual_seed(0))
        assert torch.equal(lora.logits_of(model, x), lora.logits_of(base, x))


def test_only_the_adapters_train() -> None:
    base = small_gpt()
    model = lora.add_lora(copy.deepcopy(base), 4, 16.0, torch.Generator().manual_seed(0))
    d, v, r = CONFIG.n_embd, CONFIG.vocab_size, 4
    per_layer = r * (d + 3 * d) + r * (d + d)  # qkv: (3d, d); proj: (d, d)
    assert lora.trainable(model) == CONFIG.n_layer * per_layer + r * (v + d)
    assert lora.trainable(copy.deepcopy(base)) == base.num_params()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = tokens()
    for _ in range(3):
        loss = model.loss(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    frozen = dict(base.named_parameters())
    moved = [n for n, p in model.named_parameters() if p.requires_grad]
    assert moved
    for name, p in model.named_parameters():
        if not p.requires_grad:  # every frozen weight is still the base model's
            key = name.replace(".base.", ".").replace("wte.tied.wte.", "wte.")
            assert torch.equal(p, frozen[key]), name
    assert not torch.equal(lora.logits_of(model, x), lora.logits_of(base, x))


def test_merging_keeps_the_function_and_leaves_a_plain_gpt() -> None:
    base = small_gpt()
    model = lora.add_lora(copy.deepcopy(base), 4, 16.0, torch.Generator().manual_seed(0))
    randomize_adapters(model)
    merged = lora.merge(model)
    x = tokens()
    assert torch.allclose(lora.logits_of(merged, x), lora.logits_of(model, x), atol=1e-4)
    kinds = {type(m) for m in merged.modules()}
    assert not kinds & {lora.LoRALinear, lora.TiedLoRA, lora.AdaptedEmbedding, lora.AdaptedHead}
    assert merged.num_params() == base.num_params()
    assert merged.head.weight is merged.wte.weight  # still tied
    # merged weights are W + (alpha / r) B A
    qkv = model.blocks[0].attn.qkv
    w = qkv.base.weight + (16.0 / 4) * qkv.B @ qkv.A
    assert torch.allclose(merged.blocks[0].attn.qkv.weight, w, atol=1e-6)


def test_the_formulas_are_new_to_the_model() -> None:
    train, val = lora.formula_text()
    assert train and val
    assert 0.15 < len(val) / (len(train) + len(val)) < 0.35  # one formula in four
    seen = decode(read_text(lora.DATA_DIR).train)
    assert "\\" not in seen  # the model's training text holds no backslash
    assert decode(val).count("\\") > 20


def test_soft_targets_are_the_teachers_tempered_distribution() -> None:
    teacher, x = small_gpt(), tokens()
    for t in (1.0, 3.0):
        logp = kd.soft_targets(teacher, x, t)
        assert torch.allclose(logp.exp().sum(-1), torch.ones(logp.shape[:-1]), atol=1e-5)
        logits, _ = teacher(x)
        assert torch.allclose(logp, torch.log_softmax(logits.detach() / t, -1), atol=1e-5)


def test_the_distillation_loss_is_t_squared_kl_and_its_gradient_t_times_p_s_minus_p_t() -> None:
    g = torch.Generator().manual_seed(0)
    b, n, v, t = 2, 5, 7, 2.5
    student = torch.randn(b, n, v, generator=g, requires_grad=True)
    teacher = torch.randn(b, n, v, generator=g)
    targets = torch.randint(0, v, (b, n), generator=g)
    p_t, p_s = (z.detach().div(t).softmax(-1) for z in (teacher, student))
    kl = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()  # per token, by hand
    loss = kd.distillation_loss(student, targets, torch.log_softmax(teacher / t, -1), t, 1.0)
    assert math.isclose(loss.item(), t * t * kl.item(), rel_tol=1e-5)
    loss.backward()
    assert student.grad is not None
    expected = t * (p_s - p_t) / (b * n)  # Hinton et al.'s gradient, averaged over tokens
    assert torch.allclose(student.grad, expected, atol=1e-6)
    hard = kd.distillation_loss(student, targets, torch.log_softmax(teacher / t, -1), t, 0.0)
    ce = F.cross_entropy(student.reshape(-1, v), targets.reshape(-1))
    assert hard.item() == ce.item()
    mixed = kd.distillation_loss(student, targets, torch.log_softmax(teacher / t, -1), t, 0.3)
    assert math.isclose(mixed.item(), 0.3 * loss.item() + 0.7 * ce.item(), rel_tol=1e-5)


def test_kl_from_the_teacher_is_zero_for_the_teacher_only() -> None:
    teacher, x = small_gpt(0), tokens()
    logp = kd.soft_targets(teacher, x, 1.0)
    assert abs(kd.kl_from_teacher(teacher, x, logp)) < 1e-5
    assert kd.kl_from_teacher(small_gpt(1), x, logp) > 1e-3

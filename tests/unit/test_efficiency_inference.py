"""Direct checks of the inference-efficiency engines against plain references: the quantizer's
grid and rounding error, the outlier change that keeps the function, LLM.int8()'s
decomposition, attention written out and fused against a loop, the profiler's peak memory,
and grouped-query attention against the trained model with averaged key/value weights."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from app.demo.engines import efficiency_attention as att
from app.demo.engines import efficiency_quantization as quant
from app.demo.lm.gpt import GPT
from app.demo.lm.text import glossary_text
from app.demo.lm.training import eval_starts, windows
from tests.lm_fixtures import tiny_lm


def held_out_windows(model: GPT, count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor(glossary_text().val, dtype=torch.long)
    block = model.config.block_size
    return windows(ids, eval_starts(len(ids), block, count), block)


# ----------------------------------------------------------------------------- quantization


@pytest.mark.parametrize("bits", [8, 4, 3])
@pytest.mark.parametrize("dim", [None, 1])
def test_fake_quantize_rounds_to_the_nearest_level(bits: int, dim: int | None) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 40, generator=g) * torch.logspace(-2, 0, 16)[:, None]  # rows differ
    qmax = 2 ** (bits - 1) - 1
    amax = w.abs().max() if dim is None else w.abs().amax(dim=1, keepdim=True)
    step = (amax / qmax).expand_as(w)
    wq = quant.fake_quantize(w, bits, dim)
    levels = wq / step
    assert torch.allclose(levels, levels.round(), atol=1e-3), "not on the integer grid"
    assert float(levels.abs().max()) <= qmax + 1e-3
    assert bool(((wq - w).abs() <= step / 2 + 1e-6).all()), "more than half a step off"
    # the largest |w| of each slice is a level itself, so it comes back exactly
    top = w.abs().argmax() if dim is None else w.abs().argmax(dim=1)
    if dim is None:
        assert math.isclose(float(wq.flatten()[top]), float(w.flatten()[top]), rel_tol=1e-6)
    else:
        rows = torch.arange(w.size(0))
        assert torch.allclose(wq[rows, top], w[rows, top], rtol=1e-6)


def test_per_channel_error_is_smaller_when_rows_differ() -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(32, 64, generator=g) * torch.logspace(-2, 0, 32)[:, None]
    per_tensor = (quant.fake_quantize(w, 4, None) - w).norm()
    per_channel = (quant.fake_quantize(w, 4, 1) - w).norm()
    assert float(per_channel) < 0.5 * float(per_tensor)


def test_quant_linear_at_high_precision_and_with_every_feature_kept_in_float() -> None:
    g = torch.Generator().manual_seed(2)
    linear = torch.nn.Linear(24, 12)
    x = torch.randn(3, 5, 24, generator=g)
    x[..., 7] *= 60  # an outlier feature
    expected = linear(x).detach()
    # 16-bit weights and threshold 0 (every feature "outlier"): the float product exactly
    all_float = quant.QuantLinear(linear, quant.Scheme(16, True, threshold=0.0))
    assert torch.allclose(all_float(x), expected, atol=1e-5)
    # no decomposition: per-tensor int8 inputs lose the small features to the outlier's scale
    per_tensor = quant.QuantLinear(linear, quant.Scheme(16, False))
    mixed = quant.QuantLinear(linear, quant.Scheme(16, True, threshold=6.0))
    err_tensor = float((per_tensor(x) - expected).norm() / expected.norm())
    err_mixed = float((mixed(x) - expected).norm() / expected.norm())
    assert err_mixed < 0.2 * err_tensor, (err_mixed, err_tensor)
    assert per_tensor.errors and math.isclose(per_tensor.errors[-1], err_tensor, rel_tol=1e-4)


def test_the_outlier_change_keeps_the_function() -> None:
    model = copy.deepcopy(tiny_lm().model).eval()
    x, y = held_out_windows(model)
    outlier = quant.with_outlier(model, feature=5, factor=60.0)
    ref, lp = quant.log_probs(model, x), quant.log_probs(outlier, x)
    assert abs(quant.perplexity(lp, y) / quant.perplexity(ref, y) - 1) < 1e-5
    assert quant.kl_divergence(ref, lp) < 1e-6
    block, moved = model.blocks[0], outlier.blocks[0]
    h = torch.randn(2, 3, model.config.n_embd)
    ratio = moved.ln_1(h)[..., 5] / block.ln_1(h)[..., 5]
    assert torch.allclose(ratio, torch.full_like(ratio, 60.0), rtol=1e-4)


def test_kl_divergence_matches_torch_and_quantizing_moves_the_model() -> None:
    model = copy.deepcopy(tiny_lm().model).eval()
    x, _ = held_out_windows(model)
    ref = quant.log_probs(model, x)
    q_model, layers = quant.quantized(model, quant.Scheme(4, False))
    lp = quant.log_probs(q_model, x)
    expected = F.kl_div(lp.flatten(0, 1), ref.flatten(0, 1), reduction="batchmean", log_target=True)
    assert math.isclose(quant.kl_divergence(ref, lp), float(expected), rel_tol=1e-9)
    assert quant.kl_divergence(ref, ref) == 0.0
    assert quant.kl_divergence(ref, lp) > 0
    assert len(layers) == 4 * model.config.n_layer
    assert all(len(layer.errors) == 1 and layer.errors[0] > 0 for layer in layers)


# ----------------------------------------------------------------------------- attention kernels


def loop_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention one query at a time: the plain reference."""
    out = torch.empty_like(q)
    for i in range(q.size(-2)):  # query i sees keys 0..i
        logits = (q[..., i, None, :] * k[..., : i + 1, :]).sum(-1) / math.sqrt(q.size(-1))
        out[..., i, :] = (logits.softmax(-1)[..., None] * v[..., : i + 1, :]).sum(-2)
    return out


def test_written_out_and_fused_attention_equal_a_loop() -> None:
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 3, 20, 8, generator=g) for _ in range(3))
    expected = loop_attention(q, k, v)
    assert torch.allclose(att.plain_attention(q, k, v), expected, atol=1e-5)
    assert torch.allclose(att.fused_attention(q, k, v), expected, atol=1e-5)
    scores = q @ k.transpose(-2, -1)
    assert att.score_bytes(q) == scores.numel() * scores.element_size() == 3 * 20 * 20 * 4


def test_the_profiled_peak_counts_what_is_held_at_once() -> None:
    def two_then_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a = torch.zeros(1000)  # 4,000 bytes
        b = torch.zeros(3000)  # 12,000 bytes, while a is held
        del a, b
        return torch.zeros(500)  # 2,000 bytes, after both were freed

    x = torch.zeros(1)
    assert att.cpu_peak_bytes(two_then_one, x, x, x) == 16000
    t = 256
    q, k, v = (torch.randn(1, 4, t, 16) for _ in range(3))
    with torch.no_grad():
        plain = att.cpu_peak_bytes(att.plain_attention, q, k, v)
        fused = att.cpu_peak_bytes(att.fused_attention, q, k, v)
    assert plain >= att.score_bytes(q), "the written-out path must hold its T x T scores"
    assert fused < att.score_bytes(q) / 4, "the fused kernel never holds them"


def test_sweep_lengths_and_slope() -> None:
    from app.demo.families.efficiency_inference import sweep_lengths

    assert sweep_lengths(64) == [64]
    assert sweep_lengths(512) == [64, 128, 256, 512]
    assert sweep_lengths(300) == [64, 128, 256, 300]
    assert att.slope([64, 512], [1.0, 64.0]) == pytest.approx(2.0)
    assert att.slope([64], [1.0]) is None


# ----------------------------------------------------------------------------- grouped-query


def averaged_kv(model: GPT, kv_heads: int) -> GPT:
    """The plain GPT with each group's key and value weights replaced by the group's mean."""
    copied: GPT = copy.deepcopy(model)
    c, nh = model.config.n_embd, model.config.n_head
    hs, group = c // nh, nh // kv_heads
    with torch.no_grad():
        for block in copied.blocks:
            for part in (1, 2):  # keys, values
                rows = slice(part * c, (part + 1) * c)
                for p in (block.attn.qkv.weight, block.attn.qkv.bias):
                    heads = p[rows].reshape(kv_heads, group, hs, -1)
                    p[rows] = heads.mean(1, keepdim=True).expand_as(heads).reshape(p[rows].shape)
    return copied


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_grouped_attention_equals_the_model_with_averaged_heads(kv_heads: int) -> None:
    model = copy.deepcopy(tiny_lm().model).eval()
    x, _ = held_out_windows(model, 2)
    with torch.no_grad():
        expected, _ = averaged_kv(model, kv_heads)(x)
        got, presents = att.grouped(model, kv_heads)(x)
        original, _ = model(x)
    assert torch.allclose(got, expected, atol=1e-4)
    if kv_heads == model.config.n_head:
        assert torch.allclose(got, original, atol=1e-4)
    else:
        assert not torch.allclose(got, original, atol=1e-2), "averaging changed nothing"
    hs = model.config.n_embd // model.config.n_head
    assert presents and all(k.shape == (2, kv_heads, x.size(1), hs) for k, _ in presents)
    per_token = model.config.n_layer * 2 * kv_heads * hs * 4  # keys and values, float32
    assert att.cache_bytes_per_token(presents) == per_token


def test_grouped_attention_with_its_cache_equals_the_full_pass() -> None:
    model = att.grouped(copy.deepcopy(tiny_lm().model).eval(), 2)
    x, _ = held_out_windows(model, 1)
    x = x[:, :20]
    with torch.no_grad():
        full, _ = model(x)
        logits, past = model(x[:, :8])
        steps = [logits]
        for i in range(8, x.size(1)):
            logits, past = model(x[:, i : i + 1], past)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-4)
    assert past[0][0].shape[1] == 2 and past[0][0].shape[2] == x.size(1)

"""FLOPs-per-token conventions and the N convention (matmul parameters, embeddings excluded)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from flops_fit.flops import flops_per_token, matmul_params, total_params


class TinyLM(nn.Module):
    """Token + position embeddings, one causal attention block, a head tied to the token embedding."""

    def __init__(self, vocab: int = 50, d: int = 32, n_head: int = 2, block: int = 16, tied: bool = True) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.head = nn.Linear(d, vocab, bias=False)
        if tied:
            self.head.weight = self.wte.weight
        self.n_head = n_head

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.qkv(x).split(x.shape[-1], dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.head(x + self.proj(y.transpose(1, 2).reshape(B, T, -1)))


class BroadcastMatmul(nn.Module):
    """A matmul written as multiply-and-sum: FlopCounterMode sees no matmul op in it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(64, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(-1) * self.w).sum(-2)


def test_6n_of_a_pure_linear_model_is_six_times_its_parameters():
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    assert matmul_params(model) == total_params(model) == 16 * 64 + 64 + 64 * 4 + 4
    assert flops_per_token(model, "6N") == (6.0 * total_params(model), [])


def test_embedding_lookups_are_excluded_and_a_tied_head_counts_once():
    d, vocab, block = 32, 50, 16
    linear = 3 * d * d + 3 * d + d * d + d
    tied, untied = TinyLM(vocab, d, block=block), TinyLM(vocab, d, block=block, tied=False)
    assert matmul_params(tied) == linear + vocab * d  # head (= token embedding) once; position embedding out
    assert total_params(tied) == linear + vocab * d + block * d
    assert matmul_params(untied) == linear + vocab * d  # the untied token embedding is lookup-only
    assert total_params(untied) == linear + 2 * vocab * d + block * d


def test_measured_is_about_6n_for_an_mlp():
    model = nn.Sequential(nn.Linear(8, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 8))
    fpt, warnings = flops_per_token(model, "measured", example_inputs=torch.randn(32, 8), tokens_per_sample=1)
    assert warnings == []
    # only the first layer's input gradient is not computed (inputs need no gradient): within 2 %
    assert fpt == pytest.approx(6.0 * matmul_params(model), rel=0.02)


def test_measured_runs_on_meta_and_leaves_the_model_untouched():
    model = nn.Sequential(nn.Linear(8, 16), nn.Linear(16, 8))
    before = [p.clone() for p in model.parameters()]
    flops_per_token(model, "measured", example_inputs=torch.randn(4, 8), tokens_per_sample=1)
    assert all(p.device.type == "cpu" and p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_attention_term_is_twelve_layers_context_width():
    d, T = 32, 16
    model = TinyLM(d=d, block=T)
    idx = torch.zeros(4, T, dtype=torch.long)
    fpt, warnings = flops_per_token(model, "6N+attention", example_inputs=idx)
    assert warnings == []
    assert fpt == pytest.approx(6.0 * matmul_params(model) + 12 * 1 * T * d)
    measured, _ = flops_per_token(model.to("meta"), "measured", example_inputs=idx.to("meta"), tokens_per_sample=T)
    assert measured == pytest.approx(fpt, rel=0.05)


def test_measured_falls_back_to_6n_with_a_warning_when_nothing_is_counted():
    model = BroadcastMatmul()
    fpt, warnings = flops_per_token(model, "measured", example_inputs=torch.randn(4, 64), tokens_per_sample=1)
    assert fpt == 6.0 * 64 * 64
    assert len(warnings) == 1 and "6N" in warnings[0]


def test_unknown_convention_and_missing_inputs_are_errors():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="unknown FLOPs convention"):
        flops_per_token(model, "2N")
    with pytest.raises(ValueError, match="example_inputs"):
        flops_per_token(model, "measured")

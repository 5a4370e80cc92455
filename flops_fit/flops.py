"""FLOPs per trained token under three conventions, and the parameter count N they rest on.

Scaling-law fits go wrong when compute is counted one way and fitted another (Porian et al.: leaving
the head out moves Kaplan's exponent from 0.70 to 0.83), so the convention is chosen explicitly and
recorded in the runs table.

* ``N`` (:func:`matmul_params`): every parameter that takes part in a matmul, i.e. all parameters
  except those used only by ``nn.Embedding``/``nn.EmbeddingBag`` lookups. The output head is counted;
  a weight tied between an embedding and a linear head counts once, as the head matmul. The rule works
  on modules: a head that reuses an embedding matrix through ``F.linear`` without an ``nn.Linear``
  module is invisible to it (use ``measured`` for such models).
* ``6N``: 2 (forward) + 4 (backward) FLOPs per matmul parameter per token.
* ``6N+attention``: ``6N`` plus the attention-score term: the FLOPs of the ``Q·Kᵀ`` and ``A·V``
  products, measured with :class:`~torch.utils.flop_counter.FlopCounterMode` as every batched matmul
  (``bmm``/``baddbmm``/scaled-dot-product attention) of one forward+backward at the real shapes. For a
  standard transformer that is ``12·n_layer·T·d`` per token, with no causal discount (like nanochat);
  other batched matmuls (e.g. batched experts) would be counted too.
* ``measured`` (the default, ``sweep.flops_per_token``): the whole ``FlopCounterMode`` count of one
  forward+backward at the real shapes divided by the tokens of that batch: what training costs.
  Counted on the ``meta`` device, so it costs no memory or time. If it counts less than half of
  ``6N`` (ops the counter does not know, custom kernels) it falls back to ``6N`` with a warning; a
  sparse model that really uses fewer FLOPs than ``6N`` hits that guard too.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import FlopCounterMode

CONVENTIONS = ("6N", "6N+attention", "measured")
#: ops whose FLOPs make up the attention-score term
_ATTENTION_OPS = ("bmm", "baddbmm", "scaled_dot_product", "flash_attention", "efficient_attention")
#: a measurement below this fraction of 6N is taken as "the counter missed ops"
_MEASURED_FLOOR = 0.5


def _unique_params(model: nn.Module) -> list[nn.Parameter]:
    return list({id(p): p for p in model.parameters()}.values())


def total_params(model: nn.Module) -> int:
    """All parameters, tied ones counted once."""
    return sum(p.numel() for p in _unique_params(model))


def matmul_params(model: nn.Module) -> int:
    """N: parameters except those used only by embedding lookups (see the module docstring)."""
    lookup_only: dict[int, bool] = {}
    for module in model.modules():
        is_lookup = isinstance(module, (nn.Embedding, nn.EmbeddingBag))
        for p in module.parameters(recurse=False):
            lookup_only[id(p)] = lookup_only.get(id(p), True) and is_lookup
    return sum(p.numel() for p in _unique_params(model) if not lookup_only.get(id(p), False))


def _meta_copy(model: nn.Module) -> nn.Module:
    """The model on the meta device without copying its storage (tied weights stay tied)."""
    if all(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        return model
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def _tokens_in(inputs: Any, tokens_per_sample: int | None) -> int:
    """Tokens of one batch: batch size × tokens_per_sample.

    Without ``tokens_per_sample``, an integer tensor of token ids ``(B, T, ...)`` has ``T·...`` tokens
    per sample and anything else one token per sample (a classifier sees one target per sample).
    """
    first = next((t for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)), None)
    if first is None or first.dim() == 0:
        raise ValueError("example_inputs must contain a tensor whose first dimension is the batch")
    batch = first.shape[0]
    if tokens_per_sample is None:
        is_ids = not first.is_floating_point() and not first.is_complex() and first.dim() >= 2
        tokens_per_sample = first[0].numel() if is_ids else 1
    return batch * int(tokens_per_sample)


def count_flops(model: nn.Module, example_inputs: Any) -> dict[str, int]:
    """FLOPs by op name of one forward+backward of ``model(example_inputs)``, on the meta device.

    Falls back to the inputs' own device when the model cannot run on meta (e.g. it keeps plain
    tensor attributes or reads values with ``.item()``).
    """
    try:
        return _count(_meta_copy(model), tree_map(_to_meta, example_inputs))
    except Exception:  # noqa: BLE001 - any failure on meta means "try the real device"
        if any(isinstance(t, torch.Tensor) and t.is_meta for t in tree_flatten(example_inputs)[0]):
            raise
        return _count(model, example_inputs)


def _to_meta(x: Any) -> Any:
    return torch.empty_like(x, device="meta") if isinstance(x, torch.Tensor) else x


def _count(model: nn.Module, inputs: Any) -> dict[str, int]:
    """One forward+backward under the counter, attention in PyTorch's math kernel: the fused CPU kernel of
    ``scaled_dot_product_attention`` has no FLOP formula, so on a real CPU tensor the counter silently
    skipped attention (the shipped GPT counted 23 % low, a ViT's 17 tokens per image 57 % low); the
    math kernel is plain matmuls, counted the same on every device and on ``meta``."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        outputs = model(inputs)
        leaves = [t for t in tree_flatten(outputs)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
        if leaves:
            sum(t.float().sum() for t in leaves).backward()
    model.zero_grad(set_to_none=True)
    return {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def flops_per_token(
    model: nn.Module, convention: str, example_inputs: Any = None, tokens_per_sample: int | None = None
) -> tuple[float, list[str]]:
    """Training FLOPs (forward + backward) per token under ``convention``, and warnings.

    ``example_inputs`` is one batch's inputs (real or meta tensors of the real shape); it is needed by
    ``6N+attention`` and ``measured``. ``tokens_per_sample`` is the number of targets per sample (see
    :func:`_tokens_in` for the guess made without it).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FLOPs convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    six_n = 6.0 * matmul_params(model)
    if convention == "6N":
        return six_n, []
    if example_inputs is None:
        raise ValueError(f"the {convention!r} convention needs example_inputs (one batch's inputs)")
    try:
        counts = count_flops(model, example_inputs)
    except Exception as exc:  # noqa: BLE001 - reported, never fatal: 6N is always available
        return six_n, [f"{convention}: could not run the model to count FLOPs ({exc!r}); using 6N"]
    tokens = _tokens_in(example_inputs, tokens_per_sample)
    if convention == "6N+attention":
        attention = sum(n for op, n in counts.items() if any(k in op for k in _ATTENTION_OPS))
        return six_n + attention / tokens, []
    measured = sum(counts.values()) / tokens
    if measured < _MEASURED_FLOOR * six_n:
        return six_n, [
            f"measured: FlopCounterMode counted {measured:.4g} FLOPs/token, less than half of 6N = {six_n:.4g} "
            "(ops it does not know, e.g. custom kernels); using 6N. Choose flops_per_token: 6N to silence this."
        ]
    return measured, []

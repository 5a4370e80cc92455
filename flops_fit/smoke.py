"""The plan's smoke test: model, data and loss meet once, on CPU, before any run trains.

Validation checks interfaces only (docs/interfaces.md: no probe batch), so a model whose outputs do
not fit the loss, a loss that returns a vector, or targets of the wrong shape would otherwise pass
validation and fail in every training job, minutes or hours later and once per run. The plan rule
already reads one sample for its shapes; here the smallest planned model runs one forward pass, the
loss (as training calls it, :class:`~flops_fit.loss.AdaptedLoss`) and one backward pass on a couple
of samples. Any failure is a :class:`~flops_fit.errors.ConfigError` that says what did not fit and
how to fix it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from flops_fit.errors import ConfigError
from flops_fit.loss import EXPECTED, AdaptedLoss, loss_name
from flops_fit.model_contract import instantiate

#: samples in the smoke batch: two, so that a batch dimension confused with another one shows
SAMPLES = 2
_FLATTEN_NOTE = (
    "(flops-fit passes a mapping or object with `logits` as its logits, and flattens (B, T, V) "
    "predictions with integer (B, T) targets to (B·T, V) and (B·T,))"
)


def smoke_test(
    model_cls: type,
    size_param: str,
    size: Any,
    model_kwargs: dict,
    batch: tuple[Any, Any],
    loss_fn: Any,
) -> list[str]:
    """Forward, loss and backward of ``model_cls(size_param=size)`` on ``batch`` (CPU); warnings.

    Raises :class:`ConfigError` when the model fails on the inputs, the loss fails on the predictions
    and targets or is not a scalar with a gradient, or a PyTorch loss gets predictions and targets
    that broadcast to a bigger shape (a regression's ``(B, 1)`` against ``(B,)``). Warns about the
    latter for a user's loss, and about targets equal to the inputs. Runs under a forked RNG, so the
    plan draws nothing.
    """
    inputs, targets = batch
    model_name = f"{model_cls.__name__}({size_param}={size})"
    loss = AdaptedLoss(loss_fn)  # says in the plan's log if it flattens
    with torch.random.fork_rng(devices=[]):
        model = instantiate(model_cls, size_param, size, model_kwargs, device="cpu").train()
        try:
            outputs = model(inputs)
        except Exception as exc:
            raise ConfigError(
                f"smoke test: {model_name} fails on a batch of the data's inputs ({describe(inputs)}): "
                f"{type(exc).__name__}: {exc}. The model is called as model(inputs), inputs being a sample's "
                "first item or its dataset.inputs_key; make forward accept them"
            ) from exc
        predictions, loss_targets = loss.prepare(outputs, targets)
        warnings = _broadcast_problem(predictions, loss_targets, loss_fn)
        try:
            value = loss_fn(predictions, loss_targets)
        except Exception as exc:
            raise ConfigError(
                f"smoke test: loss {loss_name(loss_fn)} fails on {model_name}'s predictions "
                f"({describe(predictions)}) and the targets ({describe(loss_targets)}): {type(exc).__name__}: "
                f"{exc}. {_loss_hint(outputs, predictions)}"
            ) from exc
        _check_value(value, loss_fn)
        try:
            value.backward()
        except Exception as exc:
            raise ConfigError(
                f"smoke test: back-propagating loss {loss_name(loss_fn)} through {model_name} fails: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return warnings + _copy_warning(inputs, targets)


def describe(value: Any) -> str:
    """``int64 tensor of shape (2, 32)``-style description of a tensor, else the type name (and keys of a mapping)."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"{type(value).__name__} with keys {list(value)}"
    return type(value).__name__


def _loss_hint(outputs: Any, predictions: Any) -> str:
    if not isinstance(predictions, torch.Tensor):
        return (
            f"The model returns a {type(outputs).__name__} without `logits`: return a tensor from forward "
            f"(or an object with a `logits` tensor), or give a loss that accepts a {type(outputs).__name__}"
        )
    return (
        f"The loss is called as {EXPECTED} {_FLATTEN_NOTE}: make the model's output and the dataset's "
        "targets fit the loss, or wrap the loss in a function that reshapes them"
    )


def _broadcast_problem(predictions: Any, targets: Any, loss_fn: Any) -> list[str]:
    """Predictions and targets that broadcast to a shape bigger than both: a silent outer product.

    An error for PyTorch's own losses (``nn.MSELoss`` and kin compare elementwise); a warning for a
    user's loss, which may reshape them itself.
    """
    if not (isinstance(predictions, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return []
    try:
        shape = torch.broadcast_shapes(predictions.shape, targets.shape)
    except RuntimeError:
        return []  # not broadcastable: the loss decides (a classifier's (B, V) and (B,))
    if torch.Size(shape).numel() <= max(predictions.numel(), targets.numel()):
        return []
    problem = (
        f"the model's predictions ({describe(predictions)}) and the targets ({describe(targets)}) broadcast "
        f"to {tuple(shape)}: an elementwise loss compares every prediction with every target without an "
        f"error. Give them the same shape (e.g. `.squeeze(-1)` at the end of forward, or targets of shape "
        f"{tuple(predictions.shape)})"
    )
    if isinstance(loss_fn, nn.modules.loss._Loss):
        raise ConfigError(f"smoke test: {problem}")
    return [f"{problem}, unless loss {loss_name(loss_fn)} reshapes them itself"]


def _check_value(value: Any, loss_fn: Any) -> None:
    name = loss_name(loss_fn)
    if not isinstance(value, torch.Tensor):
        raise ConfigError(
            f"smoke test: loss {name} returned a {type(value).__name__}, not a tensor; it must return a "
            "scalar tensor that training can back-propagate (do not call .item() or float() on it)"
        )
    if value.numel() != 1:
        raise ConfigError(
            f"smoke test: loss {name} returned a tensor of shape {tuple(value.shape)}, not a scalar; "
            "reduce it to the mean over targets (e.g. loss.kwargs: {reduction: mean}, or .mean() at the end)"
        )
    if not value.requires_grad:
        raise ConfigError(
            f"smoke test: loss {name} returned a value without a gradient with respect to the model; it "
            "must be computed from the predictions with differentiable operations (no .detach(), argmax "
            "or torch.no_grad())"
        )


def _copy_warning(inputs: Any, targets: Any) -> list[str]:
    """Targets equal to the inputs: a causal LM would learn to copy (Hugging Face labels are unshifted)."""
    if (
        isinstance(inputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and inputs.shape == targets.shape
        and inputs.dtype == targets.dtype
        and not targets.is_floating_point()
        and torch.equal(inputs, targets)
    ):
        return [
            "the targets equal the inputs: the loss compares the model's prediction at each position with "
            "the token at that same position. Hugging Face causal-LM labels are a copy of input_ids that the "
            "model shifts internally; flops-fit does not shift, so shift them in the dataset (labels[t] = "
            "input_ids[t + 1]) unless the model predicts the current token on purpose"
        ]
    return []


def measure_step(
    model_cls: type,
    size_param: str,
    size: Any,
    model_kwargs: dict,
    batch: tuple[Any, Any],
    loss_fn: Any,
    samples: int,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    min_seconds: float = 0.5,
    max_steps: int = 5,
) -> tuple[float, int, str]:
    """Time forward, loss and backward of ``model_cls(size_param=size)`` on ``batch`` repeated to ``samples``
    samples, where and with the threads training would use: (seconds per step, targets per step, device).

    One untimed step warms up, then steps are timed until ``min_seconds`` or ``max_steps``. Runs under a
    forked RNG and gives torch's thread count back, so the plan draws nothing and changes nothing.
    """
    from flops_fit.training.device import setup_device

    before = torch.get_num_threads()
    try:
        setup = setup_device(device, precision, threads)
        inputs, targets = setup.move(_repeat(batch, samples))
        loss = AdaptedLoss(loss_fn)
        with torch.random.fork_rng(devices=[]):
            model = instantiate(model_cls, size_param, size, model_kwargs, device="cpu").train().to(setup.device)

            def step() -> None:
                model.zero_grad(set_to_none=True)
                with setup.autocast():
                    predictions, loss_targets = loss.prepare(model(inputs), targets)
                    value = loss_fn(predictions, loss_targets)
                value.backward()
                if setup.is_cuda:
                    torch.cuda.synchronize()

            step()  # warm-up: allocations, lazy kernels
            steps, start = 0, time.perf_counter()
            while steps < max_steps and (steps == 0 or time.perf_counter() - start < min_seconds):
                step()
                steps += 1
            seconds = (time.perf_counter() - start) / steps
        count = targets.numel() if isinstance(targets, torch.Tensor) else samples
        return seconds, int(count), setup.description
    finally:
        torch.set_num_threads(before)


def _repeat(batch: tuple[Any, Any], samples: int) -> tuple[Any, Any]:
    """The smoke batch's tensors repeated along the batch dimension to ``samples`` samples."""
    from torch.utils._pytree import tree_map

    def grow(t: Any) -> Any:
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            return t
        times = -(-samples // len(t))
        return t.repeat(times, *([1] * (t.dim() - 1)))[:samples]

    inputs, targets = batch
    return tree_map(grow, inputs), tree_map(grow, targets)

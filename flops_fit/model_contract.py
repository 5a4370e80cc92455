"""The model contract: a ``nn.Module`` class whose size is set by one constructor argument.

flops_fit builds the user's model at many sizes, so before any training it checks, on the ``meta``
device (shapes only: no memory, no data, no time), that the class can be built at every size of
the sweep and that bigger sizes really give more parameters, counted as N, the fit's x-axis
(:func:`flops_fit.flops.matmul_params`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from flops_fit.flops import matmul_params, total_params
from flops_fit.references import call_problems, describe, did_you_mean

Size = int | float


@dataclass(frozen=True)
class Names:
    """How the four model inputs are called where the user wrote them (API arguments or config keys)."""

    model_cls: str = "model_cls"
    size_param: str = "model_size_param"
    kwargs: str = "model_kwargs"
    sizes: str = "sizes"


API_NAMES = Names()
CONFIG_NAMES = Names("model.class", "model.size_param", "model.kwargs", "model.sizes")


def instantiate(
    model_cls: type[nn.Module],
    size_param: str,
    size: Size,
    model_kwargs: Mapping[str, Any] | None = None,
    device: str | torch.device = "meta",
) -> nn.Module:
    """``model_cls(**model_kwargs, size_param=size)`` with its parameters created on ``device``.

    The default ``meta`` device allocates nothing, so checking a billion-parameter size is free.
    """
    with torch.device(device):
        return model_cls(**{**(model_kwargs or {}), size_param: size})


def check_model_class(model_cls: Any, *, names: Names = API_NAMES) -> None:
    """``model_cls`` must be a class that subclasses ``torch.nn.Module`` (not an instance, not a function)."""
    if isinstance(model_cls, nn.Module):
        raise TypeError(
            f"{names.model_cls}: got an instance of {type(model_cls).__name__}, but flops_fit needs the class "
            f"itself, because it builds the model at several sizes. Pass {type(model_cls).__name__} "
            f"(without parentheses) instead of {type(model_cls).__name__}(...)."
        )
    if not inspect.isclass(model_cls):
        raise TypeError(
            f"{names.model_cls}: must be a class (a torch.nn.Module subclass), got {describe(model_cls)}. "
            "flops_fit builds the model at each size as Class(**kwargs, <size parameter>=size); pass the class."
        )
    if not issubclass(model_cls, nn.Module):
        raise TypeError(
            f"{names.model_cls}: {model_cls.__name__} is a class but not a torch.nn.Module subclass. "
            f"Define it as class {model_cls.__name__}(torch.nn.Module)."
        )


def check_size_param(
    model_cls: type[nn.Module], size_param: Any, model_kwargs: Mapping[str, Any], *, names: Names = API_NAMES
) -> None:
    """The size knob must be a constructor parameter, not also fixed in the kwargs; the kwargs must fit too."""
    if not isinstance(size_param, str) or not size_param:
        raise TypeError(
            f"{names.size_param}: must be the name of a constructor argument of {model_cls.__name__} "
            f"(a string such as 'd_model'), got {size_param!r}."
        )
    try:
        params = inspect.signature(model_cls).parameters.values()
    except (TypeError, ValueError):  # uninspectable constructor: building the model will tell
        params = None
    if params is not None and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        accepted = [p.name for p in params if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)]
        if size_param not in accepted:
            raise TypeError(
                f"{names.size_param}: {model_cls.__name__}'s constructor has no parameter "
                f"'{size_param}'.{did_you_mean(size_param, accepted)} Its parameters are: "
                f"{', '.join(accepted) or '(none)'}. Set {names.size_param} to the one that sets the model size."
            )
    if size_param in model_kwargs:
        raise TypeError(
            f"{names.kwargs}: contains the size parameter '{size_param}', which flops_fit sets for each run. "
            f"Remove '{size_param}' from {names.kwargs}."
        )
    problems = call_problems(model_cls, [*model_kwargs, size_param])
    if problems:
        raise TypeError(f"{names.kwargs}: " + " ".join(problems) + f" Fix {names.kwargs}.")


def param_counts(
    model_cls: type[nn.Module],
    size_param: str,
    sizes: Sequence[Size],
    model_kwargs: Mapping[str, Any],
    *,
    names: Names = API_NAMES,
) -> dict[Size, tuple[int, int]]:
    """``{size: (N, total)}`` for every size, built on the meta device; every size must be accepted
    and N must grow with the size (otherwise a scaling law has no x-axis).

    All rejected sizes are reported together, each with the model's own error, so that one run of
    the check is enough to fix the list.
    """
    repeated = sorted({s for s in sizes if list(sizes).count(s) > 1})
    if repeated:
        raise ValueError(
            f"{names.sizes}: {', '.join(map(repr, repeated))} appear{'s' if len(repeated) == 1 else ''} more "
            f"than once; each size is one model of the sweep. Remove the repeats from {names.sizes}."
        )
    counts: dict[Size, tuple[int, int]] = {}
    rejected: list[str] = []
    for size in sizes:
        try:
            model = instantiate(model_cls, size_param, size, model_kwargs)
            counts[size] = (matmul_params(model), total_params(model))
        except Exception as exc:  # the model's own validation, e.g. "d_model must be divisible by n_head"
            meta_hint = (
                " (flops_fit builds the model on torch.device('meta') to check it without memory: "
                "avoid data-dependent calls such as .item() or .tolist() in __init__)"
                if "meta" in str(exc).lower() or isinstance(exc, NotImplementedError)
                else ""
            )
            rejected.append(f"{size_param}={size!r}: {type(exc).__name__}: {exc}{meta_hint}")
    if rejected:
        raise ValueError(
            f"{names.sizes}: {model_cls.__name__} cannot be built at "
            f"{'this size' if len(rejected) == 1 else 'these sizes'}:\n    "
            + "\n    ".join(rejected)
            + f"\n  Every value in {names.sizes} must be accepted by the model; remove or change "
            f"{'it' if len(rejected) == 1 else 'them'}."
        )
    ordered = sorted(counts)
    for small, big in zip(ordered, ordered[1:]):
        if counts[big][0] <= counts[small][0]:
            listing = ", ".join(f"{size_param}={s!r} -> {counts[s][0]:,}" for s in ordered)
            raise ValueError(
                f"{names.sizes}: the parameter count N of {model_cls.__name__} does not increase with "
                f"'{size_param}' ({listing}). A scaling law needs bigger models at bigger sizes: check that "
                f"{model_cls.__name__} uses '{size_param}' to set its layer sizes and that "
                f"{names.kwargs} does not override it."
            )
    return counts


def default_probe_sizes(model_cls: type[nn.Module], size_param: str) -> list[Size]:
    """Two sizes to compare when the caller gave none: the parameter's default and twice it, else 64, 128."""
    try:
        default = inspect.signature(model_cls).parameters[size_param].default
    except (TypeError, ValueError, KeyError):
        default = None
    if isinstance(default, int | float) and not isinstance(default, bool) and default > 0:
        return [default, 2 * default]
    return [64, 128]


def validate_model_contract(
    model_cls: Any,
    size_param: Any,
    model_kwargs: Mapping[str, Any] | None = None,
    sizes: Sequence[Size] | None = None,
    *,
    names: Names = API_NAMES,
) -> dict[Size, tuple[int, int]]:
    """Check the whole model contract and return ``{size: (N, total)}``.

    Raises ``TypeError`` for a wrong class, size parameter or kwargs and ``ValueError`` for a size
    the model rejects or parameter counts that do not grow. Without ``sizes`` two probe values are
    used (see :func:`default_probe_sizes`); pass the sweep's sizes to check exactly those.
    """
    model_kwargs = dict(model_kwargs or {})
    check_model_class(model_cls, names=names)
    check_size_param(model_cls, size_param, model_kwargs, names=names)
    if sizes is None:
        sizes = default_probe_sizes(model_cls, size_param)
    return param_counts(model_cls, size_param, sizes, model_kwargs, names=names)

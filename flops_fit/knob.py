"""The size knob: the legal value whose parameter count N is closest to a target N.

Users set ``d_model`` (or whatever the knob is), not N, and not every value is legal (a width that
must divide into heads, say). So the knob is searched on the ``meta`` device (no memory, no time)
for the legal value whose N, counted as the plan counts it (:func:`flops_fit.flops.matmul_params`),
is closest to the target in log. N grows with the knob (the model contract checks it), so the search
brackets the target by doubling/halving and then bisects: a few dozen constructions even for knobs
in the tens of thousands. The planner uses it to place windows without ``model.sizes``, the
recommender to turn a predicted N* into a knob value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flops_fit.flops import matmul_params
from flops_fit.model_contract import instantiate

Size = int | float


def as_size(value: float) -> Size:
    """48.0 → 48: YAML and pandas turn integers into floats; model constructors want ints."""
    return int(value) if float(value).is_integer() else float(value)


#: relative resolution of the search for a continuous (float) knob
FLOAT_RTOL = 1e-3
#: at most this many doublings (or halvings) to bracket N*: 2^60 covers any real model
MAX_BRACKET_STEPS = 60


class ParamCounter:
    """N of the model at a knob value (None where the constructor refuses it), each value built once."""

    def __init__(self, model_cls: type, size_param: str, model_kwargs: Mapping[str, Any] | None) -> None:
        self.model_cls, self.size_param, self.model_kwargs = model_cls, size_param, dict(model_kwargs or {})
        self.cache: dict[Size, int | None] = {}

    def __call__(self, size: Size) -> int | None:
        if size not in self.cache:
            try:
                model = instantiate(self.model_cls, self.size_param, size, self.model_kwargs, device="meta")
                self.cache[size] = matmul_params(model)
            except Exception:  # noqa: BLE001 - the model's own rule (e.g. divisibility): not a legal value
                self.cache[size] = None
        return self.cache[size]


def _legal_between(count: ParamCounter, lo: int, hi: int, start: int) -> int | None:
    """The legal integer strictly between lo and hi nearest to ``start`` (outward scan), or None."""
    for offset in range(hi - lo):
        for size in (start - offset, start + offset):
            if lo < size < hi and count(size) is not None:
                return size
    return None


def _legal_from(count: ParamCounter, start: int, step: int, stop: int) -> int | None:
    """The first legal integer from ``start`` towards ``stop`` (exclusive), by ``step`` = ±1."""
    for size in range(start, stop, step):
        if count(size) is not None:
            return size
    return None


def _grow(count: ParamCounter, size: Size, integer: bool) -> Size | None:
    """A legal knob value about twice ``size`` (the first legal one above 2·size for integers)."""
    if not integer:
        return size * 2 if count(size * 2) is not None else None
    return _legal_from(count, 2 * int(size), 1, 4 * int(size) + 2)


def _shrink(count: ParamCounter, size: Size, integer: bool) -> Size | None:
    """A legal knob value about half ``size`` (the first legal one below size/2 for integers)."""
    if not integer:
        return size / 2 if count(size / 2) is not None else None
    return _legal_from(count, int(size) // 2, -1, 0) if int(size) > 1 else None


def _not_growing(count: ParamCounter, small: Size, big: Size) -> ValueError:
    return ValueError(
        f"{count.model_cls.__name__}: N does not grow with {count.size_param} ({count.size_param}={small} -> "
        f"{count(small):,}, {count.size_param}={big} -> {count(big):,}), so no value of it reaches the "
        "predicted N*; check that the size knob sets the layer widths"
    )


def closest_size(
    model_cls: type,
    size_param: str,
    model_kwargs: Mapping[str, Any] | None,
    target_params: float,
    sizes: Sequence[Size],
    counter: ParamCounter | None = None,
) -> tuple[Size, int]:
    """The legal value of ``size_param`` whose N is closest to ``target_params`` in log, and its N.

    ``sizes`` are known-legal values (the configured sweep); they seed the bracket and decide the
    knob's type: integers when they are all integers, else a float searched to ``FLOAT_RTOL``.
    Values the constructor refuses are skipped. Raises ValueError when N does not grow with the knob.
    """
    if not target_params > 0:
        raise ValueError(f"the target parameter count must be positive, got {target_params:.3g}")
    count = counter or ParamCounter(model_cls, size_param, model_kwargs)
    known = sorted(as_size(s) for s in sizes if count(as_size(s)) is not None)
    if not known:
        raise ValueError(f"{model_cls.__name__} refuses every configured {size_param} value {list(sizes)}")
    integer = all(isinstance(s, int) for s in known)
    below = [s for s in known if count(s) <= target_params]
    above = [s for s in known if count(s) >= target_params]
    if not above:  # N* beyond the largest configured size: double the knob until N reaches it
        lo, hi = _bracket(count, below[-1], target_params, integer, _grow)
    elif not below:  # N* below the smallest: halve it
        hi, lo = _bracket(count, above[0], target_params, integer, _shrink)
    else:
        lo, hi = below[-1], above[0]
    if lo is None or hi is None:  # no legal value beyond: the edge is the closest the model allows
        edge = hi if lo is None else lo
        return edge, count(edge)
    lo, hi = _bisect(count, lo, hi, target_params, integer)
    best = min((lo, hi), key=lambda s: abs(math.log(count(s) / target_params)))
    if not integer and count(float(f"{best:.4g}")) is not None:
        best = float(f"{best:.4g}")  # a float knob to the search's resolution, readable
    return best, count(best)


def _bracket(
    count: ParamCounter, start: Size, target: float, integer: bool, step: Callable[..., Size | None]
) -> tuple[Size, Size | None]:
    """Step the knob from ``start`` (``_grow`` or ``_shrink``) until N passes ``target``.

    Returns (the last value short of the target, the first value past it or None when the model
    allows no further value).
    """
    near = start
    for _ in range(MAX_BRACKET_STEPS):
        far = step(count, near, integer)
        if far is None:
            return near, None
        if (count(far) - count(near)) * (far - near) <= 0:
            raise _not_growing(count, *sorted((near, far)))
        if (count(far) >= target) if far > near else (count(far) <= target):
            return near, far
        near = far
    return near, None


def _bisect(count: ParamCounter, lo: Size, hi: Size, target: float, integer: bool) -> tuple[Size, Size]:
    """Narrow N(lo) <= target <= N(hi) to adjacent legal values (integers) or to FLOAT_RTOL (floats)."""
    while (hi - lo > 1) if integer else (hi / lo > 1 + FLOAT_RTOL):
        if integer:
            mid = _legal_between(count, lo, hi, (lo + hi) // 2)
        else:
            mid = math.sqrt(lo * hi)
            mid = mid if count(mid) is not None else None
        if mid is None:
            break
        if count(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo, hi

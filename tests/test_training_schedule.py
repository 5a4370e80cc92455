"""Learning-rate schedules end exactly at the run's last step (Chinchilla: a longer cycle biases the fit)."""

from __future__ import annotations

import pytest

from flops_fit.training.schedule import lr_at


def _lrs(kind: str, total: int = 100, warmup: int = 10, **kw: float) -> list[float]:
    return [lr_at(s, peak_lr=1.0, warmup_steps=warmup, total_steps=total, kind=kind, **kw) for s in range(total)]


@pytest.mark.parametrize("kind", ["cosine", "linear", "wsd"])
def test_decay_reaches_the_final_fraction_exactly_at_the_last_step(kind):
    lrs = _lrs(kind, final_lr_fraction=0.1)
    assert lrs[-1] == pytest.approx(0.1)
    assert min(lrs) == lrs[-1]
    assert lrs[-2] > lrs[-1]  # still decaying on the step before: the cycle is not shorter than the run
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # monotone after warmup


def test_warmup_is_linear_up_to_the_peak():
    lrs = _lrs("cosine", warmup=10)
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(1.0)


def test_wsd_is_constant_then_decays_over_its_fraction_of_the_run():
    lrs = _lrs("wsd", total=100, warmup=10, wsd_decay_fraction=0.2)
    assert lrs[10:80] == pytest.approx([1.0] * 70)
    assert lrs[81] < 1.0 and lrs[-1] == pytest.approx(0.1)


def test_warmup_longer_than_the_run_is_capped():
    lrs = _lrs("cosine", total=5, warmup=50)
    assert lrs[-1] == pytest.approx(0.1) and max(lrs) <= 1.0


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="schedule kind"):
        lr_at(0, peak_lr=1.0, warmup_steps=0, total_steps=2, kind="step")
    with pytest.raises(ValueError, match="outside"):
        lr_at(2, peak_lr=1.0, warmup_steps=0, total_steps=2)

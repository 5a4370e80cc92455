"""The Markov example's entropy rate: the loss floor of the default config."""

from __future__ import annotations

import numpy as np
import pytest

from flops_fit.examples.markov import MarkovTokens, entropy_rate


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOPS_FIT_CACHE", str(tmp_path))


def test_entropy_rate_takes_the_datasets_kwargs_and_matches_its_chain():
    kwargs = {"vocab_size": 12, "seq_len": 16, "num_samples": 64, "gamma": 0.7, "source_seed": 5, "sample_seed": 3}
    assert entropy_rate(**kwargs) == MarkovTokens(**kwargs).entropy_rate
    assert entropy_rate(**{**kwargs, "source_seed": 6}) != entropy_rate(**kwargs)  # the chain's args pass through
    assert entropy_rate(**{**kwargs, "sample_seed": 4, "num_samples": 8}) == entropy_rate(**kwargs)  # samples don't


def test_entropy_rate_is_the_conditional_entropy_of_the_samples():
    """The plug-in estimate of H(x_t | x_{t-2}, x_{t-1}) from 260k sampled tokens (6^3 cells: bias
    4e-4, sampling error about 1e-3) equals the entropy rate: the loss of the true next-token
    distribution, which no model beats in expectation."""
    data = MarkovTokens(vocab_size=6, seq_len=64, num_samples=4096, sample_seed=2)
    t = data.tokens.long().numpy()
    triples = (t[:, :-2] * 36 + t[:, 1:-1] * 6 + t[:, 2:]).ravel()
    counts = np.bincount(triples, minlength=216).reshape(36, 6).astype(float)
    ctx = counts.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(counts * np.log(counts / ctx)) / counts.sum()
    assert h == pytest.approx(data.entropy_rate, abs=5e-3)  # another chain (gamma 0.6, another seed) is 0.05+ away

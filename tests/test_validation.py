"""validate_config / build_objects: a whole config, its references built and every check run."""

from __future__ import annotations

import copy
import functools
import json
import textwrap

import pytest
import torch

from flops_fit.errors import ConfigError
from flops_fit.validation import build_objects, loss_floor, validate_config

USER_CODE = textwrap.dedent(
    '''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils.data import Dataset, IterableDataset


    class TinyLM(nn.Module):
        def __init__(self, n_embd, n_head=2, vocab=16):
            super().__init__()
            if n_embd % n_head:
                raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
            self.emb = nn.Embedding(vocab, n_embd)
            self.mix = nn.Linear(n_embd, n_embd)
            self.head = nn.Linear(n_embd, vocab)

        def forward(self, idx):
            return self.head(torch.relu(self.mix(self.emb(idx))))


    class Tokens(Dataset):
        def __init__(self, n=64, seq_len=8, vocab=16):
            self.data = torch.randint(0, vocab, (n, seq_len + 1))

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            return self.data[i, :-1], self.data[i, 1:]


    class Stream(IterableDataset):
        def __iter__(self):
            raise AssertionError("validation must not iterate")


    def make_tokens(n=32):
        return Tokens(n=n)


    def make_list():
        return [1, 2, 3]


    def lm_loss(logits, targets, smoothing=0.0):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=smoothing)


    def one_arg_loss(logits):
        return logits.mean()


    def floor(scale=1.0):
        return 1.25 * scale


    FLOOR = 1.3
    '''
)


@pytest.fixture
def base(tmp_path):
    (tmp_path / "user_code.py").write_text(USER_CODE)
    return tmp_path


def good_config() -> dict:
    return {
        "model": {"class": "user_code.py:TinyLM", "size_param": "n_embd", "sizes": [8, 16, 4], "kwargs": {"n_head": 2}},
        "dataset": {"target": "user_code.py:Tokens", "kwargs": {"n": 40}, "tokens_per_sample": None},
        "eval_dataset": {"target": None, "kwargs": {}, "samples": 8},
        "loss": {"target": "user_code.py:lm_loss", "kwargs": {}},
        "budgets": [1e9],
    }


def with_changes(**sections) -> dict:
    config = copy.deepcopy(good_config())
    for section, changes in sections.items():
        config[section].update(changes)
    return config


def test_good_config_gives_a_json_summary(base):
    summary = validate_config(good_config(), base_dir=base)
    assert json.loads(json.dumps(summary)) == summary
    params = summary["model"]["params_by_size"]
    assert params["4"] < params["8"] < params["16"]
    # N excludes the embedding lookup: mix (n^2 + n) + head (16 n + 16)
    assert params["8"] == 8 * 8 + 8 + 16 * 8 + 16
    assert summary["model"]["params_total_by_size"]["8"] == params["8"] + 16 * 8
    assert summary["dataset"]["length"] == 40 and summary["dataset"]["iterable"] is False
    assert summary["eval_dataset"] is None
    assert summary["loss"] == {"target": "user_code.py:lm_loss", "name": "lm_loss"}


def test_build_objects_builds_what_training_needs(base):
    config = with_changes(
        dataset={"target": "user_code.py:make_tokens", "kwargs": {"n": 12}},
        eval_dataset={"target": "user_code.py:Tokens", "kwargs": {"n": 6}},
        loss={"kwargs": {"smoothing": 0.1}},
    )
    model_cls, dataset, eval_dataset, loss_fn = build_objects(config, base_dir=base)
    assert model_cls.__name__ == "TinyLM" and len(dataset) == 12 and len(eval_dataset) == 6
    assert isinstance(loss_fn, functools.partial) and loss_fn.keywords == {"smoothing": 0.1}
    inputs, targets = dataset[0]
    loss = loss_fn(model_cls(n_embd=8)(inputs[None]), targets[None])
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_iterable_dataset_is_summarised_without_being_iterated(base):
    summary = validate_config(with_changes(eval_dataset={"target": "user_code.py:Stream"}), base_dir=base)
    assert summary["eval_dataset"]["iterable"] is True and summary["eval_dataset"]["length"] is None


def test_independent_problems_are_all_reported_numbered(base):
    config = with_changes(
        model={"class": "user_code.py:TinyLn"},
        dataset={"target": "no_such_package.data:Tokens"},
        eval_dataset={"target": "data/missing.py:Tokens"},
        loss={"kwargs": {"smooth": 0.1}},
    )
    with pytest.raises(ConfigError) as info:
        validate_config(config, base_dir=base)
    lines = str(info.value).splitlines()
    assert lines[0] == "the configuration has 4 problems:"
    assert lines[1].startswith("1. model.class: file user_code.py has no attribute 'TinyLn'")
    assert "Did you mean 'TinyLM'?" in lines[1]
    assert lines[2].startswith("2. dataset.target: cannot import module 'no_such_package.data'")
    assert lines[3].startswith("3. eval_dataset.target: file 'data/missing.py' not found")
    assert lines[4].startswith("4. loss.kwargs: lm_loss does not accept the argument 'smooth'. Did you mean 'smoothing'?")


def test_a_size_the_model_rejects_is_named(base):
    with pytest.raises(ConfigError) as info:
        validate_config(with_changes(model={"sizes": [8, 9, 16]}), base_dir=base)
    message = str(info.value)
    assert message.startswith("model.sizes: TinyLM cannot be built at this size:")
    assert "n_embd=9: ValueError: n_embd=9 must be divisible by n_head=2" in message


def test_size_param_and_kwargs_errors_use_config_keys(base):
    with pytest.raises(ConfigError, match=r"^model.size_param: TinyLM's constructor has no parameter 'd_model'"):
        validate_config(with_changes(model={"size_param": "d_model"}), base_dir=base)
    with pytest.raises(ConfigError, match=r"^model.kwargs: TinyLM does not accept the argument 'n_heads'"):
        validate_config(with_changes(model={"kwargs": {"n_heads": 2}}), base_dir=base)


def test_non_increasing_parameter_counts_are_rejected(base):
    (base / "flat.py").write_text(
        "import torch.nn as nn\nclass Flat(nn.Module):\n"
        "    def __init__(self, width):\n        super().__init__()\n        self.fc = nn.Linear(4, 4)\n"
    )
    with pytest.raises(ConfigError, match=r"^model.sizes: the parameter count N of Flat does not increase"):
        validate_config(with_changes(model={"class": "flat.py:Flat", "size_param": "width", "kwargs": {}}), base_dir=base)


def test_model_class_that_is_not_a_module(base):
    with pytest.raises(ConfigError, match=r"^model.class: must be a class .*got make_tokens"):
        validate_config(with_changes(model={"class": "user_code.py:make_tokens"}), base_dir=base)


def test_dataset_target_giving_a_non_dataset(base):
    with pytest.raises(ConfigError) as info:
        validate_config(with_changes(dataset={"target": "user_code.py:make_list", "kwargs": {}}), base_dir=base)
    assert str(info.value).startswith(
        "dataset.target: 'user_code.py:make_list' gave an object of type list: dataset must be a "
        "torch.utils.data.Dataset or torch.utils.data.DataLoader, got list."
    )


def test_loss_target_with_one_parameter(base):
    with pytest.raises(ConfigError) as info:
        validate_config(with_changes(loss={"target": "user_code.py:one_arg_loss"}), base_dir=base)
    assert str(info.value).startswith("loss.target: 'user_code.py:one_arg_loss' gave one_arg_loss:")
    assert "Expected signature: loss_fn(predictions, targets) -> scalar" in str(info.value)


def test_loss_class_is_instantiated_from_config(base):
    summary = validate_config(with_changes(loss={"target": "torch.nn:CrossEntropyLoss", "kwargs": {"label_smoothing": 0.1}}), base_dir=base)
    assert summary["loss"]["name"] == "CrossEntropyLoss"


def with_floor(value) -> dict:
    return {**good_config(), "fit": {"loss_floor": value}}


def test_loss_floor_is_a_number_or_a_reference_resolved_by_validation(base):
    assert validate_config(good_config(), base_dir=base)["loss_floor"] is None
    assert validate_config(with_floor(1.4), base_dir=base)["loss_floor"] == 1.4
    called = {"target": "user_code.py:floor", "kwargs": {"scale": 2.0}}
    assert validate_config(with_floor(called), base_dir=base)["loss_floor"] == 2.5
    assert loss_floor(with_floor({"target": "user_code.py:FLOOR"}), base_dir=base) == 1.3  # an attribute, as is


@pytest.mark.parametrize(
    "value, message",
    [
        ({"target": "user_code.py:flor"}, r"^fit.loss_floor.target: file user_code.py has no attribute 'flor'.*"
                                          r"Did you mean 'floor'"),
        ({"target": "user_code.py:floor", "kwargs": {"scal": 2}}, r"^fit.loss_floor.kwargs: floor does not accept "
                                                                  r"the argument 'scal'. Did you mean 'scale'"),
        ({"target": "user_code.py:make_list"}, r"^fit.loss_floor: 'user_code.py:make_list' gave \[1, 2, 3\] "
                                               r"\(an object of type list\), not a positive number. Point fit.loss_floor"),
        ({"target": "user_code.py:floor", "kwargs": {"scale": -1}}, r"gave -1.25 .*not a positive number"),
    ],
)
def test_a_bad_loss_floor_reference_names_the_key_and_the_fix(base, value, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(with_floor(value), base_dir=base)


def test_a_bad_loss_floor_is_reported_with_the_other_problems(base):
    config = {**with_changes(model={"class": "user_code.py:TinyLn"}), "fit": {"loss_floor": {"target": "user_code.py:flor"}}}
    with pytest.raises(ConfigError) as info:
        validate_config(config, base_dir=base)
    lines = str(info.value).splitlines()
    assert lines[0] == "the configuration has 2 problems:" and lines[2].startswith("2. fit.loss_floor.target: ")

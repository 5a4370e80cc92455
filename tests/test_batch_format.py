"""Mapping samples (Hugging Face style) are read as (inputs, targets) wherever batches are read."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from flops_fit import heldout
from flops_fit.batch_format import BatchFormat
from flops_fit.config import prepare_config
from flops_fit.data import validate_dataset
from flops_fit.errors import ConfigError
from flops_fit.training.batches import BatchStream
from lm_support import SEQ, DictStream, DictTokens, HFLike


def test_pairs_and_mappings_give_inputs_and_targets():
    x, y = torch.zeros(2, 3), torch.ones(2)
    assert BatchFormat()((x, y, "extra")) == (x, y)
    assert BatchFormat()({"input_ids": x, "labels": y, "attention_mask": x}) == (x, y)
    assert BatchFormat("x", "y")({"x": x, "y": y}) == (x, y)


def test_a_mapping_without_labels_names_the_keys_it_has_and_the_config_keys():
    with pytest.raises(ConfigError) as error:
        BatchFormat()({"input_ids": 1, "attention_mask": 2})
    message = str(error.value)
    assert "keys ['input_ids', 'attention_mask'], without 'labels'" in message
    assert "dataset.targets_key" in message and "targets_key=" in message


def test_a_sample_that_is_neither_is_refused_with_the_expected_forms():
    with pytest.raises(ConfigError, match="a tuple of 1 item; flops-fit needs .inputs, targets. pairs or mappings"):
        BatchFormat()((torch.zeros(3),))


@pytest.mark.parametrize("make", [DictTokens, HFLike, DictStream], ids=["dict-dataset", "hf-like", "dict-stream"])
def test_plan_sample_and_eval_batches_of_mapping_data(make):
    data = make()
    validate_dataset(data)
    inputs, targets = heldout.first_sample(data, count=2)
    assert inputs.shape == targets.shape == (2, SEQ) and not targets.is_floating_point()
    train, batches = heldout.split_train_eval(data, None, 40)
    assert sum(len(t) for _, t in batches) == 40 and all(len(b) == 2 for b in batches)


def test_a_dataloader_of_mappings_is_cut_to_the_plan_sample_and_read_for_eval():
    loader = DataLoader(DictTokens(64), batch_size=16)
    inputs, targets = heldout.first_sample(loader, count=2)
    assert inputs.shape == (2, SEQ)
    assert [tuple(t.shape) for _, t in heldout.eval_batches(loader, 20)] == [(16, SEQ), (16, SEQ)]


@pytest.mark.parametrize("make", [DictTokens, HFLike, DictStream], ids=["dict-dataset", "hf-like", "dict-stream"])
def test_training_stream_of_mapping_data(make):
    stream = BatchStream(make(), batch_size=4, seed=0)
    inputs, targets = next(stream)
    assert inputs.shape == targets.shape == (4, SEQ)
    assert torch.equal((inputs[:, 1:] - targets[:, :-1]) % 32, torch.zeros(4, SEQ - 1, dtype=torch.long))


def test_custom_keys_apply_everywhere():
    data, fmt = DictTokens(64, labels_key="next_tokens"), BatchFormat("input_ids", "next_tokens")
    assert heldout.first_sample(data, fmt)[1].shape == (1, SEQ)
    assert next(BatchStream(data, batch_size=4, seed=0, batch_format=fmt))[1].shape == (4, SEQ)
    with pytest.raises(ConfigError, match="without 'labels'"):
        heldout.first_sample(data)


def test_config_keys_are_typed_and_defaulted():
    base = {"model": {"class": "m:M", "size_param": "d", "sizes": [1, 2, 3, 4]}, "loss": {"target": "l"}, "budgets": [1]}
    config = prepare_config({**base, "dataset": {"target": "d"}})
    assert BatchFormat.from_config(config) == BatchFormat("input_ids", "labels")
    config = prepare_config({**base, "dataset": {"target": "d", "inputs_key": "x", "targets_key": "y"}})
    assert BatchFormat.from_config(config) == BatchFormat("x", "y")
    with pytest.raises(ConfigError, match="targets_key"):
        prepare_config({**base, "dataset": {"target": "d", "targets_key": 3}})

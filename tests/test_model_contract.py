"""The model contract, checked on the meta device: class, size knob, kwargs, sizes, parameter counts."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn

from flops_fit.model_contract import (
    CONFIG_NAMES,
    default_probe_sizes,
    instantiate,
    validate_model_contract,
)


class MLP(nn.Module):
    def __init__(self, width: int = 16, depth: int = 2, n_in: int = 8) -> None:
        super().__init__()
        dims = [n_in] + [width] * depth
        self.layers = nn.Sequential(*(nn.Linear(a, b) for a, b in zip(dims, dims[1:])), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Attention(nn.Module):
    """Rejects a width that the heads cannot split, like most transformers."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.qkv = nn.Linear(n_embd, 3 * n_embd)


class IgnoresSize(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)


class TiedLM(nn.Module):
    def __init__(self, d: int = 4) -> None:
        super().__init__()
        self.wte = nn.Embedding(10, d)  # lookup, but tied to the head below: a matmul, counted once
        self.wpe = nn.Embedding(5, d)  # lookup only: not in N
        self.head = nn.Linear(d, 10, bias=False)
        self.head.weight = self.wte.weight


class KwargsModel(nn.Module):
    def __init__(self, **config) -> None:
        super().__init__()
        self.fc = nn.Linear(config["width"], config["width"])


class UsesItem(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, int(torch.tensor(2.0).item()))


def test_valid_model_returns_counts_increasing_with_size():
    counts = validate_model_contract(MLP, "width", {"depth": 3}, sizes=[32, 8, 16])
    assert sorted(counts) == [8, 16, 32]
    n = [counts[s][0] for s in (8, 16, 32)]
    assert n[0] < n[1] < n[2]
    assert counts[8][1] == sum(p.numel() for p in MLP(width=8, depth=3).parameters())  # meta == real


def test_checked_on_meta_device_without_memory():
    start = time.perf_counter()
    counts = validate_model_contract(MLP, "width", {"depth": 4}, sizes=[50_000, 100_000])
    assert counts[100_000][0] > 3e10  # 30 billion parameters: only possible on meta
    assert time.perf_counter() - start < 5
    assert all(p.is_meta for p in instantiate(MLP, "width", 8).parameters())


def test_instantiate_on_cpu_builds_real_weights():
    model = instantiate(MLP, "width", 8, {"depth": 1}, device="cpu")
    assert model(torch.zeros(2, 8)).shape == (2, 1)
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_instance_instead_of_class_says_pass_the_class():
    with pytest.raises(TypeError) as info:
        validate_model_contract(MLP(), "width")
    assert "got an instance of MLP" in str(info.value)
    assert "Pass MLP (without parentheses)" in str(info.value)


def test_function_is_not_a_class():
    def make_model(width):
        return MLP(width)

    with pytest.raises(TypeError, match=r"model_cls: must be a class \(a torch.nn.Module subclass\), got .*make_model"):
        validate_model_contract(make_model, "width")


def test_class_that_is_not_a_module_is_rejected():
    class Plain:
        def __init__(self, width):
            pass

    with pytest.raises(TypeError, match=r"Plain is a class but not a torch.nn.Module subclass"):
        validate_model_contract(Plain, "width")


def test_size_param_not_accepted_is_named_with_a_suggestion():
    with pytest.raises(TypeError) as info:
        validate_model_contract(MLP, "widht")
    message = str(info.value)
    assert "model_size_param: MLP's constructor has no parameter 'widht'" in message
    assert "Did you mean 'width'?" in message
    assert "Its parameters are: width, depth, n_in" in message


def test_config_names_are_used_in_config_context():
    with pytest.raises(TypeError, match=r"^model.size_param: MLP's constructor has no parameter 'size'"):
        validate_model_contract(MLP, "size", names=CONFIG_NAMES)


def test_size_param_also_in_kwargs_is_rejected():
    with pytest.raises(TypeError, match=r"model_kwargs: contains the size parameter 'width'"):
        validate_model_contract(MLP, "width", {"width": 4})


def test_unaccepted_and_missing_kwargs_are_named():
    with pytest.raises(TypeError) as info:
        validate_model_contract(MLP, "width", {"dept": 2})
    assert "MLP does not accept the argument 'dept'. Did you mean 'depth'?" in str(info.value)
    with pytest.raises(TypeError, match=r"Attention requires 'n_head', which is not given"):
        validate_model_contract(Attention, "n_embd", {})


def test_rejected_size_values_are_all_named_with_the_models_error():
    with pytest.raises(ValueError) as info:
        validate_model_contract(Attention, "n_embd", {"n_head": 4}, sizes=[16, 18, 32, 33])
    message = str(info.value)
    assert "n_embd=18: ValueError: n_embd=18 must be divisible by n_head=4" in message
    assert "n_embd=33: ValueError: n_embd=33 must be divisible by n_head=4" in message
    assert "n_embd=16:" not in message
    assert "remove or change them" in message


def test_parameter_count_must_increase_with_size():
    with pytest.raises(ValueError) as info:
        validate_model_contract(IgnoresSize, "width", sizes=[8, 16])
    message = str(info.value)
    assert "does not increase with 'width'" in message
    assert "width=8 -> 20, width=16 -> 20" in message


def test_repeated_sizes_are_rejected():
    with pytest.raises(ValueError, match=r"sizes: 16 appears more than once"):
        validate_model_contract(MLP, "width", sizes=[8, 16, 16])


def test_meta_device_failures_explain_the_meta_device():
    with pytest.raises(ValueError, match=r"torch.device\('meta'\).*\.item\(\)"):
        validate_model_contract(UsesItem, "width", sizes=[4, 8])


def test_kwargs_constructor_accepts_any_size_param():
    counts = validate_model_contract(KwargsModel, "width", sizes=[2, 4])
    assert counts[2][0] < counts[4][0]


def test_default_probe_sizes_use_the_parameters_default():
    assert default_probe_sizes(MLP, "width") == [16, 32]
    assert default_probe_sizes(Attention, "n_embd") == [64, 128]
    assert sorted(validate_model_contract(MLP, "width")) == [16, 32]


def test_counts_are_n_without_lookup_only_embeddings_and_tied_weights_once():
    n, total = validate_model_contract(TiedLM, "d", sizes=[4, 8])[4]
    assert n == 40  # the tied 10x4 matrix
    assert total == 60  # plus the 5x4 position embedding

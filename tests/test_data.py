"""wrap_dataset / validate_dataset: the dataset interface of docs/interfaces.md and pitfalls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from flops_fit.data import describe_dataset, validate_dataset, wrap_dataset


class Pairs(Dataset):
    def __init__(self, n: int = 10) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        return torch.full((4,), i), torch.tensor(i)


class NumpyPairs(Pairs):
    def __getitem__(self, i):
        return np.full(4, i, dtype=np.float32), np.int64(i)


class Stream(IterableDataset):
    def __iter__(self):
        for i in range(10):
            yield torch.full((4,), i), torch.tensor(i)


class Untouchable(Dataset):
    """Any access to the data would be a bug in validation (download, GPU work...)."""

    def __len__(self) -> int:
        return 100

    def __getitem__(self, i):
        raise AssertionError("validation must not index the dataset")

    def __iter__(self):
        raise AssertionError("validation must not iterate the dataset")


class UntouchableStream(IterableDataset):
    def __iter__(self):
        raise AssertionError("validation must not iterate the dataset")


class NoLen(Dataset):
    def __getitem__(self, i):
        return i


class HFLike:
    """Shaped like a HuggingFace datasets.Dataset: indexable, sized, with features and a format, but
    not a torch Dataset subclass, even after .with_format("torch") (huggingface/datasets#7500)."""

    features = {"x": "float32", "y": "int64"}
    column_names = ["x", "y"]

    def __init__(self, format_type: str | None = None) -> None:
        self._format_type = format_type

    @property
    def format(self) -> dict:
        return {"type": self._format_type, "columns": self.column_names}

    def with_format(self, kind: str) -> HFLike:
        return HFLike(kind)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i):
        if self._format_type is None:
            raise AssertionError("validation must not index the dataset")
        return {"x": torch.full((2,), float(i)), "y": torch.tensor(i)}


def test_dataloader_passes_through_untouched():
    loader = DataLoader(Pairs(), batch_size=3)
    validate_dataset(loader)
    assert wrap_dataset(loader, batch_size=7, shuffle=False) is loader


def test_map_style_dataset_is_wrapped_with_drop_last():
    loader = wrap_dataset(Pairs(10), batch_size=4, shuffle=False)
    assert isinstance(loader, DataLoader) and loader.drop_last and loader.batch_size == 4
    batches = list(loader)
    assert len(batches) == 2  # 10 samples, batch 4: the partial batch of 2 is dropped
    assert batches[0][0].shape == (4, 4)


def test_shuffle_is_applied_to_map_style_data():
    loader = wrap_dataset(Pairs(64), batch_size=64, shuffle=True)
    torch.manual_seed(0)
    (_, targets), = list(loader)
    assert sorted(targets.tolist()) == list(range(64)) and targets.tolist() != list(range(64))


def test_iterable_dataset_is_accepted_without_len_and_not_shuffled():
    stream = Stream()
    assert not hasattr(stream, "__len__")
    validate_dataset(stream)
    loader = wrap_dataset(stream, batch_size=4, shuffle=True)  # DataLoader would refuse to shuffle it
    targets = torch.cat([t for _, t in loader])
    assert targets.tolist() == list(range(8))  # in order, last partial batch dropped


def test_map_style_dataset_without_len_is_rejected_naming_len():
    with pytest.raises(TypeError) as info:
        validate_dataset(NoLen())
    message = str(info.value)
    assert "NoLen is a Dataset but does not implement __len__" in message
    assert "IterableDataset" in message


def test_plain_list_names_the_type_and_the_fix():
    with pytest.raises(TypeError) as info:
        validate_dataset([1, 2, 3])
    message = str(info.value)
    assert message.startswith(
        "dataset must be a torch.utils.data.Dataset or torch.utils.data.DataLoader, got list."
    )
    assert "__getitem__ and __len__" in message
    assert "with_format" not in message  # not dataset-like: no HuggingFace noise


def test_huggingface_like_object_gets_the_with_format_hint():
    with pytest.raises(TypeError) as info:
        validate_dataset(HFLike())
    assert "got HFLike" in str(info.value)
    assert "dataset.with_format('torch')" in str(info.value)


def test_following_the_hint_is_accepted_and_loads():
    formatted = HFLike().with_format("torch")
    assert not isinstance(formatted, Dataset)
    validate_dataset(formatted)
    assert describe_dataset(formatted)["length"] == 8
    batch = next(iter(wrap_dataset(formatted, batch_size=4, shuffle=False)))
    assert batch["x"].shape == (4, 2) and batch["y"].tolist() == [0, 1, 2, 3]


def test_object_from_the_datasets_package_gets_the_hint():
    cls = type("Dataset", (), {"__module__": "datasets.arrow_dataset"})
    with pytest.raises(TypeError, match=r"with_format\('torch'\)"):
        validate_dataset(cls())


def test_dataset_class_instead_of_instance_suggests_parentheses():
    with pytest.raises(TypeError, match=r"got the class Pairs itself\. Did you mean dataset=Pairs\(\.\.\.\)"):
        validate_dataset(Pairs)


def test_none_is_required_with_examples_and_the_name_is_used():
    with pytest.raises(TypeError) as info:
        validate_dataset(None, name="eval_dataset")
    assert str(info.value).startswith("eval_dataset is required.")
    assert "eval_dataset=DataLoader(" in str(info.value)


def test_validation_never_indexes_or_iterates():
    for data in (Untouchable(), UntouchableStream(), DataLoader(Untouchable(), batch_size=2)):
        validate_dataset(data)
        describe_dataset(data)
    wrap_dataset(Untouchable(), batch_size=8)  # building the loader touches nothing either


def test_numpy_returning_dataset_is_accepted_and_collated_to_tensors():
    dataset = NumpyPairs(8)
    validate_dataset(dataset)
    inputs, targets = next(iter(wrap_dataset(dataset, batch_size=4)))
    assert isinstance(inputs, torch.Tensor) and inputs.shape == (4, 4)
    assert targets.dtype == torch.int64


def test_tensor_dataset_is_accepted():
    validate_dataset(TensorDataset(torch.zeros(5, 2), torch.zeros(5)))


def test_dataset_smaller_than_one_batch_is_an_error_not_an_empty_loader():
    with pytest.raises(ValueError, match="3 samples, fewer than one batch of 32"):
        wrap_dataset(Pairs(3))


def test_describe_dataset():
    assert describe_dataset(Pairs(10)) == {
        "type": f"{__name__}.Pairs", "loader": False, "iterable": False, "length": 10, "batch_size": None,
    }
    assert describe_dataset(Stream())["length"] is None and describe_dataset(Stream())["iterable"]
    described = describe_dataset(DataLoader(Pairs(10), batch_size=5))
    assert described["loader"] and described["length"] == 10 and described["batch_size"] == 5

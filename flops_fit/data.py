"""The dataset interface: accept a torch ``Dataset`` or ``DataLoader`` and normalise it to a ``DataLoader``.

Validation checks interfaces only: it never indexes or iterates the data, because that could
start a download, a slow preprocessing step or GPU work before the user has even seen that the
rest of the configuration is fine. Sample types (tensors, numpy arrays, lists) are not checked:
the DataLoader's default collation converts numpy to tensors, and the plan reads the first samples
(pairs or mappings, :mod:`flops_fit.batch_format`) and runs the smoke test (:mod:`flops_fit.smoke`)
on them, so an incompatible sample stops the sweep before any training job.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch.utils.data as data

_HF_ATTRIBUTES = ("with_format", "features", "column_names")


def validate_dataset(dataset_or_loader: Any, name: str = "dataset") -> None:
    """Raise ``TypeError`` unless the input is a ``DataLoader``, an ``IterableDataset`` or a map-style
    ``Dataset`` with ``__len__``.

    An ``IterableDataset`` needs no ``__len__``: training then stops after the run's token budget
    instead of counting epochs. A map-style dataset needs ``__len__`` so that the sweep can be
    planned in epochs and samples. A HuggingFace ``datasets.Dataset`` after ``.with_format("torch")``
    counts as a map-style dataset: it is not a torch ``Dataset`` subclass (huggingface/datasets
    issue 7500) but a ``DataLoader`` loads it, and the error message tells users to do exactly that.
    """
    if dataset_or_loader is None:
        raise TypeError(
            f"{name} is required. Pass a torch.utils.data.Dataset or DataLoader that yields "
            "(inputs, targets) pairs or mappings such as {'input_ids': ..., 'labels': ...}.\n"
            "Examples:\n"
            f"  {name}=torch.utils.data.TensorDataset(inputs, targets)\n"
            f"  {name}=MyDataset()  # a Dataset subclass with __getitem__ and __len__\n"
            f"  {name}=DataLoader(MyDataset(), batch_size=64, shuffle=True)"
        )
    if isinstance(dataset_or_loader, data.DataLoader | data.IterableDataset):
        return
    if isinstance(dataset_or_loader, data.Dataset):
        if not hasattr(dataset_or_loader, "__len__"):
            cls = type(dataset_or_loader).__name__
            raise TypeError(
                f"{name}: {cls} is a Dataset but does not implement __len__. flops_fit needs __len__ to "
                f"calculate training epochs from token budgets. Add a __len__ method to {cls}, or, for "
                "streaming data without a length, subclass torch.utils.data.IterableDataset instead."
            )
        return
    if _is_torch_formatted_hf_dataset(dataset_or_loader):
        return
    raise TypeError(_not_a_dataset_message(dataset_or_loader, name))


def _not_a_dataset_message(obj: Any, name: str) -> str:
    if inspect.isclass(obj) and issubclass(obj, data.Dataset | data.DataLoader):
        return (
            f"{name} must be a torch.utils.data.Dataset or torch.utils.data.DataLoader instance, got the "
            f"class {obj.__name__} itself. Did you mean {name}={obj.__name__}(...) (with parentheses)?"
        )
    message = (
        f"{name} must be a torch.utils.data.Dataset or torch.utils.data.DataLoader, got "
        f"{type(obj).__name__}. Wrap your data in a torch.utils.data.Dataset subclass with __getitem__ "
        "and __len__ methods."
    )
    if _looks_like_hf_dataset(obj):
        message += (
            " If using HuggingFace datasets, call dataset.with_format('torch') first, or wrap it in a "
            "torch Dataset subclass."
        )
    return message


def _looks_like_hf_dataset(obj: Any) -> bool:
    """A dataset-like object that is not a torch Dataset, e.g. a HuggingFace ``datasets.Dataset``.

    Checked on the type so that no property of the object (which could load data) is evaluated.
    """
    cls = type(obj)
    return cls.__module__.split(".")[0] == "datasets" or any(hasattr(cls, a) for a in _HF_ATTRIBUTES)


def _is_torch_formatted_hf_dataset(obj: Any) -> bool:
    """A sized, indexable HuggingFace-like dataset whose format is torch (it yields tensors).

    ``format`` is a property that reads the format setting only, never the data.
    """
    if not _looks_like_hf_dataset(obj):
        return False
    cls, fmt = type(obj), getattr(obj, "format", None)
    return (
        isinstance(fmt, dict)
        and fmt.get("type") in ("torch", "pytorch")
        and hasattr(cls, "__getitem__")
        and hasattr(cls, "__len__")
    )


def wrap_dataset(
    dataset_or_loader: Any,
    batch_size: int = 32,
    num_workers: int = 0,
    shuffle: bool = True,
    *,
    batch_sampler: data.Sampler[list[int]] | None = None,
    pin_memory: bool = False,
) -> data.DataLoader:
    """Return a ``DataLoader``: a ``DataLoader`` passes through untouched (its own batch size and
    workers win), a ``Dataset`` is wrapped with ``drop_last=True`` so every batch has the same shape
    and the same number of tokens.

    An ``IterableDataset`` is never shuffled (it defines its own order; DataLoader refuses to
    shuffle it). A map-style dataset smaller than one batch is an error rather than a loader that
    silently yields nothing. The training stream (:mod:`flops_fit.training.batches`) gives a
    map-style dataset its own ``batch_sampler`` (full batches of ``batch_size``, reshuffled per epoch
    from the run's seed, resumable at any batch), which then replaces ``batch_size`` and ``shuffle``.
    Workers persist across epochs, since the stream re-iterates the loader.
    """
    validate_dataset(dataset_or_loader)
    if isinstance(dataset_or_loader, data.DataLoader):
        return dataset_or_loader
    iterable = isinstance(dataset_or_loader, data.IterableDataset)
    if not iterable and len(dataset_or_loader) < batch_size:
        raise ValueError(
            f"dataset has {len(dataset_or_loader)} samples, fewer than one batch of {batch_size}; with "
            "drop_last=True no batch would be produced. Use more data or a smaller batch size."
        )
    workers = {"num_workers": num_workers, "pin_memory": pin_memory, "persistent_workers": num_workers > 0}
    if batch_sampler is not None and not iterable:
        return data.DataLoader(dataset_or_loader, batch_sampler=batch_sampler, **workers)
    return data.DataLoader(
        dataset_or_loader, batch_size=batch_size, shuffle=shuffle and not iterable, drop_last=True, **workers
    )


def dataset_samples(data_or_loader: Any) -> int | None:
    """How many samples one epoch of the data holds, or ``None`` when that is unknown.

    * a map-style ``Dataset`` (or a torch-formatted Hugging Face dataset, a ``Subset``): ``len()``;
    * a ``DataLoader``: ``len(loader.dataset)``, the samples of the dataset it loads. Not ``len(loader)``,
      which counts batches (1,285 samples in batches of 7 are 184 batches, not 184 samples); a loader's
      own sampler or ``drop_last`` may use fewer of them per epoch, which this does not model;
    * an ``IterableDataset`` (or a loader of one), or anything without ``len()``: ``None``, since a
      stream has no size to count epochs against (training stops after the run's token budget).

    Never indexes or iterates the data.
    """
    dataset = data_or_loader.dataset if isinstance(data_or_loader, data.DataLoader) else data_or_loader
    if isinstance(dataset, data.IterableDataset):
        return None
    try:
        return len(dataset)
    except TypeError:  # no __len__
        return None


def describe_dataset(dataset_or_loader: Any) -> dict[str, Any]:
    """A JSON-serialisable summary for ``results/validated.json``: type, loader or not, iterable, length.

    The length is in samples (:func:`dataset_samples`: a loader's dataset, never its batches; never an
    item); ``None`` for iterable data.
    """
    is_loader = isinstance(dataset_or_loader, data.DataLoader)
    dataset = dataset_or_loader.dataset if is_loader else dataset_or_loader
    iterable = isinstance(dataset, data.IterableDataset)
    cls = type(dataset_or_loader)
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "loader": is_loader,
        "iterable": iterable,
        "length": dataset_samples(dataset_or_loader),
        "batch_size": dataset_or_loader.batch_size if is_loader else None,
    }

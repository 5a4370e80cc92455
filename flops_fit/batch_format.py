"""What a batch is: turn a raw sample or batch of the user's data into ``(inputs, targets)``.

Users' data comes in two shapes. Plain torch datasets yield ``(inputs, targets)`` pairs (extra items
are ignored). Hugging Face ``datasets`` after ``.with_format("torch")``, tokenizer outputs and many
custom datasets yield *mappings* such as ``{"input_ids": ..., "attention_mask": ..., "labels": ...}``;
the DataLoader's default collation keeps them mappings. This module is the one place that reads
either, so the plan's first sample, the eval batches and the training stream agree on what the
model's inputs and the loss's targets are. The keys default to Hugging Face language-model data
(``input_ids``, ``labels``) and are set by ``dataset.inputs_key`` / ``dataset.targets_key`` (or
``find_optimal(inputs_key=..., targets_key=...)``); they apply to the eval dataset too. A mapping
without one of the keys is an error that names the keys it has: there is no guessing, because a
wrong guess (e.g. ``input_ids`` as targets) trains a model that looks fine and measures nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flops_fit.errors import ConfigError


@dataclass(frozen=True)
class BatchFormat:
    """Where a mapping batch keeps the model's inputs and the loss's targets."""

    inputs_key: str = "input_ids"
    targets_key: str = "labels"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BatchFormat:
        """The keys of a config's ``dataset`` section; the defaults when absent (a ``validated.json``
        written before these keys existed, read by a resumed sweep's train jobs)."""
        dataset = config["dataset"]
        return cls(dataset.get("inputs_key", cls.inputs_key), dataset.get("targets_key", cls.targets_key))

    def __call__(self, batch: Any) -> tuple[Any, Any]:
        """``(inputs, targets)`` of a sample or collated batch: a mapping's two keys, a sequence's first two items."""
        if isinstance(batch, Mapping):
            missing = [k for k in (self.inputs_key, self.targets_key) if k not in batch]
            if missing:
                raise ConfigError(
                    f"the data yields mappings with keys {list(batch)}, without {' and '.join(map(repr, missing))}. "
                    f"flops-fit calls model(batch[inputs_key]) and loss(predictions, batch[targets_key]) with "
                    f"inputs_key={self.inputs_key!r}, targets_key={self.targets_key!r}: set dataset.inputs_key / "
                    "dataset.targets_key (find_optimal(inputs_key=..., targets_key=...)) to the keys that hold "
                    "them, or add the targets to every sample (for a causal LM, the next tokens)"
                )
            return batch[self.inputs_key], batch[self.targets_key]
        if isinstance(batch, list | tuple) and len(batch) >= 2:
            return batch[0], batch[1]
        kind = type(batch).__name__ + (f" of {len(batch)} item" if isinstance(batch, list | tuple) else "")
        raise ConfigError(
            f"a sample of the data is a {kind}; flops-fit needs (inputs, targets) pairs or "
            f"mappings with the keys {self.inputs_key!r} and {self.targets_key!r} (dataset.inputs_key, "
            "dataset.targets_key). Make the dataset's __getitem__ (or __iter__) return one of these"
        )

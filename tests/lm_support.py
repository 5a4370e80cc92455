"""Tiny language-model data and models shaped like users' real ones (Hugging Face and docs/interfaces.md).

``datasets`` and ``transformers`` are not dependencies, so their shapes are mimicked: dict samples
(``input_ids``, ``labels``), an indexable dataset that is no torch ``Dataset`` but has the ``format``
of ``.with_format("torch")``, and a ``ModelOutput``-like result with ``.logits``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch.utils.data import Dataset, IterableDataset

from flops_fit.examples.gpt import GPT

VOCAB, SEQ = 32, 8
GPT_KWARGS = {"n_layer": 1, "vocab_size": VOCAB, "block_size": SEQ, "head_dim": 8}


def token_rows(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` learnable sequences of ``SEQ + 1`` tokens: each token is the previous one plus 1 (mod VOCAB)."""
    start = torch.randint(0, VOCAB, (n, 1), generator=torch.Generator().manual_seed(seed))
    return (start + torch.arange(SEQ + 1)) % VOCAB


class TextDataset(Dataset):
    """The founding interface note's Example 1, verbatim (docs/interfaces.md): (x, y) token windows of one long stream."""

    def __init__(self, tokens, seq_len=256):
        self.tokens = tokens
        self.seq_len = seq_len

    def __len__(self):
        return len(self.tokens) // self.seq_len

    def __getitem__(self, idx):
        start = idx * self.seq_len
        x = self.tokens[start:start + self.seq_len]
        y = self.tokens[start + 1:start + self.seq_len + 1]
        return x, y


class DictTokens(Dataset):
    """Map-style samples ``{"input_ids", "attention_mask", "labels"}``, like a tokenized HF dataset."""

    def __init__(self, n: int = 256, seed: int = 0, labels_key: str = "labels") -> None:
        self.rows, self.labels_key = token_rows(n, seed), labels_key

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self.rows[i]
        return {"input_ids": row[:-1], "attention_mask": torch.ones(SEQ, dtype=torch.long), self.labels_key: row[1:]}


class DictStream(IterableDataset):
    """Endless dict samples, like a streamed HF dataset."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __iter__(self):
        chunk = 0
        while True:
            for row in token_rows(64, seed=self.seed * 1000 + chunk):
                yield {"input_ids": row[:-1], "labels": row[1:]}
            chunk += 1


class HFLike:
    """A Hugging Face ``datasets.Dataset`` after ``.with_format("torch")``: not a torch Dataset, dict rows."""

    column_names = ["input_ids", "labels"]

    def __init__(self, n: int = 256, seed: int = 0) -> None:
        self._data = DictTokens(n, seed)

    @property
    def format(self) -> dict:
        return {"type": "torch", "format_kwargs": {}, "columns": self.column_names, "output_all_columns": False}

    def with_format(self, type: str) -> HFLike:
        return self

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = self._data[i]
        return {k: row[k] for k in self.column_names}


class ModelOutput(OrderedDict):
    """``transformers.utils.ModelOutput`` in miniature: a dict whose keys are also attributes."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class HFStyleLM(GPT):
    """The example GPT returning ``ModelOutput(logits=...)`` as a ``transformers`` model does."""

    def forward(self, idx: torch.Tensor) -> ModelOutput:
        return ModelOutput(logits=super().forward(idx))

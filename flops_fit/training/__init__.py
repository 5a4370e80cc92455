"""The training engine: one planned run → metrics.json + curve.tsv (see ``loop.run_training``); a
stable segment of a shared stable run → a branch checkpoint (``loop.train_segment``)."""

from flops_fit.training.loop import run_training, train_segment

__all__ = ["run_training", "train_segment"]

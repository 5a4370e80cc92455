"""The training engine: one planned run → metrics.json + curve.tsv (see ``loop.run_training``)."""

from flops_fit.training.loop import run_training

__all__ = ["run_training"]

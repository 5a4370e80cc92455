"""The training loop of one planned run: exactly its token budget, its own schedule, resumable.

One optimizer step consumes ``batch_size × tokens_per_sample`` tokens (``targets.numel()`` per batch).
A map-style dataset gives exactly that in one batch; a DataLoader or IterableDataset whose batches
are smaller is accumulated micro-batch by micro-batch until the run's cumulative token count is
reached, so the run trains by token count and overshoots by less than one micro-batch in total.

Under ``torchrun`` the run is split over several processes (``distributed``): every global batch is
shared among the ranks, the budget and the losses are global, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from flops_fit.batch_format import BatchFormat
from flops_fit.io import write_json, write_text
from flops_fit.loss import AdaptedLoss
from flops_fit.training.batches import BatchStream
from flops_fit.training.checkpoint import load_checkpoint, remove_checkpoint, rng_state, save_checkpoint, set_rng_state
from flops_fit.training.device import DeviceSetup, setup_device
from flops_fit.training.distributed import Ranks, local_rank, process_group
from flops_fit.training.divergence import DivergenceMonitor
from flops_fit.training.evaluation import evaluate
from flops_fit.training.schedule import lr_at

CURVE_COLUMNS = ("step", "tokens", "lr", "train_loss", "eval_loss")
#: the run-table columns a checkpoint must agree on to be resumed (a re-planned run starts afresh)
_FINGERPRINT = ("run_id", "steps", "batch_size", "tokens_per_sample", "lr", "warmup_steps", "seed")
#: progress lines: every tenth of the run or this many seconds, whichever comes first
_LOG_EVERY_S = 60.0


def build_optimizer(model: nn.Module, lr: float, options: dict, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (≥2-D) only: decaying gains and biases hurts and is not standard."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": float(options["weight_decay"])},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=lr,
        betas=tuple(float(b) for b in options["betas"]),
        eps=float(options["eps"]),
        fused=True if fused else None,
    )


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _plain(value: Any) -> Any:
    """numpy/pandas scalars from the runs table as JSON-ready Python numbers."""
    return value.item() if hasattr(value, "item") else value


def _curve_tsv(rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    return "\n".join(["\t".join(CURVE_COLUMNS), *("\t".join(cell(v) for v in r) for r in rows)]) + "\n"


def eval_steps(steps: int, points: int) -> set[int]:
    """1-based steps after which the eval loss is measured: evenly spaced, the last at the final step."""
    points = max(1, min(int(points), steps))
    return {max(1, round(steps * i / points)) for i in range(1, points + 1)}


class _Trainer:
    """State and steps of one run; :func:`run_training` drives it."""

    def __init__(
        self,
        run: dict,
        model: nn.Module,
        loss_fn: Callable,
        settings: dict,
        setup: DeviceSetup,
        ranks: Ranks,
        log: logging.Logger,
    ) -> None:
        self.run, self.loss_fn, self.settings, self.setup, self.log = run, loss_fn, settings, setup, log
        self.ranks = ranks
        self.steps = int(run["steps"])
        self.step_tokens = int(run["batch_size"]) * int(run["tokens_per_sample"])
        lo, hi = ranks.bounds(int(run["batch_size"]))
        self.rank_tokens = (hi - lo) * int(run["tokens_per_sample"])  #: this rank's share of a map-style batch
        self.model = model.to(setup.device).train()
        self.ddp = ranks.wrap(self.model, setup.device)  # the model itself for one process
        self.forward = torch.compile(self.ddp) if settings["compile"] else self.ddp
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, float(run["lr"]), settings["optimizer"], fused=setup.is_cuda)
        self.monitor = DivergenceMonitor(
            settings["divergence"]["spike_factor"], settings["divergence"]["patience_steps"], int(run["warmup_steps"])
        )
        schedule = settings["schedule"]
        self.lr_kwargs = {
            "peak_lr": float(run["lr"]),
            "warmup_steps": int(run["warmup_steps"]),
            "total_steps": self.steps,
            "kind": schedule["kind"],
            "final_lr_fraction": float(schedule["final_lr_fraction"]),
            "wsd_decay_fraction": float(schedule["wsd_decay_fraction"]),
        }
        self.step = 0
        self.tokens = 0
        self.curve: list[list[Any]] = []  # rows of CURVE_COLUMNS; train_loss may be a pending tensor
        self.pending: list[int] = []  # curve rows whose loss is still on the device
        self.timers = {"train": 0.0, "eval": 0.0, "compile": 0.0, "checkpoint": 0.0, "wall": 0.0}
        self.reason: str | None = None

    # -- checkpoint -----------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        return {k: _plain(self.run[k]) for k in _FINGERPRINT}

    def state_dict(self, position: int, wall: float) -> dict[str, Any]:
        self.flush()
        return {
            "fingerprint": self.fingerprint(),
            "step": self.step,
            "tokens": self.tokens,
            "position": position,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "monitor": self.monitor.state_dict(),
            "curve": self.curve,
            "timers": {**self.timers, "wall": self.timers["wall"] + wall},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.monitor.load_state_dict(state["monitor"])
        self.step, self.tokens, self.curve = int(state["step"]), int(state["tokens"]), list(state["curve"])
        self.timers.update(state["timers"])

    # -- steps ----------------------------------------------------------------------------------------
    def train_step(self, stream: BatchStream, exact_batches: bool) -> None:
        """One optimizer step on the next ``step_tokens`` tokens (micro-batches accumulated if needed).

        A micro-batch's loss is a mean over its targets; this rank back-propagates its slice's mean
        loss x (slice tokens x world size / step tokens). DDP averages gradients over the ranks, so the
        step's gradient is that of the token-mean loss of the whole global batch, however it was cut
        into micro-batches and slices (the slices may differ by a sample).
        """
        lr = lr_at(self.step, **self.lr_kwargs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        target = (self.step + 1) * self.step_tokens
        weighted, step_tokens = None, 0
        while self.tokens < target:
            batch = next(stream)
            inputs, targets = self.setup.move(batch[0]), self.setup.move(batch[1])
            n_rank = targets.numel()
            n = self._global_tokens(n_rank, stream.whole_tokens, exact_batches)
            # gradients are reduced over ranks once per step, on its last micro-batch
            sync = self.tokens + n >= target or not self.ranks.distributed
            with contextlib.nullcontext() if sync else self.ddp.no_sync():
                with self.setup.autocast():
                    loss = self.loss_fn(self.forward(inputs), targets)
                share = n_rank * self.ranks.world_size
                (loss if share == self.step_tokens else loss * (share / self.step_tokens)).backward()
            weighted = loss.detach() * n_rank if weighted is None else weighted + loss.detach() * n_rank
            step_tokens += n
            self.tokens += n
        if self.settings["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(self.params, float(self.settings["grad_clip"]))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        step_loss = self.ranks.sum_(weighted.float()) / step_tokens  # the same value on every rank
        self.curve.append([self.step, self.tokens, lr, step_loss, None])
        self.pending.append(len(self.curve) - 1)

    def _global_tokens(self, n_rank: int, whole_tokens: int | None, exact_batches: bool) -> int:
        """Tokens of the whole micro-batch of which this rank holds ``n_rank``; refuses batches off the plan."""
        if exact_batches:  # map-style: this rank holds its slice of exactly batch_size samples
            if n_rank == self.rank_tokens:
                return self.step_tokens
            n, planned = n_rank, self.rank_tokens
        else:  # every rank read the whole micro-batch
            if int(whole_tokens) <= self.step_tokens:
                return int(whole_tokens)
            n, planned = int(whole_tokens), self.step_tokens
        share = f" (this process's share of {self.ranks.world_size})" if planned != self.step_tokens else ""
        raise ValueError(
            f"a training batch has {n} targets but the run plans {planned} tokens per step{share} "
            f"(batch_size={self.run['batch_size']} x tokens_per_sample={self.run['tokens_per_sample']}); "
            "make dataset.tokens_per_sample match targets.numel() per sample, and give a DataLoader "
            "a batch size that divides the planned batch"
        )

    def flush(self) -> None:
        """Bring pending losses to the host (one sync) and check them for divergence."""
        if not self.pending:
            return
        values = torch.stack([self.curve[i][3] for i in self.pending]).tolist()
        for i, value in zip(self.pending, values):
            self.curve[i][3] = value
            if self.reason is None:
                self.reason = self.monitor.update(self.curve[i][0], value)
        self.pending = []

    def evaluate(self, eval_data: Sequence[Any]) -> float:
        loss = evaluate(self.model, eval_data, self.loss_fn, self.setup, self.ranks)
        self.curve[-1][4] = loss
        return loss

    def final_train_loss(self) -> float | None:
        """Mean train loss of the last 5 % of steps (at least one), a less noisy number than the last batch."""
        losses = [r[3] for r in self.curve if isinstance(r[3], float) and math.isfinite(r[3])]
        if not losses:
            return None
        tail = losses[-max(1, len(losses) // 20) :]
        return sum(tail) / len(tail)


def run_training(
    run: dict,
    *,
    model: nn.Module,
    train_data: Any,
    eval_data: Sequence[Any],
    loss_fn: Callable,
    settings: dict,
    out_dir: Path,
    checkpoint_dir: Path,
    log: logging.Logger | None = None,
    batch_format: BatchFormat = BatchFormat(),
) -> dict:
    """Train one row of the runs table and write ``out_dir/metrics.json`` and ``out_dir/curve.tsv``.

    ``train_data`` yields ``(inputs, targets)`` pairs or mappings read by ``batch_format``;
    ``eval_data`` is a list of ``(inputs, targets)`` batches (:func:`flops_fit.heldout.eval_batches`).
    ``loss_fn`` is called through :class:`~flops_fit.loss.AdaptedLoss` in training and evaluation.

    Resumes from ``checkpoint_dir`` when it holds a checkpoint of the same planned run, saves there
    every ``settings['checkpoint']`` steps/minutes, and deletes it once the metrics are written
    (unless ``keep``). A diverged run stops early with ``status: "diverged"`` and its reason. The
    caller seeds and builds the model; this function seeds the training RNGs with ``run['seed']``.

    Started by ``torchrun`` with several processes, it joins their process group and trains the
    run with DDP (``flops_fit.training.distributed``): every rank returns the same losses and counts, rank 0
    alone writes the files and the checkpoints, which every rank loads on a resume.
    """
    wall_start = time.monotonic()
    log = log or logging.getLogger("flops_fit.training")
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    setup = setup_device(settings["device"], settings["precision"], settings.get("threads"), local_rank())
    seed = int(run["seed"])
    _seed_everything(seed)  # the same on every rank: one model, one data order
    ranks = process_group(setup.is_cuda)
    trainer = _Trainer(run, model, AdaptedLoss(loss_fn, log), settings, setup, ranks, log)
    state = _resume(trainer, checkpoint_dir)
    resumed_from = trainer.step if state else None
    exact_batches = not isinstance(train_data, (torch.utils.data.DataLoader, torch.utils.data.IterableDataset))
    stream = BatchStream(
        train_data,
        batch_size=int(run["batch_size"]),
        seed=seed,
        num_workers=int(settings["num_workers"]),
        pin_memory=setup.is_cuda,
        start=int(state["position"]) if state else 0,
        ranks=ranks,
        batch_format=batch_format,
    )
    if state is not None:
        set_rng_state(state["rng"])  # after the data replay, so training draws continue exactly
    status, eval_loss = _train(trainer, stream, exact_batches, eval_data, checkpoint_dir, wall_start)

    timers = trainer.timers
    wall = timers["wall"] + time.monotonic() - wall_start
    fpt = float(run["flops_per_token"])
    metrics = {
        "run_id": _plain(run["run_id"]),
        "status": status,
        "reason": trainer.reason,
        "eval_loss": eval_loss,
        "final_train_loss": trainer.final_train_loss(),
        "tokens": trainer.tokens,
        "steps": trainer.step,
        "flops": fpt * trainer.tokens,
        "params": int(run["params"]),
        "params_total": int(run["params_total"]),
        "budget": float(run["budget"]),
        "size": _plain(run["size"]),
        "wall_time_s": round(wall, 3),
        "train_time_s": round(timers["train"], 3),
        "tokens_per_s": round(trainer.tokens / timers["train"], 1) if timers["train"] > 0 else None,
        "device": setup.description,
        "resumed_from_step": resumed_from,
        "planned_steps": trainer.steps,
        "planned_flops": float(run["planned_flops"]),
        "flops_per_token": fpt,
        "flops_convention": _plain(run["flops_convention"]),
        "lr": float(run["lr"]),
        "batch_size": int(run["batch_size"]),
        "seed": seed,
        "eval_time_s": round(timers["eval"], 3),
        "compile_time_s": round(timers["compile"], 3) if settings["compile"] else None,
        "checkpoint_time_s": round(timers["checkpoint"], 3),
        "processes": ranks.world_size,
    }
    if not ranks.is_main:
        return metrics
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(_curve_tsv(trainer.curve), out_dir / "curve.tsv")
    write_json(metrics, out_dir / "metrics.json")
    if not settings["checkpoint"]["keep"]:
        remove_checkpoint(checkpoint_dir)
    log.info(
        "%s: %s, eval loss %s, %d tokens in %.1f s (%s tok/s)",
        metrics["run_id"], status, eval_loss, trainer.tokens, timers["train"], metrics["tokens_per_s"],
    )
    return metrics


def _resume(trainer: _Trainer, checkpoint_dir: Path) -> dict[str, Any] | None:
    """Load this run's checkpoint into ``trainer`` (every rank reads the one rank 0 wrote); its state or None."""
    state = load_checkpoint(checkpoint_dir)
    if state is None:
        return None
    if state["fingerprint"] != trainer.fingerprint():
        if trainer.ranks.is_main:
            trainer.log.warning(
                "ignoring the checkpoint in %s: it belongs to a different plan of this run", checkpoint_dir
            )
        return None
    trainer.load_state_dict(state)
    if trainer.ranks.is_main:
        trainer.log.info("resumed from step %d", trainer.step)
    return state


def _train(
    trainer: _Trainer,
    stream: BatchStream,
    exact_batches: bool,
    eval_data: Sequence[Any],
    checkpoint_dir: Path,
    wall_start: float,
) -> tuple[str, float | None]:
    """The step loop; returns (status, final eval loss). Timers exclude eval, checkpoints and compilation."""
    settings, setup, log, steps = trainer.settings, trainer.setup, trainer.log, trainer.steps
    evals = eval_steps(steps, settings["eval"]["points"])
    every_steps = int(settings["checkpoint"]["every_steps"])
    every_s = float(settings["checkpoint"]["every_minutes"]) * 60.0
    sync_every = 16 if setup.is_cuda else 1  # a host sync per step costs GPU throughput, nothing on CPU
    log_every = max(1, steps // 10)
    timers = trainer.timers
    eval_loss: float | None = None
    first_step_compiles = bool(settings["compile"])
    start_step, train_before = trainer.step, timers["train"]
    last_log = last_ckpt = time.monotonic()
    section = time.monotonic()

    def lap(key: str) -> None:
        nonlocal section
        if setup.is_cuda:
            torch.cuda.synchronize()
        now = time.monotonic()
        timers[key] += now - section
        section = now

    main, stop = trainer.ranks.is_main, False
    while trainer.step < steps and not stop:
        trainer.train_step(stream, exact_batches)
        step = trainer.step
        if first_step_compiles:
            lap("compile")  # the first step of a compiled model includes the compilation
            first_step_compiles = False
        if step % sync_every == 0 or step in evals or step == steps:
            trainer.flush()
            # decided only at these steps, the same on every rank (rank 0's log and checkpoint flushes
            # can see a divergence sooner; stopping then would leave the other ranks waiting)
            stop = trainer.reason is not None
        if stop:
            break
        if step in evals:
            lap("train")
            eval_loss = trainer.evaluate(eval_data)
            lap("eval")
        now = time.monotonic()
        if main and (step % log_every == 0 or step == start_step + 1 or now - last_log > _LOG_EVERY_S):
            trainer.flush()
            lap("train")
            done = step - start_step
            rate = (trainer.tokens - start_step * trainer.step_tokens) / max(timers["train"] - train_before, 1e-9)
            eta = (steps - step) * trainer.step_tokens / max(rate, 1e-9) if done else float("nan")
            log.info(
                "step %d/%d loss %.4f lr %.3g %.0f tok/s ETA %.0fs%s",
                step, steps, trainer.curve[-1][3], trainer.curve[-1][2], rate, eta,
                "" if trainer.curve[-1][4] is None else f" eval {trainer.curve[-1][4]:.4f}",
            )
            last_log = now
        due = (every_steps > 0 and step % every_steps == 0) or (every_s > 0 and now - last_ckpt >= every_s)
        if due and step < steps and main:
            lap("train")
            save_checkpoint(checkpoint_dir, trainer.state_dict(stream.position, time.monotonic() - wall_start))
            lap("checkpoint")
            last_ckpt = time.monotonic()
    trainer.flush()
    lap("train")
    if trainer.reason is None and eval_loss is not None and not math.isfinite(eval_loss):
        trainer.reason = f"non-finite eval loss ({eval_loss}) at step {trainer.step}"
    if trainer.reason is not None:
        if main:
            log.warning("run %s diverged: %s", trainer.run["run_id"], trainer.reason)
        return "diverged", None
    return "ok", eval_loss

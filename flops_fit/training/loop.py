"""The training loop of one planned run: exactly its token budget, its own schedule, resumable.

One optimizer step consumes ``batch_size × tokens_per_sample`` tokens (``targets.numel()`` per batch).
A map-style dataset gives exactly that in one batch; a DataLoader or IterableDataset whose batches
are smaller is accumulated micro-batch by micro-batch until the run's cumulative token count is
reached, so the run trains by token count and overshoots by less than one micro-batch in total.

Under ``torchrun`` the run is split over several processes (``distributed``): every global batch is
shared among the ranks, the budget and the losses are global, and rank 0 alone writes files.

Faults a cluster throws at a run, and what happens (``docs/training.md``, "Faults"):

* a checkpoint that cannot be read, or of another plan, is set aside and the run starts over;
* SIGTERM/SIGUSR1 (time limit, preemption) finishes the step in progress, writes a checkpoint and
  raises :class:`~flops_fit.training.stopping.Interrupted`: the rerun resumes from that step;
* a diverged run is retried from its initial weights at a lower lr (``divergence.retries``,
  ``divergence.lr_factor``); every attempt is listed in ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from flops_fit.batch_format import BatchFormat
from flops_fit.io import write_json, write_text
from flops_fit.loss import AdaptedLoss
from flops_fit.training.batches import BatchStream
from flops_fit.training.checkpoint import (
    UnusableCheckpoint,
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_aside,
    set_rng_state,
)
from flops_fit.training.device import DeviceSetup, setup_device
from flops_fit.training.distributed import Ranks, local_rank, process_group
from flops_fit.training.divergence import DivergenceMonitor
from flops_fit.training.chance import chance_loss
from flops_fit.training.evaluation import evaluate
from flops_fit.training.schedule import lr_at
from flops_fit.training.stopping import Interrupted, StopRequests

CURVE_COLUMNS = ("step", "tokens", "lr", "train_loss", "eval_loss")
#: progress lines: every tenth of the run or this many seconds, whichever comes first
_LOG_EVERY_S = 60.0


@dataclass
class CurveRow:
    """One optimizer step, one line of ``curve.tsv`` (:data:`CURVE_COLUMNS`).

    ``train_loss`` stays a device tensor until :meth:`_Trainer.flush` brings a batch of them to the
    host at once (a host sync per step would stall a GPU); ``eval_loss`` is set on eval steps only.
    """

    step: int
    tokens: int
    lr: float
    train_loss: float | torch.Tensor
    eval_loss: float | None = None


class Stopwatch:
    """Charges wall time to named sections (train, eval, compile, checkpoint) lap by lap.

    :meth:`lap` adds the time since the previous lap to ``totals[key]``. On CUDA it synchronises
    first, so kernels still queued are charged to the section that launched them.
    """

    def __init__(self, totals: dict[str, float], cuda: bool) -> None:
        self.totals, self.cuda = totals, cuda
        self.since = time.monotonic()

    def lap(self, key: str) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        now = time.monotonic()
        self.totals[key] += now - self.since
        self.since = now


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


def _curve_tsv(rows: list[CurveRow]) -> str:
    def cell(v: Any) -> str:
        return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    return "\n".join(["\t".join(CURVE_COLUMNS), *("\t".join(cell(v) for v in astuple(r)) for r in rows)]) + "\n"


def eval_steps(steps: int, points: int) -> set[int]:
    """1-based steps after which the eval loss is measured: evenly spaced, the last at the final step."""
    points = max(1, min(int(points), steps))
    return {max(1, round(steps * i / points)) for i in range(1, points + 1)}


def fingerprint(run: dict) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the whole planned ``run`` as given (the planned lr,
    whatever attempt it is on). The pipeline gives the run's identity (``planning.run_identity``), so a
    checkpoint is resumed exactly when the workflow and ``find_optimal`` call it the same run."""
    return {k: _plain(v) for k, v in run.items()}


class _Network:
    """The model as one run trains it, built once per run and kept across retries.

    DDP registers gradient hooks on the parameters and ``torch.compile`` caches its graphs, so
    wrapping the same model again for a retry would reduce gradients twice and recompile.
    """

    def __init__(self, model: nn.Module, setup: DeviceSetup, ranks: Ranks, compile_: bool) -> None:
        self.model = model.to(setup.device).train()
        self.ddp = ranks.wrap(self.model, setup.device)  # the model itself for one process
        self.forward = torch.compile(self.ddp) if compile_ else self.ddp
        self.params = [p for p in self.model.parameters() if p.requires_grad]


class _Trainer:
    """State and steps of one attempt at a run at peak lr ``lr``; :func:`run_training` drives it."""

    def __init__(
        self,
        run: dict,
        net: _Network,
        lr: float,
        loss_fn: Callable,
        settings: dict,
        setup: DeviceSetup,
        ranks: Ranks,
        timers: dict[str, float],
        log: logging.Logger,
        identity: dict | None = None,
    ) -> None:
        self.run, self.net, self.lr, self.loss_fn, self.settings = run, net, lr, loss_fn, settings
        #: what this state's checkpoints are fingerprinted with (the run; a stable segment's stable run)
        self.identity = run if identity is None else identity
        self.setup, self.ranks, self.timers, self.log = setup, ranks, timers, log
        self.steps = int(run["steps"])
        self.step_tokens = int(run["batch_size"]) * int(run["tokens_per_sample"])
        lo, hi = ranks.bounds(int(run["batch_size"]))
        self.rank_tokens = (hi - lo) * int(run["tokens_per_sample"])  #: this rank's share of a map-style batch
        self.optimizer = build_optimizer(net.model, lr, settings["optimizer"], fused=setup.is_cuda)
        self.monitor = DivergenceMonitor(
            settings["divergence"]["spike_factor"], settings["divergence"]["patience_steps"], int(run["warmup_steps"])
        )
        schedule = settings["schedule"]
        self.lr_kwargs = {
            "peak_lr": lr,
            "warmup_steps": int(run["warmup_steps"]),
            "total_steps": self.steps,
            "kind": schedule["kind"],
            "final_lr_fraction": float(schedule["final_lr_fraction"]),
            "wsd_decay_fraction": float(schedule["wsd_decay_fraction"]),
            "wsd_decay_shape": schedule.get("wsd_decay_shape", "linear"),
        }
        self.step = 0
        self.tokens = 0
        self.curve: list[CurveRow] = []
        self.pending: list[CurveRow] = []  # rows whose train loss is still on the device
        self.reason: str | None = None  #: why the attempt diverged, once it has
        self.initial_eval_loss: float | None = None  #: held-out loss at initialization (flops_fit.learning)
        self.chance_eval_loss: float | None = None  #: held-out loss of the best constant prediction (chance)

    # -- checkpoint -----------------------------------------------------------------------------------
    def state_dict(self, position: int, wall: float, attempts: list[dict]) -> dict[str, Any]:
        """Everything a resume needs; plain containers only, so ``weights_only`` loading accepts it."""
        self.flush()
        return {
            "fingerprint": fingerprint(self.identity),
            "attempts": attempts,  # the finished (diverged) attempts before this one
            "lr": self.lr,
            "step": self.step,
            "tokens": self.tokens,
            "position": position,
            "model": self.net.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "monitor": self.monitor.state_dict(),
            "curve": [list(astuple(r)) for r in self.curve],
            "initial_eval_loss": self.initial_eval_loss,
            "chance_eval_loss": self.chance_eval_loss,
            "timers": {**self.timers, "wall": self.timers["wall"] + wall},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.monitor.load_state_dict(state["monitor"])
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        self.curve = [CurveRow(*row) for row in state["curve"]]
        self.initial_eval_loss = state.get("initial_eval_loss")  # absent from older checkpoints
        self.chance_eval_loss = state.get("chance_eval_loss")
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
            with contextlib.nullcontext() if sync else self.net.ddp.no_sync():
                with self.setup.autocast():
                    loss = self.loss_fn(self.net.forward(inputs), targets)
                share = n_rank * self.ranks.world_size
                (loss if share == self.step_tokens else loss * (share / self.step_tokens)).backward()
            weighted = loss.detach() * n_rank if weighted is None else weighted + loss.detach() * n_rank
            step_tokens += n
            self.tokens += n
        if self.settings["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(self.net.params, float(self.settings["grad_clip"]))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        step_loss = self.ranks.sum_(weighted.float()) / step_tokens  # the same value on every rank
        self.curve.append(CurveRow(self.step, self.tokens, lr, step_loss))
        self.pending.append(self.curve[-1])

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
        values = torch.stack([row.train_loss for row in self.pending]).tolist()
        for row, value in zip(self.pending, values):
            row.train_loss = value
            if self.reason is None:
                self.reason = self.monitor.update(row.step, value)
        self.pending = []

    def evaluate(self, eval_data: Sequence[Any]) -> float:
        loss = evaluate(self.net.model, eval_data, self.loss_fn, self.setup, self.ranks)
        self.curve[-1].eval_loss = loss
        return loss

    def final_train_loss(self) -> float | None:
        """Mean train loss of the last 5 % of steps (at least one), a less noisy number than the last batch."""
        losses = [r.train_loss for r in self.curve if isinstance(r.train_loss, float) and math.isfinite(r.train_loss)]
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
    branch_from: Path | None = None,
    branch_identity: dict | None = None,
) -> dict:
    """Train one row of the runs table and write ``out_dir/metrics.json`` and ``out_dir/curve.tsv``.

    A cooldown run (``sweep.reuse: branches``) gives ``branch_from``, the directory of the branch
    checkpoint its stable run wrote at ``run['branch_step']`` (:func:`train_segment`), and
    ``branch_identity``, the stable run's identity that checkpoint must carry. Without a checkpoint of
    its own it starts there: step, tokens, data position, optimizer, RNGs and curve continue, and
    its own schedule (``wsd``) decays to its last step, so it is the standalone WSD run of its plan.

    ``train_data`` yields ``(inputs, targets)`` pairs or mappings read by ``batch_format``;
    ``eval_data`` is a list of ``(inputs, targets)`` batches (:func:`flops_fit.heldout.eval_batches`).
    ``loss_fn`` is called through :class:`~flops_fit.loss.AdaptedLoss` in training and evaluation.

    Resumes from ``checkpoint_dir`` when it holds a checkpoint of the same planned run (an unusable
    one is set aside), saves there every ``settings['checkpoint']`` steps/minutes, and deletes it
    once the metrics are written (unless ``keep``). A diverged run is retried from its initial
    weights at ``divergence.lr_factor`` x the lr, up to ``divergence.retries`` times (the pipeline
    sets 0 for lr-calibration runs: their divergence is what calibration measures); if the last attempt diverges too it
    ends with ``status: "diverged"`` and its reason. On SIGTERM/SIGUSR1 it checkpoints after the
    current step and raises :class:`~flops_fit.training.stopping.Interrupted`. The caller seeds and
    builds the model; this function seeds the training RNGs with ``run['seed']``.

    Started by ``torchrun`` with several processes, it joins their process group and trains the
    run with DDP (``flops_fit.training.distributed``): every rank returns the same losses and counts, rank 0
    alone writes the files and the checkpoints, which every rank loads on a resume.
    """
    # 1. device, seeds, process group ---------------------------------------------------------------
    wall_start = time.monotonic()
    log = log or logging.getLogger("flops_fit.training")
    out_dir, checkpoint_dir = Path(out_dir), Path(checkpoint_dir)
    setup = setup_device(settings["device"], settings["precision"], settings.get("threads"), local_rank())
    seed = int(run["seed"])
    ranks = process_group(setup.is_cuda)
    loss_fn = AdaptedLoss(loss_fn, log)
    exact_batches = not isinstance(train_data, (torch.utils.data.DataLoader, torch.utils.data.IterableDataset))

    # 2. the network, and its initial weights for a retry from scratch -------------------------------
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    net = _Network(model, setup, ranks, settings["compile"])
    timers = {"train": 0.0, "eval": 0.0, "compile": 0.0, "checkpoint": 0.0, "wall": 0.0}
    divergence = settings["divergence"]
    retries = int(divergence["retries"])

    # 3. a checkpoint to resume from: its attempt, step, weights, data position and RNGs ------------
    state = _read_checkpoint(checkpoint_dir, run, ranks, log)
    if state is None and branch_from is not None:
        state = read_branch(Path(branch_from), branch_identity or {}, int(run["branch_step"]), str(run["run_id"]))
    attempts: list[dict[str, Any]] = list(state["attempts"]) if state else []
    inherited = state.get("reason") if state else None  # the stable prefix diverged: so has the run

    # 4. attempts: the planned lr, then lower ones while the run diverges ---------------------------
    with StopRequests(log) as stops:
        while True:
            lr = float(run["lr"]) * float(divergence["lr_factor"]) ** len(attempts)
            if attempts and state is None:
                net.model.load_state_dict(initial)  # a retry starts from the same initial weights
            _seed_everything(seed)  # the same on every rank: one model, one data order
            trainer = _Trainer(run, net, lr, loss_fn, settings, setup, ranks, timers, log)
            resumed_from = _restore(trainer, state, checkpoint_dir)
            if state is not None and resumed_from is None:  # set aside: this attempt starts afresh
                net.model.load_state_dict(initial)
                trainer = _Trainer(run, net, lr, loss_fn, settings, setup, ranks, timers, log)
            stream = BatchStream(
                train_data,
                batch_size=int(run["batch_size"]),
                seed=seed,
                num_workers=int(settings["num_workers"]),
                pin_memory=setup.is_cuda,
                start=int(state["position"]) if resumed_from is not None else 0,
                ranks=ranks,
                batch_format=batch_format,
            )
            if resumed_from is not None:
                set_rng_state(state["rng"])  # after the data replay, so training draws continue exactly
            state = None
            if inherited:
                trainer.reason, status, eval_loss = f"its stable run diverged: {inherited}", "diverged", None
            else:
                status, eval_loss = _train(trainer, stream, exact_batches, eval_data, checkpoint_dir, wall_start,
                                           stops, attempts)
            if status == "interrupted":
                raise Interrupted(str(run["run_id"]), trainer.step, str(stops.received))
            attempts.append({"lr": lr, "status": status, "reason": trainer.reason})
            if status != "diverged" or len(attempts) > retries:
                break
            if ranks.is_main:
                log.warning(
                    "run %s: retrying from its initial weights at lr %.4g (attempt %d of %d)",
                    run["run_id"], lr * float(divergence["lr_factor"]), len(attempts) + 1, retries + 1,
                )

    # 5. metrics and curve (rank 0), then the checkpoint goes ---------------------------------------
    wall = timers["wall"] + time.monotonic() - wall_start
    fpt = float(run["flops_per_token"])
    metrics = {
        "run_id": _plain(run["run_id"]),
        "status": status,
        "reason": trainer.reason,
        "eval_loss": eval_loss,
        "initial_eval_loss": trainer.initial_eval_loss,
        "chance_eval_loss": trainer.chance_eval_loss,
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
        "threads": torch.get_num_threads(),  # torch intra-op threads the run trained with (training.threads)
        "resumed_from_step": resumed_from,
        "planned_steps": trainer.steps,
        "planned_flops": float(run["planned_flops"]),
        "flops_per_token": fpt,
        "flops_convention": _plain(run["flops_convention"]),
        "lr": lr,
        "planned_lr": float(run["lr"]),
        "attempts": attempts,
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
        "%s: %s, eval loss %s, %d tokens in %.1f s (%s tok/s)", metrics["run_id"], status,
        "n/a" if eval_loss is None else f"{eval_loss:.4g}", trainer.tokens, timers["train"], metrics["tokens_per_s"],
    )
    return metrics


def read_branch(branch_dir: Path, identity: dict, step: int, run_id: str) -> dict[str, Any]:
    """The branch checkpoint a cooldown starts from; a missing one, or one of another stable run or
    step, is an error naming both (continuing another prefix would train a run that was never planned)."""
    try:
        state = load_checkpoint(branch_dir, fingerprint(identity))
    except UnusableCheckpoint as error:
        raise ValueError(
            f"run {run_id}: the branch checkpoint in {branch_dir} is not its stable run's ({error}); "
            "delete it so that the stable segment is trained again"
        ) from error
    if state is None:
        raise FileNotFoundError(f"run {run_id}: no branch checkpoint in {branch_dir}; train its stable segment first")
    if int(state["step"]) != step:
        raise ValueError(f"run {run_id}: the branch checkpoint in {branch_dir} is at step {state['step']}, "
                         f"the run branches at step {step}")
    return state


def train_segment(
    stable: dict,
    *,
    start_from: Path | None,
    end_step: int,
    model: nn.Module,
    train_data: Any,
    loss_fn: Callable,
    settings: dict,
    out_dir: Path,
    checkpoint_dir: Path,
    log: logging.Logger | None = None,
    batch_format: BatchFormat = BatchFormat(),
) -> Path:
    """Train one stable segment of a stable run up to ``end_step`` and save it as a branch checkpoint.

    ``stable`` is the stable run's identity (size, batch, lr, warmup, seed, tokens per sample): the
    checkpoints are fingerprinted with it. The segment starts from the branch checkpoint in
    ``start_from`` (the previous branch point) or, with None, from ``model`` as built; it trains at the
    constant peak lr after warmup (kind ``constant``: no decay, no eval, no metrics) and writes its
    state to ``out_dir/checkpoint.pt``, the state a cooldown continues from. Preemption is handled
    as for a run: SIGTERM/SIGUSR1 writes a resumable state to ``checkpoint_dir`` and raises
    :class:`~flops_fit.training.stopping.Interrupted`; the rerun resumes it. A diverging prefix is not
    retried (its cooldowns would inherit a retry's lower lr unplanned): its checkpoint records the
    reason and every cooldown from it ends ``diverged``. One process (no DDP) in this version.
    """
    log = log or logging.getLogger("flops_fit.training")
    wall_start = time.monotonic()
    setup = setup_device(settings["device"], settings["precision"], settings.get("threads"), local_rank())
    ranks = Ranks()
    seed = int(stable["seed"])
    run = {**stable, "run_id": f"stable segment to step {end_step}", "steps": end_step}
    resumable = {**stable, "segment_end": end_step}
    segment_settings = {**settings, "schedule": {**settings["schedule"], "kind": "constant"}}
    net = _Network(model, setup, ranks, settings["compile"])
    timers = {"train": 0.0, "eval": 0.0, "compile": 0.0, "checkpoint": 0.0, "wall": 0.0}
    state = _read_checkpoint(checkpoint_dir, resumable, ranks, log)
    if state is None and start_from is not None:
        state = load_checkpoint(start_from, fingerprint(stable))
        if state is None:
            raise FileNotFoundError(f"no branch checkpoint in {start_from} to continue the stable run from")
    _seed_everything(seed)
    trainer = _Trainer(run, net, float(stable["lr"]), AdaptedLoss(loss_fn, log), segment_settings, setup, ranks,
                       timers, log, identity=resumable)
    if state is not None:
        trainer.load_state_dict(state)
        trainer.reason = state.get("reason")
    exact_batches = not isinstance(train_data, (torch.utils.data.DataLoader, torch.utils.data.IterableDataset))
    stream = BatchStream(train_data, batch_size=int(stable["batch_size"]), seed=seed,
                         num_workers=int(settings["num_workers"]), pin_memory=setup.is_cuda,
                         start=int(state["position"]) if state is not None else 0, ranks=ranks,
                         batch_format=batch_format)
    if state is not None:
        set_rng_state(state["rng"])
    with StopRequests(log) as stops:
        while trainer.step < end_step and trainer.reason is None:
            trainer.train_step(stream, exact_batches)
            trainer.flush()
            if trainer.step < end_step and stops.received is not None:
                save_checkpoint(checkpoint_dir, trainer.state_dict(stream.position, time.monotonic() - wall_start, []))
                raise Interrupted(f"stable segment to step {end_step}", trainer.step, str(stops.received))
    trainer.identity = stable
    state = trainer.state_dict(stream.position, time.monotonic() - wall_start, [])
    state["reason"] = trainer.reason
    path = save_checkpoint(Path(out_dir), state)
    remove_checkpoint(checkpoint_dir)
    log.info("stable segment of size %s to step %d: %s%s", stable["size"], end_step, path,
             f" (diverged: {trainer.reason})" if trainer.reason else "")
    return path


def _read_checkpoint(checkpoint_dir: Path, run: dict, ranks: Ranks, log: logging.Logger) -> dict[str, Any] | None:
    """This run's checkpoint (every rank reads the one rank 0 wrote), or None; an unusable one is set aside.

    Whether to resume is decided collectively: if any rank cannot use the file, none does.
    """
    problem: UnusableCheckpoint | None = None
    try:
        state = load_checkpoint(checkpoint_dir, fingerprint(run))
    except UnusableCheckpoint as error:
        state, problem = None, error
    if not ranks.any_(problem is not None):
        return state
    if ranks.is_main:
        kind = problem.kind if problem else "unreadable"
        aside = set_aside(checkpoint_dir, kind)
        log.warning(
            "checkpoint of run %s is %s (%s): moved it to %s; the run starts over",
            run["run_id"], kind, problem or "another process could not read it", aside,
        )
    return None


def _restore(trainer: _Trainer, state: dict[str, Any] | None, checkpoint_dir: Path) -> int | None:
    """Load ``state`` into ``trainer``; the step it resumes from, or None when there is nothing to resume.

    A checkpoint that unpickles but does not fit this model or optimizer (the code changed between
    the runs) is set aside as mismatched and None returned: the caller starts the attempt afresh.
    """
    if state is None:
        return None
    ranks, log = trainer.ranks, trainer.log
    error: Exception | None = None
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        error = exc
    if ranks.any_(error is not None):
        if ranks.is_main:
            aside = set_aside(checkpoint_dir, "mismatched")
            log.warning("checkpoint does not fit this run (%s): moved it to %s; the run starts over", error, aside)
        return None
    if ranks.is_main:
        log.info("resumed from step %d (attempt %d, lr %.4g)", trainer.step, len(state["attempts"]) + 1, trainer.lr)
    return trainer.step


def _train(
    trainer: _Trainer,
    stream: BatchStream,
    exact_batches: bool,
    eval_data: Sequence[Any],
    checkpoint_dir: Path,
    wall_start: float,
    stops: StopRequests,
    attempts: list[dict[str, Any]],
) -> tuple[str, float | None]:
    """The step loop of one attempt; returns (status, final eval loss).

    status is "ok", "diverged", or "interrupted" (a stop signal arrived; the checkpoint is written).
    The train timer excludes eval, checkpoints and compilation.
    """
    settings, setup, log, steps, ranks = trainer.settings, trainer.setup, trainer.log, trainer.steps, trainer.ranks
    evals = eval_steps(steps, settings["eval"]["points"])
    every_steps = int(settings["checkpoint"]["every_steps"])
    every_s = float(settings["checkpoint"]["every_minutes"]) * 60.0
    sync_every = 16 if setup.is_cuda else 1  # a host sync per step costs GPU throughput, nothing on CPU
    log_every = max(1, steps // 10)
    clock = Stopwatch(trainer.timers, setup.is_cuda)
    eval_loss: float | None = None
    first_step_compiles = bool(settings["compile"])
    start_step, train_before = trainer.step, trainer.timers["train"]
    if trainer.step == 0 and trainer.initial_eval_loss is None:  # once, before the first step (not on a resume)
        clock.lap("train")
        trainer.initial_eval_loss = evaluate(trainer.net.model, eval_data, trainer.loss_fn, setup, ranks)
        trainer.chance_eval_loss = chance_loss(trainer.net.model, eval_data, trainer.loss_fn, setup)
        clock.lap("eval")
    last_log = last_ckpt = time.monotonic()

    def checkpoint() -> None:
        """Rank 0 writes the state after the current step (the other ranks' state is the same)."""
        if ranks.is_main:
            clock.lap("train")
            save_checkpoint(checkpoint_dir, trainer.state_dict(stream.position, time.monotonic() - wall_start, attempts))
            clock.lap("checkpoint")

    while trainer.step < steps:
        # 1. one optimizer step (the first one of a compiled model includes the compilation)
        trainer.train_step(stream, exact_batches)
        step = trainer.step
        if first_step_compiles:
            clock.lap("compile")
            first_step_compiles = False

        # 2. divergence: decided only at sync points, the same on every rank (rank 0's log and
        #    checkpoint flushes can see a divergence sooner; stopping then would leave the others waiting)
        if step % sync_every == 0 or step in evals or step == steps:
            trainer.flush()
            if trainer.reason is not None:
                break

        # 3. a stop signal on any rank: every rank stops after this same step, rank 0 checkpoints
        if step < steps and ranks.any_(stops.received is not None):
            checkpoint()
            ranks.barrier()  # no rank exits (and makes torchrun stop the others) before the file is written
            if ranks.is_main:
                log.warning("stopped after step %d/%d: checkpoint written; rerun the job to resume", step, steps)
            return "interrupted", None

        # 4. held-out loss at the eval points
        if step in evals:
            clock.lap("train")
            eval_loss = trainer.evaluate(eval_data)
            clock.lap("eval")

        # 5. progress log (rank 0)
        now = time.monotonic()
        if ranks.is_main and (step % log_every == 0 or step == start_step + 1 or now - last_log > _LOG_EVERY_S):
            trainer.flush()
            clock.lap("train")
            done = step - start_step
            rate = (trainer.tokens - start_step * trainer.step_tokens) / max(trainer.timers["train"] - train_before, 1e-9)
            eta = (steps - step) * trainer.step_tokens / max(rate, 1e-9) if done else float("nan")
            row = trainer.curve[-1]
            log.info(
                "step %d/%d loss %.4f lr %.3g %.0f tok/s ETA %.0fs%s",
                step, steps, row.train_loss, row.lr, rate, eta,
                "" if row.eval_loss is None else f" eval {row.eval_loss:.4f}",
            )
            last_log = now

        # 6. periodic checkpoint (not after the last step: the metrics are about to be written)
        due = (every_steps > 0 and step % every_steps == 0) or (every_s > 0 and now - last_ckpt >= every_s)
        if due and step < steps:
            checkpoint()
            last_ckpt = time.monotonic()

    # 7. the outcome of the attempt
    trainer.flush()
    clock.lap("train")
    if trainer.reason is None and eval_loss is not None and not math.isfinite(eval_loss):
        trainer.reason = f"non-finite eval loss ({eval_loss}) at step {trainer.step}"
    if trainer.reason is not None:
        if ranks.is_main:
            log.warning("run %s diverged at lr %.4g: %s", trainer.run["run_id"], trainer.lr, trainer.reason)
        return "diverged", None
    return "ok", eval_loss

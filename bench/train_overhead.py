"""Overhead of flops-fit's training loop against a bare PyTorch loop, and MFU on a GPU.

Both loops train the same GPT (same initial weights) on the same token data with the same batch,
steps, AdamW, grad clipping and precision; the project loop also does what a scaling run needs
(per-step schedule, loss bookkeeping, divergence checks, a final eval on one batch, metrics files).
Repeats are interleaved and their order alternates, so load from other processes hits both alike;
medians are reported. The last line is ``ratio=X`` = project throughput / bare throughput.

    python bench/train_overhead.py                 # CPU: tiny GPT, 1 thread
    python bench/train_overhead.py --device cuda   # GPU: ~124M-param GPT in bf16, plus MFU
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from flops_fit.examples.gpt import GPT, next_token_loss
from flops_fit.flops import flops_per_token, matmul_params, total_params
from flops_fit.training import run_training
from flops_fit.training.device import DeviceSetup, setup_device
from flops_fit.training.loop import build_optimizer
from flops_fit.training.settings import default_settings

#: dense bf16 tensor-core peak FLOP/s by GPU name fragment (vendor data sheets, no sparsity)
PEAK_BF16 = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "RTX 4090": 165e12,
}
PRESETS = {  # model kwargs, seq len, batch, steps
    "cpu": ({"d_model": 64, "n_layer": 2, "vocab_size": 96, "block_size": 64, "head_dim": 16}, 64, 16, 60),
    "cuda": ({"d_model": 768, "n_layer": 12, "vocab_size": 50304, "block_size": 1024, "head_dim": 64}, 1024, 16, 40),
}


def token_data(n: int, seq: int, vocab: int) -> TensorDataset:
    tokens = torch.randint(0, vocab, (n, seq + 1), generator=torch.Generator().manual_seed(0))
    return TensorDataset(tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous())


def bare_loop(
    model: torch.nn.Module, data: TensorDataset, batch: int, steps: int, setup: DeviceSetup, compile_model: bool
) -> tuple[float, float]:
    """The loop one writes by hand: tokens/s over the whole call, and after the first (compiling) step."""
    start = time.perf_counter()
    model = model.to(setup.device).train()
    forward = torch.compile(model) if compile_model else model
    settings = default_settings()
    optimizer = build_optimizer(model, 1e-3, settings["optimizer"], fused=setup.is_cuda)
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, pin_memory=setup.is_cuda)
    it, tokens, first_step_end = iter(loader), 0, start
    for step in range(steps):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x, y = setup.move(x), setup.move(y)
        with setup.autocast():
            loss = next_token_loss(forward(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += y.numel()
        if step == 0:
            loss.item()  # wait for the device
            first_step_end = time.perf_counter()
    loss.item()
    end = time.perf_counter()
    return tokens / (end - start), tokens * (steps - 1) / steps / (end - first_step_end)


def project_loop(
    model: torch.nn.Module, data: TensorDataset, batch: int, steps: int, seq: int, settings: dict, fpt: float
) -> tuple[float, float]:
    """flops-fit's ``run_training`` on the same work: tokens/s over the whole call, and over training
    alone (the loop's own timer: no compilation, eval or set-up)."""
    params = matmul_params(model)
    run = {
        "run_id": "bench", "budget": 0.0, "size_param": "d_model", "size": 0, "params": params,
        "params_total": total_params(model), "flops_per_token": fpt, "flops_convention": "6N+attention",
        "tokens_per_sample": seq, "batch_size": batch, "steps": steps, "tokens": steps * batch * seq,
        "lr": 1e-3, "warmup_steps": max(1, steps // 10), "planned_flops": 0.0, "achieved_flops": 0.0, "seed": 0,
    }
    eval_data = [(data.tensors[0][:batch], data.tensors[1][:batch])]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        metrics = run_training(
            run, model=model, train_data=data, eval_data=eval_data, loss_fn=next_token_loss, settings=settings,
            out_dir=Path(tmp) / "out", checkpoint_dir=Path(tmp) / "ckpt",
        )
        elapsed = time.perf_counter() - start
    if metrics["status"] != "ok":
        raise RuntimeError(f"the benchmark run did not finish cleanly: {metrics['reason']}")
    return metrics["tokens"] / elapsed, metrics["tokens_per_s"]


def peak_flops(setup: DeviceSetup) -> float | None:
    if not setup.is_cuda:
        return None
    name = torch.cuda.get_device_name(setup.device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, help="steps per timed run (default: preset)")
    parser.add_argument("--batch", type=int, help="sequences per step (default: preset)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile both loops (GPU)")
    args = parser.parse_args()

    kwargs, seq, batch, steps = PRESETS[args.device]
    batch, steps = args.batch or batch, args.steps or steps
    settings = default_settings(device=args.device, threads=args.threads, compile=args.compile, eval={"points": 1})
    setup = setup_device(args.device, settings["precision"], args.threads)
    torch.manual_seed(0)
    template = GPT(**kwargs)
    data = token_data(batch * steps, seq, kwargs["vocab_size"])
    example = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    fpt, _ = flops_per_token(template, "6N+attention", example_inputs=example)
    print(f"model: GPT {kwargs}, N={matmul_params(template):,} (matmul), total={total_params(template):,}")
    print(f"device: {setup.description}; batch {batch}x{seq} tokens, {steps} steps, {fpt:.4g} FLOPs/token")

    runners = {
        "bare": lambda: bare_loop(copy.deepcopy(template), data, batch, steps, setup, args.compile),
        "project": lambda: project_loop(copy.deepcopy(template), data, batch, steps, seq, settings, fpt),
    }
    for run in runners.values():  # warm-up: allocator, thread pools, kernels, compile caches
        run()
    rates: dict[str, list[float]] = {"bare": [], "project": []}
    steady: dict[str, list[float]] = {"bare": [], "project": []}
    for r in range(args.repeats):
        for name in (("bare", "project") if r % 2 == 0 else ("project", "bare")):
            whole, train_only = runners[name]()
            rates[name].append(whole)
            steady[name].append(train_only)
        print(f"repeat {r + 1}: bare {rates['bare'][-1]:,.0f} tok/s, project {rates['project'][-1]:,.0f} tok/s")
    bare, project = statistics.median(rates["bare"]), statistics.median(rates["project"])
    print(f"median tokens/s over the whole call: bare {bare:,.0f}, project {project:,.0f}")
    if setup.is_cuda:
        bare, project = statistics.median(steady["bare"]), statistics.median(steady["project"])
        print(f"median tokens/s after compilation (steady state): bare {bare:,.0f}, project {project:,.0f}")
        peak = peak_flops(setup)
        if peak is None:
            print(f"MFU: unknown peak bf16 FLOP/s for {torch.cuda.get_device_name(setup.device)}; add it to PEAK_BF16")
        else:
            print(f"MFU (6N+attention, peak {peak / 1e12:.0f} TFLOP/s): bare {bare * fpt / peak:.1%}, "
                  f"project {project * fpt / peak:.1%}")
    ratio = statistics.median(rates["project"]) / statistics.median(rates["bare"])
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()

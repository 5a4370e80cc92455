"""The sweep's cost before it trains: planned FLOPs, measured throughput, expected wall time.

The plan step (the workflow's calibration_plan, :func:`flops_fit.find_optimal` before its first run)
knows the calibration runs and the first placement wave exactly; later waves are placed from finished
runs, so their FLOPs are estimated from each budget's a-priori window (extensions of unbracketed
budgets not included). Throughput is measured on the smallest planned model (a few timed forward,
loss and backward steps at its planned batch, capped at :data:`MAX_SAMPLES` samples, on the training
device with a run's threads); larger models usually run at a higher FLOP rate, so the time is an upper
estimate. Written to ``plan/cost_estimate.json`` (:attr:`flops_fit.paths.Results.cost_estimate`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: environment variables through which the workflow tells the plan step a run's threads and its cores
RUN_THREADS_ENV = "FLOPS_FIT_RUN_THREADS"
CORES_ENV = "FLOPS_FIT_CORES"
#: samples of the timed batch at most (the smoke batch repeated): the measurement stays a second or so
MAX_SAMPLES = 64


@dataclass(frozen=True)
class CostEstimate:
    calibration_flops: float  #: the lr-calibration runs (planned)
    first_wave_flops: float  #: the first placement wave (planned; each shared stable prefix once)
    later_waves_flops: float  #: estimated: the other budgets' a-priori windows and the seed replicates
    total_flops: float
    planned_runs: int  #: calibration + first wave
    estimated_runs: int  #: of later waves
    flops_per_second: float  #: measured on the smallest planned model, one run
    measured_on: str  #: the device, e.g. "cpu (1 threads), fp32"
    measured_size: str  #: "d_model=16, 8 samples/step"
    threads: int | None  #: torch threads of a run (None: torch's default)
    parallel_runs: int  #: runs training at once (workflow: cores // threads or GPUs; find_optimal: 1)
    wall_seconds: float  #: total_flops / (flops_per_second · parallel_runs)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The estimate in one paragraph, for the plan's log and find_optimal's."""
        return (
            f"cost estimate: {self.total_flops:.3g} FLOPs "
            f"(calibration {self.calibration_flops:.3g} and first wave {self.first_wave_flops:.3g} planned, "
            f"{self.planned_runs} runs; later waves {self.later_waves_flops:.3g} estimated, ~{self.estimated_runs} runs, "
            f"extensions not included); measured {self.flops_per_second:.3g} FLOPs/s per run on "
            f"{self.measured_on} ({self.measured_size}); {self.parallel_runs} run(s) at a time: "
            f"expected wall time ~{format_seconds(self.wall_seconds)} of training"
        )


def estimate(
    calibration_flops: float, first_wave_flops: float, later_waves_flops: float, planned_runs: int,
    estimated_runs: int, step_seconds: float, step_flops: float, measured_on: str, measured_size: str,
    threads: int | None, parallel_runs: int,
) -> CostEstimate:
    """A :class:`CostEstimate` from the planned FLOPs and one timed step (``step_flops`` in ``step_seconds``)."""
    total = calibration_flops + first_wave_flops + later_waves_flops
    rate = step_flops / max(step_seconds, 1e-9)
    parallel = max(1, int(parallel_runs))
    return CostEstimate(
        calibration_flops=float(calibration_flops), first_wave_flops=float(first_wave_flops),
        later_waves_flops=float(later_waves_flops), total_flops=float(total), planned_runs=int(planned_runs),
        estimated_runs=int(estimated_runs), flops_per_second=float(rate), measured_on=measured_on,
        measured_size=measured_size, threads=threads, parallel_runs=parallel,
        wall_seconds=float(total / (rate * parallel)),
    )


def parallel_runs(on_cuda: bool, cores: int, threads_per_run: int, gpus: int, processes_per_run: int) -> int:
    """Runs that train at once under Snakemake: GPUs // processes per run on CUDA, else cores // threads."""
    if on_cuda:
        return max(1, gpus // max(1, processes_per_run))
    return max(1, cores // max(1, threads_per_run))


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

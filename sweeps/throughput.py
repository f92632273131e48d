"""The measured cost model of a plan: seconds of a training pack and of an INAL task on this host.

A plan's estimate is only as good as the rate it divides by. A fixed FLOP/s is off by 5-10x either
way: tiny networks are bound by the per-step cost of the engine's ~70 tensor ops, large batches by
memory traffic of the elementwise work, not by matmul FLOPs. So the model has two terms per step,
both measured on the real engines (``inal_core.ngd.train_noisy_gd``, ``inal_core.inal.estimate_inal``)
by a short calibration (2-15 s, depending on the load), cached per host:

    t(pack of R runs) = pack_s + T (step_s + R (f_step / ngd_flops_per_s + e_step elem_s))
                        + K (step_s + R (f_eval / ngd_flops_per_s + e_eval elem_s / 3))
    t(INAL task)      = inal_s + inal_flops / inal_flops_per_s

``f_step`` is ``inal_core.specs.ngd_flops_per_step`` at the engine's batch, ``e_step`` its
elementwise work (:func:`elements`), ``f_eval``/``e_eval`` the same for one evaluation on ``n_eval``
inputs (forward only), ``K`` the number of checkpoints, ``inal_flops`` is
``sweeps.plan.inal_cost``. ``pack_s`` and ``inal_s`` are the fixed costs of a task (Ray dispatch,
target construction, the Parquet write), measured once on this machine and refined as a study
runs: the progress line's ETA divides the estimated seconds still to run by the study's own rate
(estimated seconds finished per wall second).

The calibration runs in a subprocess (``python -m sweeps.throughput``), so the planner itself stays
free of torch, and is cached as JSON at ``$INAL_THROUGHPUT_CACHE`` or
``~/.cache/inal-sweeps/throughput-<host>.json`` (delete the file to measure again). Timings are
medians of three, taken at the niceness Ray gives its workers: on a shared machine they are what a
task typically gets at the time of the calibration (delete the cache to measure again when the
machine's load has changed for good).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

from inal_core.specs import NetworkSpec, ngd_batch, ngd_flops_per_step

__all__ = ["Throughput", "DEFAULT", "cache_path", "load", "measure", "pack_seconds", "inal_seconds"]


@dataclass(frozen=True)
class Throughput:
    """Rates and fixed costs of one task slot (one CPU thread, as a Ray task with ``num_cpus=1``)."""

    ngd_flops_per_s: float
    step_s: float
    elem_s: float
    inal_flops_per_s: float
    pack_s: float
    inal_s: float
    source: str = "default"

    def describe(self) -> str:
        return (f"{self.ngd_flops_per_s / 1e9:.2g} GFLOP/s training, {self.step_s * 1e3:.2g} ms a step, "
                f"{self.elem_s * 1e9:.2g} ns an element, "
                f"{self.inal_flops_per_s / 1e9:.2g} GFLOP/s INAL, {self.pack_s:.2g} s a task ({self.source})")


#: Used only when the calibration cannot run (no torch on the planning machine, or it failed).
DEFAULT = Throughput(ngd_flops_per_s=5e9, step_s=4e-4, elem_s=1e-9, inal_flops_per_s=5e9, pack_s=0.3, inal_s=0.2,
                     source="default figures: calibration unavailable")
#: Fixed cost of a Ray task beyond the engine (dispatch, argument transfer, result); measured on the
#: project's 2-core CI machine with local Ray (pack of 1 tiny run: 0.15-0.3 s wall above the engine).
_RAY_TASK_S = 0.1


def _values(job: Any) -> dict:
    return job if isinstance(job, dict) else job.values


def pack_seconds(job: Any, runs: int, tp: Throughput) -> float:
    """Estimated seconds of one training task of ``runs`` runs of ``job``'s shape (0 when T = 0)."""
    v = _values(job)
    if not v["T"]:
        return 0.0
    spec = NetworkSpec(v["N"], v["width"], v["depth"], bias=v["bias"], init=v["init"])
    batch, _ = ngd_batch(v["N"], v["batch"])
    checkpoints = v["checkpoints"]
    n_ckpt = len(checkpoints) if isinstance(checkpoints, (list, tuple)) else int(checkpoints)
    n_eval = min(v["n_eval"], 2 ** min(v["N"], 62))
    per_step = float(ngd_flops_per_step(spec, batch)) / tp.ngd_flops_per_s + elements(spec, batch) * tp.elem_s
    per_eval = float(spec.flops_forward(n_eval)) / tp.ngd_flops_per_s + elements(spec, n_eval) * tp.elem_s / 3
    T = float(v["T"])
    return tp.pack_s + T * (tp.step_s + runs * per_step) + (n_ckpt + 1) * (tp.step_s + runs * per_eval)


def elements(spec: NetworkSpec, batch: int) -> float:
    """Elementwise work of one step of one run on ``batch`` inputs, in elements: the inputs (drawn
    or gathered, ``N`` each) and, per hidden neuron, the activations forward and backward (about
    four passes: pre-activation, ReLU, its mask, the gradient); what matmul FLOPs do not count
    and what dominates small networks on large exact batches (``N`` = 16, batch 2^16)."""
    return float(batch) * (spec.input_dim + 4 * spec.width * spec.depth + 4)


def inal_seconds(inal_flops: float, tp: Throughput) -> float:
    """Estimated seconds of one INAL task of ``inal_flops`` (``sweeps.plan.inal_cost``)."""
    return tp.inal_s + inal_flops / tp.inal_flops_per_s


def cache_path() -> str:
    """Where the calibration of this host is cached."""
    explicit = os.environ.get("INAL_THROUGHPUT_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "inal-sweeps", f"throughput-{socket.gethostname()}.json")


def load(calibrate: bool = True, path: Optional[str] = None) -> Throughput:
    """The cached calibration of this host; measured first (in a subprocess) when missing and
    ``calibrate``; :data:`DEFAULT` when it cannot be had (the plan says so)."""
    path = path or cache_path()
    for attempt in range(2):
        try:
            with open(path) as fh:
                data = json.load(fh)
            return Throughput(**{k: data[k] for k in Throughput.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            if attempt or not calibrate:
                break
            try:  # the engines need torch; the planner does not import it
                subprocess.run([sys.executable, "-m", "sweeps.throughput", path], check=True, timeout=300,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except (OSError, subprocess.SubprocessError):
                break
    return DEFAULT


def _best(fn, repeats: int = 3) -> float:
    """The median of ``repeats`` timings after a warm-up: on a machine shared with other work the
    median is what a task typically gets (with the best of three, the dry run's estimates came out
    1.5-2x low under a load average of 20+ on the 2-core development machine)."""
    import statistics

    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure() -> Throughput:
    """Time the engines on this host, one thread (as a Ray task with ``num_cpus=1`` gets):

    - step cost: ``train_noisy_gd`` of one tiny run (N = 6, width 4) for 200 and for 20 steps;
      the difference per step is ``step_s``;
    - training: 2 runs x 4 steps of N = 16, width 32, exact batch 65,536 (elementwise-heavy, as
      small studies are) and of N = 256, width 256, batch 4,096 (matmul-heavy), minus the step
      cost; the FLOP rate and the seconds per element solve the two equations;
    - INAL rate: exact INAL of parity on n = 14, width 32, 16 inits against ``inal_cost``'s FLOPs,
      and its fixed cost from n = 6;
    - the task's fixed cost: building a target and writing a pack's Parquet files are inside
      ``pack_s`` (a Ray task's dispatch adds about 0.1 s), measured with a 2-run pack of 1 step.
    """
    import tempfile

    import torch

    from inal_core.inal import estimate_inal
    from inal_core.ngd import NGDConfig, train_noisy_gd
    from inal_core.targets import make_target

    torch.set_num_threads(1)

    def ngd(N: int, width: int, R: int, T: int, checkpoints: int = 1, n_eval: int = 64) -> float:
        spec = NetworkSpec(N, width, 1)
        target = make_target("parity", N, c=1)
        cfg = NGDConfig(T=T, gamma=0.05, sigma=1e-4, checkpoints=checkpoints, n_eval=n_eval)
        return _best(lambda: train_noisy_gd(target, spec, cfg, list(range(R))))

    long_, short = ngd(6, 4, 1, 200), ngd(6, 4, 1, 20)
    step_s = max((long_ - short) / 180, 1e-6)
    # two shapes, 2 runs x 4 steps each: elementwise-heavy (N = 16, exact batch 2^16, width 32) and
    # matmul-heavy (N = 256, width 256, batch 4096); their per-run-step times give the FLOP rate and
    # the cost of an element (a 2 x 2 linear system)
    shapes = [(NetworkSpec(16, 32, 1), 2**16, 16, 32), (NetworkSpec(256, 256, 1), 4096, 256, 256)]
    rows, times = [], []
    for spec, batch, N, width in shapes:
        t = ngd(N, width, 2, 4) - short - 4 * step_s
        rows.append((float(ngd_flops_per_step(spec, batch)), elements(spec, batch)))
        times.append(max(t, 1e-6) / 8)  # per run-step
    (a, b), (c, d) = rows
    det = a * d - b * c
    inv_rate = (times[0] * d - b * times[1]) / det
    elem_s = (a * times[1] - c * times[0]) / det
    if inv_rate <= 0 or elem_s <= 0:  # noise: fall back to one term each, from the shape it dominates
        inv_rate, elem_s = times[1] / c, times[0] / b / 2
    ngd_rate = 1.0 / inv_rate

    def inal(n: int) -> float:
        target, spec = make_target("parity", n, c=1), NetworkSpec(n, 32, 1)
        return _best(lambda: estimate_inal(target, spec, n_inits=16, method="exact"))

    t_small, t_big = inal(6), inal(14)
    inal_flops = 16 * NetworkSpec(14, 32, 1).flops_forward(2**14)
    inal_rate = inal_flops / max(t_big - t_small, 1e-6)

    # fixed cost of a pack beyond its steps: the engine's set-up (the short run minus its steps) and
    # writing a pack's two Parquet files (a runs table of 30 columns, a curves table)
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        table = pa.table({f"c{i}": list(range(64)) for i in range(30)})

        def write() -> None:
            for name in ("runs", "curves"):
                pq.write_table(table, os.path.join(tmp, f"{name}.parquet"))

        write_s = _best(write)
    pack_s = max(short - 20 * step_s, 0.0) + write_s + _RAY_TASK_S
    return Throughput(ngd_flops_per_s=ngd_rate, step_s=step_s, elem_s=elem_s, inal_flops_per_s=inal_rate,
                      pack_s=pack_s, inal_s=t_small + _RAY_TASK_S,
                      source=f"measured on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M')}, "
                             f"load {os.getloadavg()[0]:.1f}")


#: Ray runs its workers at this niceness (``RAY_worker_niceness``'s default): the calibration runs at
#: it too, so that on a machine shared with other work it measures what a task gets, not more.
WORKER_NICENESS = 15


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else cache_path()
    try:
        current = os.nice(0)
        if current < WORKER_NICENESS:
            os.nice(WORKER_NICENESS - current)
    except (OSError, AttributeError):  # no nice() here: measured at the driver's priority
        pass
    tp = measure()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(asdict(tp), fh, indent=1)
    os.replace(tmp, path)  # atomic: two drivers calibrating at once each write a whole file
    print(tp.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())

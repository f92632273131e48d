"""The measured cost model of a plan: seconds of a training pack and of an INAL task on this host.

A plan's estimate is only as good as the rate it divides by. A fixed FLOP/s is off by 5-10x either
way: tiny networks are bound by the per-step cost of the engine's ~70 tensor ops, large exact
batches by elementwise work, sampled batches by drawing their random inputs, not by matmul FLOPs.
And on a shared machine the seconds a task takes move with the load, by 2-10x on the 2-core
development machine. So the model is in two parts:

1. **CPU seconds**, measured on the real engines (``inal_core.ngd.train_noisy_gd``,
   ``inal_core.inal.estimate_inal``) by a short calibration (3-5 CPU seconds), cached per host.
   CPU time does not count the time other processes hold the CPU, so it holds whatever the load
   at the calibration::

       cpu(pack of R runs) = pack_s + T (step_s + R (f_step / ngd_flops_per_s + e_step elem_s + d_step draw_s))
                             + (K + 1) (step_s + R eval_scale (f_eval / ngd_flops_per_s + e_eval elem_s / 3
                                                              + d_eval draw_s))
       cpu(INAL task)      = inal_s + inal_flops / inal_rate(n)

   ``f`` are matmul FLOPs (``inal_core.specs.ngd_flops_per_step`` at the engine's batch; forward
   only for an evaluation on ``n_eval`` inputs), ``e`` elementwise work (:func:`elements`), ``d``
   input bits drawn (:func:`drawn`: none per step for an exact batch), ``K`` the checkpoints.
   The three rates come from four shapes timed at two lengths each (their difference cancels the
   set-up) by non-negative least squares; they are effective coefficients, not peak figures.
   ``eval_scale`` is measured evaluations against the model's figure; ``inal_rate(n)`` the exact
   engine's rate at n = 10, 14, 18, interpolated (the split engine does far less than ``2^n``
   forward passes at large n); ``pack_s`` and ``inal_s`` the fixed costs of a task (the real task
   functions of ``sweeps.execute`` timed on tiny jobs: the engine's set-up, the store and its
   Parquet files; and 5 ms for Ray's dispatch).
2. **The share of a CPU a task slot gets now** (:func:`slot_share`), measured when a plan with
   work is made for a local Ray: ``min(slots, CPUs)`` processes at the workers' niceness spin for
   2 s at once and report their CPU seconds per wall second (skipped on a quiet machine, where it
   is 1, and for a cluster, whose workers this machine cannot see). A task's wall seconds are its
   CPU seconds / share. Refusals (``hydra.launcher.max_cell_hours``) use the CPU seconds alone, so
   a cell is not refused one minute and accepted the next.

The plan is then refined as the study runs: the progress line's ETA divides the estimated seconds
still to run by the study's own rate (estimated seconds finished per wall second).

The calibration runs in a subprocess (``python -m sweeps.throughput``), so the planner itself stays
free of torch, and is cached as JSON at ``$INAL_THROUGHPUT_CACHE`` or
``~/.cache/inal-sweeps/throughput-<host>.json`` (delete the file to measure again; a cache of an
earlier version, in wall seconds, is measured again). Timings are medians of three.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Optional, Tuple

from inal_core.specs import NetworkSpec, ngd_batch, ngd_flops_per_step

__all__ = ["Throughput", "DEFAULT", "cache_path", "load", "measure", "pack_seconds", "inal_seconds", "slot_share", "for_slots"]


#: The calibration counts CPU seconds (``time.process_time``); caches written by earlier versions
#: (wall seconds, which move with the machine's load) are measured again.
CLOCK = "cpu"


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
    #: what the figures above count: ``"cpu"`` (CPU seconds of one thread, whatever the load)
    clock: str = CLOCK
    #: the share of a CPU each task slot gets now (:func:`slot_share`; 1 on a cluster's workers):
    #: a task's wall seconds are its CPU seconds / share
    share: float = 1.0
    share_note: str = "not measured: a whole CPU per slot"
    #: CPU seconds of one drawn input element (:func:`drawn`)
    draw_s: float = 2e-9
    #: measured / modelled cost of an evaluation (the correlation, accuracy and loss on ``n_eval``
    #: fresh inputs at every checkpoint)
    eval_scale: float = 1.0
    #: the exact INAL engine's FLOP rate at a few ``n`` (depth 1; interpolated in log between them)
    inal_rate_by_n: Optional[Dict[int, float]] = None

    def describe(self) -> str:
        return (f"{self.ngd_flops_per_s / 1e9:.2g} GFLOP/s training, {self.step_s * 1e3:.2g} ms a step, "
                f"{self.elem_s * 1e9:.2g} ns an element, {self.draw_s * 1e9:.2g} ns a drawn input bit, "
                f"{self.inal_flops_per_s / 1e9:.2g} GFLOP/s INAL, {self.pack_s:.2g} s a task in CPU time "
                f"({self.source}); {self.share:.2g} of a CPU per slot ({self.share_note})")


#: Used only when the calibration cannot run (no torch on the planning machine, or it failed).
DEFAULT = Throughput(ngd_flops_per_s=5e9, step_s=4e-4, elem_s=1e-9, inal_flops_per_s=5e9, pack_s=0.3, inal_s=0.2,
                     source="default figures: calibration unavailable")
#: CPU cost of a Ray task beyond the engine (dispatch, argument transfer, result): measured with a
#: warm local Ray of 2 CPUs on the 2-core development machine under load, 3 ms of wall a task at a
#: slot share of 0.3, i.e. about 1 ms of CPU (5 ms allowed). It was 0.1 s, a wall-clock figure
#: that, divided by the share, made a small study's tiny tasks cost 0.3-0.6 s each in the plan.
_RAY_TASK_S = 0.005


def _values(job: Any) -> dict:
    return job if isinstance(job, dict) else job.values


def pack_seconds(job: Any, runs: int, tp: Throughput) -> float:
    """Estimated seconds of one training task of ``runs`` runs of ``job``'s shape (0 when T = 0)."""
    v = _values(job)
    if not v["T"]:
        return 0.0
    spec = NetworkSpec(v["N"], v["width"], v["depth"], bias=v["bias"], init=v["init"])
    checkpoints = v["checkpoints"]
    n_ckpt = len(checkpoints) if isinstance(checkpoints, (list, tuple)) else int(checkpoints)
    n_eval = min(v["n_eval"], 2 ** min(v["N"], 62))
    batch, exact = ngd_batch(v["N"], v["batch"])
    per_step = (float(ngd_flops_per_step(spec, batch)) / tp.ngd_flops_per_s + elements(spec, batch) * tp.elem_s
                + (0.0 if exact else drawn(spec, batch) * tp.draw_s))
    per_eval = tp.eval_scale * _eval_model(spec, n_eval, tp)
    T = float(v["T"])
    cpu = tp.pack_s + T * (tp.step_s + runs * per_step) + (n_ckpt + 1) * (tp.step_s + runs * per_eval)
    return cpu / tp.share


def _eval_model(spec: NetworkSpec, n_eval: int, tp: Throughput) -> float:
    """CPU seconds of one evaluation of one run on ``n_eval`` fresh inputs before ``eval_scale``:
    its forward FLOPs, a third of a training step's elementwise work, the drawn inputs."""
    return (float(spec.flops_forward(n_eval)) / tp.ngd_flops_per_s + elements(spec, n_eval) * tp.elem_s / 3
            + drawn(spec, n_eval) * tp.draw_s)


def elements(spec: NetworkSpec, batch: int) -> float:
    """Elementwise work of one step of one run on ``batch`` inputs, in elements: per hidden neuron,
    the activations forward and backward (about four passes: pre-activation, ReLU, its mask, the
    gradient), and the output's; what matmul FLOPs do not count and what dominates small networks
    on large exact batches (``N`` = 16, batch 2^16)."""
    return float(batch) * (4 * spec.width * spec.depth + 4)


def drawn(spec: NetworkSpec, batch: int) -> float:
    """Input elements drawn for ``batch`` fresh inputs (counter-based random bits, ``N`` each, and
    the target evaluated on them): each step of a sampled batch and every evaluation pays them;
    an exact batch enumerates its inputs once (``N`` = 576 at batch 512: most of a step)."""
    return float(batch) * spec.input_dim


def inal_seconds(inal_flops: float, tp: Throughput, n: Optional[int] = None) -> float:
    """Estimated seconds of one INAL task of ``inal_flops`` (``sweeps.plan.inal_cost``); with ``n``
    (an exact INAL of depth 1), at the engine's rate for that ``n`` (:func:`inal_rate`)."""
    return (tp.inal_s + inal_flops / inal_rate(tp, n)) / tp.share


def inal_rate(tp: Throughput, n: Optional[int] = None) -> float:
    """FLOP/s of the INAL engine: at ``n``, interpolated in log between the measured ``n`` (and
    extended up to 4 beyond the largest with the slope of the last two); else ``inal_flops_per_s``."""
    table = tp.inal_rate_by_n
    if n is None or not table or len(table) < 2:
        return tp.inal_flops_per_s
    import math

    ns = sorted(table)
    n = min(max(n, ns[0]), ns[-1] + 4)  # not extended far: beyond, the rate of n = max + 4
    lo = max([m for m in ns if m <= n], default=ns[0])
    i = min(max(ns.index(lo), 0), len(ns) - 2)
    a, b = ns[i], ns[i + 1]
    la, lb = math.log(table[a]), math.log(table[b])
    return math.exp(la + (lb - la) * (n - a) / (b - a))


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
            if data.get("clock") != CLOCK:
                raise ValueError("a calibration of an earlier version (wall seconds): measured again")
            values = {k: data[k] for k in _MEASURED}
            if values["inal_rate_by_n"] is not None:
                values["inal_rate_by_n"] = {int(n): float(r) for n, r in values["inal_rate_by_n"].items()}
            return Throughput(**values, clock=CLOCK)
        except (OSError, ValueError, KeyError, TypeError):
            if attempt or not calibrate:
                break
            # the engines need torch; the planner does not import it. No wall-clock timeout: on a
            # busy machine the measurement (about 7 s of CPU) waits for the CPU as long as it must
            # (a 300 s timeout once gave every plan the default figures under load); a runaway one
            # is stopped by a CPU-time limit instead, which the load does not move
            try:
                subprocess.run([sys.executable, "-m", "sweeps.throughput", path], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=_limit_cpu_time if os.name == "posix" else None)
            except subprocess.CalledProcessError as err:
                tail = (err.stderr or b"").decode(errors="replace").strip().splitlines()
                return replace(DEFAULT, source=f"{DEFAULT.source} ({tail[-1] if tail else f'exit status {err.returncode}'})")
            except (OSError, subprocess.SubprocessError) as err:
                return replace(DEFAULT, source=f"{DEFAULT.source} ({err})")
    return DEFAULT


#: The calibration's limit in CPU seconds (it takes about 7 on the development machine).
CALIBRATION_CPU_S = 300


def _limit_cpu_time() -> None:
    """In the calibration subprocess (POSIX): stop it after :data:`CALIBRATION_CPU_S` CPU seconds."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (CALIBRATION_CPU_S, CALIBRATION_CPU_S + 5))
    except (ImportError, ValueError, OSError):
        pass


_MEASURED = ("ngd_flops_per_s", "step_s", "elem_s", "inal_flops_per_s", "pack_s", "inal_s", "source", "inal_rate_by_n", "draw_s", "eval_scale")


def _best(fn, repeats: int = 3) -> float:
    """The median of ``repeats`` timings in CPU seconds (``time.process_time``; torch runs one
    thread here) after a warm-up. CPU time does not count the time other processes hold the CPU:
    wall-clock timings taken on the 2-core development machine under load moved 2-10x with it
    (and a 2 x 2 solve on them gave 200 GFLOP/s for one thread), which :func:`slot_share` now
    measures apart, when a plan is made."""
    import statistics

    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def _fit_terms(rows, times) -> Tuple[float, ...]:
    """Non-negative coefficients minimizing the relative errors of ``sum_j c_j row_j`` against
    ``times`` (one row a measurement); a coefficient the data puts at 0 gets a negligible value."""
    import numpy as np
    from scipy.optimize import nnls

    A = np.array([[x / t for x in row] for row, t in zip(rows, times)])
    scale = A.max(0)
    scale[scale == 0] = 1.0
    sol, _ = nnls(A / scale, np.ones(len(times)))
    coef = sol / scale
    return tuple(float(c) if c > 0 else 1e-15 for c in coef)


def _task_cpu() -> Tuple[float, float]:
    """CPU seconds of ``sweeps.execute.run_training_pack`` (2 runs, N = 12, width 4, 20 steps) and
    of ``run_inal_job`` (n = 6, 16 inits), medians of three, each into a study of its own."""
    import tempfile
    from hydra import compose, initialize_config_module

    from .execute import run_inal_job, run_training_pack
    from .jobs import run_id_with, with_run_values
    from .validation import validate_job

    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_module("sweeps.conf", version_base="1.3"):
            jobs = iter([validate_job(compose("config", overrides=[
                "n=6", "width=4", "T=20", "train.N=2n", "train.n_eval=64", "train.checkpoints=1",
                "inal.n_inits=16", f"results_dir={tmp}", f"study=calibration{i}"])) for i in range(8)])

        def pack() -> None:
            base = next(jobs)
            run_training_pack([base, with_run_values(base, {"seed": 1}, run_id_with(base, {"seed": 1}))],
                              with_inal=False)

        pack_cpu = _best(pack)
        inal_cpu = _best(lambda: run_inal_job(next(jobs)))
    return pack_cpu, inal_cpu


def measure() -> Throughput:
    """Time the engines on this host in CPU seconds, one thread (as a Ray task with ``num_cpus=1``):

    - step cost: ``train_noisy_gd`` of one tiny run (N = 6, width 4) for 200 and for 20 steps;
      the difference per step is ``step_s``;
    - training: 2 runs of four shapes (N = 16, width 32, exact batch 65,536; N = 144, width 32,
      batch 4,096; N = 576, width 32, batch 512; N = 256, width 256, batch 4,096), each at two
      lengths; the per-run-step difference against (FLOPs, elements, drawn input bits) gives the
      FLOP rate, ``elem_s`` and ``draw_s`` (:func:`_fit_terms`);
    - evaluations: 20 checkpoints against 1 on 8,192 inputs (N = 36) give ``eval_scale``;
    - INAL: exact INAL of parity at n = 10, 14, 18 (width 32, 16 inits) against ``inal_cost``'s
      FLOPs, less its cost at n = 6;
    - the tasks' fixed costs: the real task functions on tiny jobs (:func:`_task_cpu`: the target,
      the store, the rows and their Parquet files) give ``pack_s`` and ``inal_s`` (with a Ray
      task's dispatch).
    """
    import torch

    from inal_core.inal import estimate_inal
    from inal_core.ngd import NGDConfig, train_noisy_gd
    from inal_core.targets import make_target

    torch.set_num_threads(1)

    def ngd(N: int, width: int, R: int, T: int, checkpoints: int = 1, n_eval: int = 64, batch: int = 0) -> float:
        spec = NetworkSpec(N, width, 1)
        target = make_target("parity", N, c=1)
        cfg = NGDConfig(T=T, gamma=0.05, sigma=1e-4, checkpoints=checkpoints, n_eval=n_eval, batch=batch or None)
        return _best(lambda: train_noisy_gd(target, spec, cfg, list(range(R))))

    long_, short = ngd(6, 4, 1, 200), ngd(6, 4, 1, 20)
    step_s = max((long_ - short) / 180, 1e-6)
    # four shapes, 2 runs each, timed at two lengths so that the set-up (the exact population
    # enumerated, the target, the evaluations) cancels: elementwise-heavy (N = 16, exact batch 2^16,
    # width 32), inputs drawn each step (N = 144, width 32, batch 4096; N = 576, batch 512) and
    # matmul-heavy (N = 256, width 256, batch 4096); their per-run-step CPU seconds against (FLOPs,
    # elements, drawn input bits) give the three rates (non-negative least squares, relative error)
    shapes = [(NetworkSpec(16, 32, 1), 0, (2, 12)), (NetworkSpec(144, 32, 1), 4096, (4, 24)),
              (NetworkSpec(576, 32, 1), 512, (10, 60)), (NetworkSpec(256, 256, 1), 4096, (2, 8))]
    rows, times = [], []
    for spec, batch_setting, (t1, t2) in shapes:
        N, width = spec.input_dim, spec.width
        per = (ngd(N, width, 2, t2, batch=batch_setting) - ngd(N, width, 2, t1, batch=batch_setting)) / (t2 - t1)
        batch, exact = ngd_batch(N, batch_setting)
        rows.append((float(ngd_flops_per_step(spec, batch)), elements(spec, batch),
                     0.0 if exact else drawn(spec, batch)))
        times.append(max(per - step_s, 1e-7) / 2)  # per run-step
    inv_rate, elem_s, draw_s = _fit_terms(rows, times)
    ngd_rate = 1.0 / inv_rate
    # evaluations: 2 runs of N = 36, width 32, batch 512, 20 steps with 1 and with 20 checkpoints on
    # 8,192 inputs; the 19 extra evaluations against the model's figure for them
    few = _best(lambda: train_noisy_gd(make_target("parity", 36, c=1), NetworkSpec(36, 32, 1),
                                       NGDConfig(T=20, gamma=0.05, sigma=1e-4, batch=512, checkpoints=[20],
                                                 n_eval=8192), [0, 1]))
    many = _best(lambda: train_noisy_gd(make_target("parity", 36, c=1), NetworkSpec(36, 32, 1),
                                        NGDConfig(T=20, gamma=0.05, sigma=1e-4, batch=512,
                                                  checkpoints=list(range(1, 21)), n_eval=8192), [0, 1]))
    partial = Throughput(ngd_flops_per_s=ngd_rate, step_s=step_s, elem_s=elem_s, inal_flops_per_s=1.0, pack_s=0.0,
                         inal_s=0.0, draw_s=draw_s)
    eval_scale = max((many - few) / 19 / 2, 1e-7) / _eval_model(NetworkSpec(36, 32, 1), 8192, partial)

    # INAL: the exact engine's CPU seconds per init at n = 10, 14, 18 (width 32, depth 1); its
    # FLOP rate grows with n (the split engine does less than 2^n forward passes), so the rate of
    # each n is kept and interpolated (:func:`inal_seconds`)
    def inal(n: int) -> float:
        target, spec = make_target("parity", n, c=1), NetworkSpec(n, 32, 1)
        return _best(lambda: estimate_inal(target, spec, n_inits=16, method="exact"))

    t_small = inal(6)
    inal_rates = {}
    for n in (10, 14, 18):
        inal_rates[n] = 16 * NetworkSpec(n, 32, 1).flops_forward(2**n) / max(inal(n) - t_small, 1e-6)
    inal_rate = inal_rates[14]

    # fixed cost of a task beyond its engine: the real task functions (``sweeps.execute``) on tiny
    # jobs into a fresh study each time: the target, the store, the rows and their Parquet files
    pack_cpu, inal_cpu = _task_cpu()
    pack_s = max(pack_cpu - 21 * step_s, 0.0) + _RAY_TASK_S
    inal_task_s = max(inal_cpu, t_small) + _RAY_TASK_S
    return Throughput(ngd_flops_per_s=ngd_rate, step_s=step_s, elem_s=elem_s, draw_s=draw_s, eval_scale=eval_scale,
                      inal_flops_per_s=inal_rate,
                      pack_s=pack_s, inal_s=inal_task_s, inal_rate_by_n=inal_rates,
                      source=f"measured on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M')}, "
                             f"load {os.getloadavg()[0]:.1f}")


#: A probe of :func:`slot_share`: waits for a common start, takes the workers' niceness, spins for
#: a window and prints the CPU seconds it got per wall second.
_PROBE = ("import os, sys, time\n"
          "start, window, nice = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])\n"
          "time.sleep(max(0.0, start - time.time()))\n"
          "try:\n    os.nice(max(0, nice - os.nice(0)))\nexcept OSError:\n    pass\n"
          "t0, c0 = time.perf_counter(), time.process_time()\n"
          "while time.perf_counter() - t0 < window:\n    pass\n"
          "print((time.process_time() - c0) / (time.perf_counter() - t0))\n")


def slot_share(slots: float, window: float = 2.0) -> Tuple[float, str]:
    """``(share, note)``: the share of a CPU each of ``slots`` task slots gets on this machine now.

    ``min(slots, CPUs)`` probe processes spin at once for ``window`` seconds at the niceness Ray
    gives its workers (in this process's session, as a local Ray's workers are, so they compete
    with the same processes); the share is their mean CPU seconds per wall second, times
    ``CPUs / slots`` when there are more slots than CPUs. 1 on an idle machine; 0.5 for each of
    two slots when another session keeps both cores busy (Linux shares the CPUs between sessions
    first). ``(1, reason)`` when it cannot be measured."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    k = max(1, min(int(slots), cpus))
    start = time.time() + 0.2  # past every probe's start-up
    nice = worker_niceness()
    try:
        procs = [subprocess.Popen([sys.executable, "-S", "-c", _PROBE, repr(start), repr(window),
                                   str(nice)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for _ in range(k)]
        shares = [float(p.communicate(timeout=30 + window)[0]) for p in procs]
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        return 1.0, f"not measured ({type(err).__name__}): a whole CPU per slot"
    share = min(1.0, max(1e-3, sum(shares) / len(shares))) * min(1.0, cpus / max(float(slots), 1.0))
    return share, (f"measured now: {k} probe(s) at niceness {nice} for {window:g} s, "
                   f"load {os.getloadavg()[0]:.1f}")


def for_slots(tp: Throughput, slots: float, local: bool = True) -> Throughput:
    """``tp`` with the share of a CPU each slot gets now (:func:`slot_share`) when the study runs
    on this machine (``local``, at most one slot a CPU) and ``tp`` was measured here; unchanged
    otherwise: a cluster's workers, or more slots than this machine has CPUs (``slots=64`` plans a
    cluster from here), get a whole CPU per slot, which their own load may not give."""
    if not local or tp.source == DEFAULT.source or not tp.source.startswith("measured"):
        return tp
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if slots > cpus:
        return replace(tp, share_note=f"not measured: {slots:g} slots plan more than this machine's {cpus} CPUs")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("inf")
    if load <= 0.25 * cpus:  # a quiet machine: a whole CPU per slot, no probe
        return replace(tp, share_note=f"not measured: load {load:.1f} on {cpus} CPUs")
    share, note = slot_share(slots)
    return replace(tp, share=share, share_note=note)


#: Ray runs its workers at this niceness unless ``RAY_worker_niceness`` says otherwise
#: (:func:`worker_niceness`): :func:`slot_share`'s probes take it, so that on a machine shared with
#: other work they get what a task gets (the calibration does not: it counts CPU seconds, which the
#: niceness does not change).
WORKER_NICENESS = 15


def worker_niceness() -> int:
    """The niceness a local Ray started by this process gives its workers: ``RAY_worker_niceness``
    (Ray's own setting, inherited by the Ray this process starts) or Ray's default."""
    try:
        return int(os.environ.get("RAY_worker_niceness", WORKER_NICENESS))
    except ValueError:
        return WORKER_NICENESS


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else cache_path()
    # At the driver's priority, not the workers' niceness: CPU seconds do not depend on it, and at
    # niceness 15 beside two busy loops the measurement got 3% of a CPU (7 s of CPU took 206 s).
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
